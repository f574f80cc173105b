"""Faults survived with nothing lost and the right callback (issue 12).

Core faults call the engine directly on tiny inputs (real training steps, real FFmpeg); a full
disk is the real exception type (`OSError(ENOSPC)`) raised by the writer after it wrote half a
file, an out-of-memory error is `torch.OutOfMemoryError` raised by the rasterizer. Storage
faults run against the fake Supabase server (503 answers, dropped connections). The pipeline
faults run the real assets on the smoke preset, one production on the fake Supabase, and read
the `failed` callback the run-status sensor sends to a real callback server.
"""

from __future__ import annotations

import errno
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import torch

from gameview_assets.assets import all_assets
from gameview_assets.cli import prepare_dagster_home
from gameview_assets.core.errors import CaptureError, FailureReason, disk_full
from gameview_assets.core.production import ProductionKeys
from gameview_assets.core.train import checkpoint as checkpoint_module
from gameview_assets.core.train import trainer as trainer_module
from gameview_assets.core.train.checkpoint import CHECKPOINT_FILE, checkpoints_in
from gameview_assets.core.train.trainer import TrainConfig, train_splat
from gameview_assets.core.video import FrameSelection, extract_frames
from gameview_assets.jobs import (
    FRESH_TAG,
    PARTITION_TAG,
    PROCESS_JOB_NAME,
    process_production_job,
)
from gameview_assets.partitions import productions
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.local_store import LocalStore
from gameview_assets.resources.storage import SupabaseStoreResource, WorkdirResource
from gameview_assets.resources.store import StorageUnavailableError, SupersededError
from gameview_assets.resources.supabase_store import SupabaseStore
from gameview_assets.resources.web_budget import WebBudgetResource
from gameview_assets.run_outcome import failure_of_run
from gameview_assets.sensors.callback_sensors import (
    production_completed_sensor,
    production_failed_sensor,
)
from gameview_assets.settings import Settings
from gameview_assets_tests.callback_server import CallbackServer
from gameview_assets_tests.conftest import make_test_video
from gameview_assets_tests.core.test_train import make_scene
from gameview_assets_tests.resources.fake_supabase import BUCKET, KEY, FakeStorage
from gameview_assets_tests.sensors.test_upload_sensor import add_videos, write_manifest
from gameview_assets_tests.sensors.test_upload_sensor import tick as upload_tick

PRODUCTION = "faulty"
SECRET = "faults-secret"
TINY = TrainConfig(steps=20, max_splats=200, checkpoint_every=10, num_threads=1)


def half_then_full(write: Callable[..., Any], after: int) -> Callable[..., Any]:
    """`write(obj, path, ...)` that works `after` times, then writes half a file and fails as
    a full disk does."""
    calls = {"n": 0}

    def failing(obj: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= after:
            return write(obj, path, *args, **kwargs)
        Path(path).write_bytes(b"\xff\xd8 half a file")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    return failing


# Training: a corrupt checkpoint, out of memory, a full disk.


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, on the garbage
@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"\x80\x04garbage" * 50, id="garbage"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_a_corrupt_checkpoint_restarts_training_from_zero_and_says_so(
    tmp_path: Path, corrupt: Callable[[bytes], bytes]
) -> None:
    views = make_scene(n_views=4)
    train_splat(views, TINY, tmp_path)  # leaves its checkpoint at step 10 of 20
    checkpoint = checkpoints_in(tmp_path) / CHECKPOINT_FILE
    checkpoint.write_bytes(corrupt(checkpoint.read_bytes()))
    messages: list[str] = []

    result = train_splat(views, TINY, tmp_path, lambda _, m: messages.append(m))

    assert result.resumed_from_step == 0 and result.steps == 20
    assert result.checkpoint_discarded.startswith(
        "checkpoint discarded, training restarts from step 0: latest.pt cannot be read"
    )
    assert messages[0] == result.checkpoint_discarded  # the stage's log and callback say so


def test_a_checkpoint_that_is_not_a_dict_restarts_training(tmp_path: Path) -> None:
    checkpoint_module.save_checkpoint([1, 2, 3], checkpoints_in(tmp_path))  # type: ignore[arg-type]
    result = train_splat(make_scene(n_views=4), TINY, tmp_path)
    assert result.resumed_from_step == 0
    assert "latest.pt holds a list, not a dict" in result.checkpoint_discarded


@dataclass
class OutOfMemoryAt:
    """The rasterizer, raising `torch.OutOfMemoryError` on its `first`-th call and `times`
    calls in a row (training renders once a step, and twice more at step 10 of `TINY`)."""

    first: int
    times: int
    calls: int = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.first <= self.calls < self.first + self.times:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return RENDER(*args, **kwargs)


RENDER = trainer_module.render_splats


def test_out_of_memory_once_retries_the_step_and_training_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer_module, "render_splats", OutOfMemoryAt(first=5, times=1))
    messages: list[str] = []
    result = train_splat(make_scene(n_views=4), TINY, tmp_path, lambda _, m: messages.append(m))
    assert result.steps == 20
    assert "out of memory at step 5: memory freed, step retried" in messages


def test_out_of_memory_again_fails_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer_module, "render_splats", OutOfMemoryAt(first=15, times=2))
    with pytest.raises(CaptureError) as caught:
        train_splat(make_scene(n_views=4), TINY, tmp_path)
    error = caught.value
    assert error.code == "out_of_memory"
    assert error.message.startswith("training ran out of CPU memory at step 13 of 20 with ")
    assert "'preview'" in error.hint and "GPU with more memory" in error.hint
    assert isinstance(error.__cause__, torch.OutOfMemoryError)
    resumed = train_splat(make_scene(n_views=4), TINY, tmp_path)  # the retry resumes
    assert resumed.resumed_from_step == 10


def test_a_full_disk_writing_a_checkpoint_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint_module.torch, "save", half_then_full(torch.save, after=0))
    with pytest.raises(OSError) as caught:
        train_splat(make_scene(n_views=4), TINY, tmp_path)
    reason = disk_full(caught.value)
    assert reason is not None and reason.code == "disk_full"
    assert list(checkpoints_in(tmp_path).iterdir()) == []
    monkeypatch.undo()  # space freed: it trains again
    assert train_splat(make_scene(n_views=4), TINY, tmp_path).steps == 20


@dg.asset
def exports() -> None:
    """A stage writing outside `failures_reported`, as COLMAP and the exports do."""
    raise OSError(errno.ENOSPC, "No space left on device", "/work/p1/bundle/scene.ply")


def test_a_full_disk_anywhere_in_a_stage_is_disk_full_not_an_internal_error() -> None:
    with dg.instance_for_test() as instance:
        result = dg.materialize([exports], instance=instance, raise_on_error=False)
        reason = failure_of_run(instance, result.run_id)
    assert (reason.stage, reason.code) == ("exports", "disk_full")
    assert "free space" in reason.hint


# Frames: a full disk while extracting.


def test_a_full_disk_during_frame_extraction_leaves_no_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    video = make_test_video(tmp_path / "clip.mp4", 3)
    out = tmp_path / "frames"
    selection = FrameSelection(fps=2, max_size=160, max_frames=10)
    monkeypatch.setattr(Image.Image, "save", half_then_full(Image.Image.save, after=2))
    with pytest.raises(OSError) as caught:
        extract_frames([video], out, selection)
    assert caught.value.errno == errno.ENOSPC
    assert list(out.iterdir()) == []  # neither the two whole frames nor the half one
    monkeypatch.undo()
    assert len(extract_frames([video], out, selection)) >= 3


# Publishing: atomic as the app sees it.


def drops(method: str, times: int, suffix: str = "") -> Callable[[str, str], str | None]:
    """Drop the connection of the next `times` requests with `method` (for a path ending in
    `suffix`)."""
    left = {"n": times}

    def decide(request_method: str, path: str) -> str | None:
        if request_method != method or not path.endswith(suffix) or left["n"] == 0:
            return None
        left["n"] -= 1
        return "drop"

    return decide


def test_a_download_cut_off_resumes_from_the_bytes_that_arrived(
    fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 4000
    fake.put("p1/videos/a.mp4", data, "video/mp4")
    supabase.retry_backoff_s = 0.0
    fake.fault = drops("GET", 2)  # each sends half of what was asked, then drops

    supabase.download("p1/videos/a.mp4", tmp_path / "a.mp4")

    assert (tmp_path / "a.mp4").read_bytes() == data
    half, quarter = len(data) // 2, len(data) // 4
    assert [c[2]["range"] for c in fake.calls_to("outage")] == [None, f"bytes={half}-"]
    assert [c[2]["range"] for c in fake.calls_to("object")] == [f"bytes={half + quarter}-"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


def test_a_download_cut_off_every_time_fails_clearly_and_leaves_no_partial_file(
    fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path
) -> None:
    fake.put("p1/videos/a.mp4", b"v" * 100_000, "video/mp4")
    supabase.retry_backoff_s = 0.0
    fake.fault = drops("GET", 100)
    with pytest.raises(StorageUnavailableError, match="failed 4 times in a row"):
        supabase.download("p1/videos/a.mp4", tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []
    fake.fault = lambda method, path: None
    supabase.download("p1/videos/a.mp4", tmp_path / "a.mp4")  # storage is back
    assert (tmp_path / "a.mp4").stat().st_size == 100_000


def result_files(folder: Path, tag: str) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    files = {}
    for name in ("scene.ply", "cameras.json", "thumbnail.jpg", "bundle.json"):
        files[name] = folder / name
        files[name].write_text(f"{tag} {name}")
    return files


def after_calls(route: str, count: int, fault: str) -> Callable[[str, str], str | None]:
    """A fault for every request on `route` (a path fragment) after the first `count`."""
    seen = {"n": 0}

    def decide(method: str, path: str) -> str | None:
        if route not in f"{method} {path}":
            return None
        seen["n"] += 1
        return fault if seen["n"] > count else None

    return decide


UPLOAD = f"POST /storage/v1/object/{BUCKET}/p1/"
MOVE = "POST /storage/v1/object/move"
PUBLISH_FAULTS = [  # route, requests served before it, fault, a previous set?, what stays
    pytest.param(UPLOAD, 2, "503", False, "nothing", id="503-uploading-the-first-set"),
    pytest.param(UPLOAD, 1, "drop", True, "previous", id="dropped-uploading-a-new-set"),
    pytest.param(MOVE, 2, "503", False, "nothing", id="503-moving-in-the-first-set"),
    pytest.param(MOVE, 3, "drop", True, "nothing", id="dropped-moving-in-a-new-set"),
    pytest.param("DELETE", 0, "drop", True, "previous", id="dropped-removing-the-old-set"),
]


def results_in(fake: FakeStorage) -> dict[str, bytes]:
    return {k: obj.data for k, obj in fake.objects.items() if k.startswith("p1/results/")}


@pytest.mark.parametrize(("route", "count", "fault", "previous", "stays"), PUBLISH_FAULTS)
def test_storage_down_while_publishing_leaves_the_previous_set_or_nothing(
    fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path, route: str, count: int,
    fault: str, previous: bool, stays: str,
) -> None:  # fmt: skip
    if previous:
        supabase.publish_results("p1", result_files(tmp_path / "old", "old"))
    before = results_in(fake)
    fake.fault = after_calls(route, count, fault)
    with pytest.raises(StorageUnavailableError) as caught:
        supabase.publish_results("p1", result_files(tmp_path / "new", "new"))
    assert caught.value.code == "storage_unavailable" and "did not answer" in caught.value.message
    fake.fault = lambda method, path: None
    # Never a mix, never a bundle.json beside files of another set: the previous complete
    # set untouched, or no results at all.
    assert results_in(fake) == (before if stays == "previous" else {})

    keys = supabase.publish_results("p1", result_files(tmp_path / "new", "new"))  # back
    assert results_in(fake) == {key: f"new {name}".encode() for name, key in keys.items()}


@pytest.mark.parametrize("kind", ["local", "supabase"])
def test_a_manifest_changed_before_the_commit_publishes_nothing(
    fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path, kind: str
) -> None:
    store = supabase if kind == "supabase" else LocalStore(tmp_path / "store")

    def superseded() -> None:
        raise SupersededError("p1", "v1", "v2")

    with pytest.raises(SupersededError):
        store.publish_results("p1", result_files(tmp_path / "new", "new"), superseded)
    assert not store.exists(ProductionKeys("p1").result("bundle.json"))
    if kind == "supabase":
        assert fake.objects == {}  # nothing staged is left either
    else:
        assert list((tmp_path / "store" / "p1").iterdir()) == []


def test_a_full_disk_while_publishing_locally_leaves_no_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "store")
    files = result_files(tmp_path / "new", "new")
    monkeypatch.setattr(shutil, "copyfile", half_then_full(shutil.copyfile, after=2))
    with pytest.raises(OSError, match="No space left"):
        store.publish_results("p1", files)
    assert list((tmp_path / "store" / "p1").iterdir()) == []
    monkeypatch.undo()
    store.publish_results("p1", files)
    assert sorted(p.name for p in (tmp_path / "store" / "p1" / "results").iterdir()) == sorted(
        files
    )


# The studio app: down for longer than every retry, and a manifest written twice.


def test_an_app_refusing_connections_for_hours_gets_the_callback_once_it_is_back(
    tmp_path: Path,
) -> None:
    with CallbackServer(secret=SECRET) as gone:  # the app's address, then nothing listens
        port = gone.port
    callbacks = StudioCallbacks(
        secret=SECRET, allowed_hosts=["127.0.0.1"], outbox_dir=str(tmp_path / "outbox")
    )
    error = FailureReason("frames", "disk_full", "the disk is full", "free space")
    url = f"http://127.0.0.1:{port}/cb"
    assert not callbacks.failed(production_id="p1", run_id="r1", error=error, url=url)
    start = time.time()
    for hours in range(1, 7):  # six outbox ticks over six hours, each refused: all retries
        assert callbacks.flush_outbox(now=start + hours * 3600)["kept"] == 1
    with CallbackServer(secret=SECRET, port=port) as back:
        assert callbacks.flush_outbox(now=start + 12 * 3600)["delivered"] == 1
        assert callbacks.flush_outbox(now=start + 13 * 3600)["delivered"] == 0
        (received,) = back.wait_for(1)
    assert received.signed_validly  # signed when sent, inside the app's replay window
    assert received.json["status"] == "failed" and received.json["error"]["code"] == "disk_full"
    assert list((tmp_path / "outbox").glob("*.json")) == []


def test_the_same_manifest_written_twice_quickly_is_one_run(tmp_path: Path) -> None:
    """Written twice between two ticks: one run. Written again after a run started, it is a
    new run (writing it again is how the app retries); the older run then cannot publish
    (`test_pipeline_a_new_manifest_mid_run_is_not_published_over`)."""
    root = tmp_path / "store"
    add_videos(root, "twice")
    with CallbackServer() as server, dg.instance_for_test() as instance:
        write_manifest(root, "twice", {"preset": "smoke"}, age_s=2)
        write_manifest(root, "twice", {"preset": "smoke"}, age_s=1)  # again, before a tick
        first = upload_tick(instance, root, server, None)
        again = upload_tick(instance, root, server, first.cursor)
        write_manifest(root, "twice", {"preset": "smoke"})  # after the run was requested
        later = upload_tick(instance, root, server, again.cursor)
    assert [r.partition_key for r in first.run_requests] == ["twice"]
    assert again.run_requests == []
    assert [r.partition_key for r in later.run_requests] == ["twice"]
    assert later.run_requests[0].run_key != first.run_requests[0].run_key


def test_runs_of_one_production_queue_one_after_another(tmp_path: Path) -> None:
    """The instance runs one run per production at a time: the newer manifest's run waits
    for the older run (which cannot publish), so they never share a work directory."""
    home = prepare_dagster_home(Settings.from_env({"DAGSTER_HOME": str(tmp_path / "home")}))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": PARTITION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in (
        limits
    )


# The pipeline: real assets on the smoke preset, one production on the fake Supabase, the
# `failed` callback as the run-status sensor sends it to a real callback server.

@dataclass
class Service:
    fake: FakeStorage
    server: CallbackServer
    instance: dg.DagsterInstance
    defs: dg.Definitions
    workdir: Path

    def run(self, *stages: str) -> dg.ExecuteInProcessResult:
        """Materialize `stages`, redoing them (`fresh`): a reused stage would meet no fault."""
        return self.defs.resolve_job_def(PROCESS_JOB_NAME).execute_in_process(
            instance=self.instance,
            partition_key=PRODUCTION,
            asset_selection=[dg.AssetKey(stage) for stage in stages],
            tags={FRESH_TAG: "true"},
            raise_on_error=False,
        )

    def retries(self, result: dg.ExecuteInProcessResult) -> int:
        return [e.event_type for e in result.all_events].count(
            dg.DagsterEventType.STEP_UP_FOR_RETRY
        )

    def callback(self, result: dg.ExecuteInProcessResult) -> dict[str, Any]:
        """What the app receives for this run's outcome: `failed` or `completed`."""
        sensor = production_completed_sensor if result.success else production_failed_sensor
        event = result.get_run_success_event() if result.success else result.get_run_failure_event()
        start = len(self.server.received)
        with dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_event=event,
            dagster_instance=self.instance,
            dagster_run=result.dagster_run,
            resources=self.defs.resources,
        ) as context:
            sensor(context)
        sent = self.server.wait_for(start + 1)[start:]
        (outcome,) = [r for r in sent if r.json["status"] != "processing"]
        assert outcome.signed_validly and outcome.json["run_id"] == result.run_id
        return outcome.json

    def results(self) -> list[str]:
        return sorted(k for k in self.fake.objects if k.startswith(f"{PRODUCTION}/results/"))

    def write_manifest(self) -> None:
        manifest = {"preset": "smoke", "callback_url": f"{self.server.url}/cb"}
        self.fake.put(f"{PRODUCTION}/production.json", json.dumps(manifest).encode())


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    from gameview_assets.core.samples import render_orbit_video

    folder = tmp_path_factory.mktemp("faults")
    video = folder / "orbit.mp4"
    render_orbit_video(video)
    with (
        FakeStorage() as fake,
        CallbackServer(secret=SECRET) as server,
        dg.instance_for_test() as instance,
    ):
        fake.put(f"{PRODUCTION}/videos/orbit.mp4", video.read_bytes(), "video/mp4")
        defs = dg.Definitions(
            assets=all_assets,
            jobs=[process_production_job],
            resources={
                "store": SupabaseStoreResource(url=fake.url, service_role_key=KEY),
                "workdir": WorkdirResource(root=str(folder / "work")),
                "callbacks": StudioCallbacks(
                    secret=SECRET, allowed_hosts=["127.0.0.1"], backoff_s=0.01
                ),
                "web_budget": WebBudgetResource(),
            },
        )
        instance.add_dynamic_partitions(productions.name, [PRODUCTION])
        service = Service(fake, server, instance, defs, folder / "work" / PRODUCTION)
        service.write_manifest()
        yield service


def assert_failed(error: dict[str, Any], stage: str, code: str, *words: str) -> None:
    assert (error["stage"], error["code"]) == (stage, code), error
    assert all(word in f"{error['message']} {error['hint']}" for word in words), error


def test_pipeline_storage_down_during_download_resumes_or_fails_clearly(
    service: Service,
) -> None:
    def video_download(fault: str) -> Callable[[str, str], str | None]:
        def decide(method: str, path: str) -> str | None:
            return fault if method == "GET" and path.endswith("orbit.mp4") else None

        return decide

    service.fake.fault = drops("GET", 2, "orbit.mp4")  # cut off twice: it goes on from there
    result = service.run("source_videos")
    assert result.success and service.retries(result) == 0
    ranges = [c[2]["range"] for c in service.fake.calls_to("outage")]
    assert ranges[0] is None and ranges[1].startswith("bytes=")

    service.fake.fault = video_download("503")  # the gateway answers 503 for good
    result = service.run("source_videos")
    service.fake.fault = lambda method, path: None
    assert service.retries(result) == 3  # the storage stages' retry policy, then it fails
    body = service.callback(result)
    assert body["status"] == "failed"
    assert_failed(body["error"], "source_videos", "storage_unavailable",
                  "faulty/videos/orbit.mp4", "HTTP 503", "service's fault", "retry")  # fmt: skip
    assert not list((service.workdir / "videos").glob("*"))  # no half-downloaded video
    assert service.results() == []
    assert service.run("source_videos", "frames", "sparse_model").success


def test_pipeline_a_rotated_key_fails_as_a_credentials_fault_not_a_missing_manifest(
    service: Service,
) -> None:
    # The real server answers a key it cannot verify with "Bucket not found" on reads, which
    # the store once took for a missing manifest, blaming the upload.
    rotated = SupabaseStoreResource(url=service.fake.url, service_role_key="rotated-key")
    resources = {**service.defs.resources, "store": rotated}
    defs = dg.Definitions(assets=all_assets, jobs=[process_production_job], resources=resources)

    result = replace(service, defs=defs).run("source_videos")

    assert not result.success and service.retries(result) == 0  # retrying cannot help
    reason = failure_of_run(service.instance, result.run_id).as_metadata()
    assert_failed(reason, "source_videos", "storage_misconfigured",
                  "SUPABASE_SERVICE_ROLE_KEY", "rotated", "service's fault")  # fmt: skip


def test_pipeline_disk_full_during_frames_fails_clearly_then_runs_again(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    monkeypatch.setattr(Image.Image, "save", half_then_full(Image.Image.save, after=3))
    result = service.run("frames")
    monkeypatch.undo()
    body = service.callback(result)
    assert_failed(body["error"], "frames", "disk_full", "ran out of disk space", "free space")
    assert not (service.workdir / "frames.json").exists()
    assert list((service.workdir / "frames").iterdir()) == []
    assert service.results() == []
    assert service.run("frames").success


def test_pipeline_disk_full_during_training_fails_clearly_then_runs_again(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checkpoint at step 100 of 150 is written; the disk is full by the trained splats.
    monkeypatch.setattr(checkpoint_module.torch, "save", half_then_full(torch.save, after=1))
    result = service.run("splat")
    monkeypatch.undo()
    body = service.callback(result)
    assert_failed(body["error"], "splat", "disk_full", "ran out of disk space", "splats.pt",
                  "free space")  # fmt: skip
    assert [p.name for p in (service.workdir / "splat").rglob("*.tmp")] == []
    assert not (service.workdir / "splat" / "splats.pt").exists()
    assert service.results() == []
    again = service.run("splat")
    assert again.success  # and nothing trained is lost: it resumes from the checkpoint
    metadata = again.asset_materializations_for_node("splat")[0].metadata
    assert metadata["resumed_from_step"].value == 100


def test_pipeline_storage_down_during_upload_publishes_nothing_then_runs_again(
    service: Service,
) -> None:
    service.fake.fault = after_calls(f"POST /storage/v1/object/{BUCKET}/{PRODUCTION}/", 3, "503")
    result = service.run("bundle")
    service.fake.fault = lambda method, path: None
    assert service.retries(result) == 3
    body = service.callback(result)
    assert_failed(body["error"], "bundle", "storage_unavailable", "nothing was published")
    assert service.results() == []

    result = service.run("bundle")
    body = service.callback(result)
    assert body["status"] == "completed"
    assert len(service.results()) == len(body["results"]) == 8


def test_pipeline_a_new_manifest_mid_run_is_not_published_over(service: Service) -> None:
    published = {k: service.fake.objects[k].etag for k in service.results()}
    service.write_manifest()  # the app wrote production.json again after this run started
    body = service.callback(service.run("bundle"))
    assert_failed(body["error"], "bundle", "superseded", "changed while this run was going",
                  "the run for the new manifest publishes")  # fmt: skip
    assert {k: service.fake.objects[k].etag for k in service.results()} == published
    assert [k for k in service.fake.objects if "/.results-" in k] == []

    assert service.run("source_videos").success  # the new manifest's run
    assert service.callback(service.run("bundle"))["status"] == "completed"
