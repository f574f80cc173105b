"""Run-status sensors: real runs in a test instance, callbacks received over real HTTP."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    Failure,
    asset,
    build_run_status_sensor_context,
    build_sensor_context,
    define_asset_job,
    instance_for_test,
)

from gameview_assets.assets.failures import failures_reported
from gameview_assets.core.callback_payload import verify_signature
from gameview_assets.core.production import RESULT_FILES, ProductionRun
from gameview_assets.jobs import PROCESS_JOB_NAME, WILL_RETRY_TAG
from gameview_assets.partitions import productions
from gameview_assets.resources import callbacks as callbacks_module
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import LocalStoreResource, WorkdirResource
from gameview_assets.resources.supabase_store import SupabaseStore
from gameview_assets.sensors.callback_sensors import (
    callback_outbox_sensor,
    production_canceled_sensor,
    production_completed_sensor,
    production_failed_sensor,
)
from gameview_assets_tests.callback_server import CallbackServer, Received
from gameview_assets_tests.resources.fake_supabase import BUCKET, KEY, FakeStorage

PRODUCTION = "kitchen"
SECRET = "sensor-secret"
METRICS = {"frames_extracted": 40, "frames_registered": 38, "splats": 51234, "psnr": 24.5}


@asset(partitions_def=productions)
def frames(context: AssetExecutionContext) -> None:
    behaviour = context.run.tags.get("test/behaviour")
    if behaviour == "capture_error":
        raise Failure(
            description="only 3 sharp frames in videos/a.mp4. Film for longer",
            metadata={
                "stage": "frames",
                "code": "too_few_frames",
                "message": "only 3 sharp frames in videos/a.mp4",
                "hint": "film for longer, moving slowly around the subject",
            },
        )
    if behaviour == "crash":
        raise RuntimeError("boom in frames")


@asset(partitions_def=productions, deps=[frames])
def bundle(context: AssetExecutionContext) -> None:
    """Publishes like the real `bundle` when the run names a fake Supabase to publish to."""
    storage_url = context.run.tags.get("test/supabase")
    if storage_url is None:
        return
    scene = Path(context.run.tags["test/scene"])
    store = SupabaseStore(storage_url, KEY, BUCKET)
    try:
        with failures_reported("bundle"):
            store.publish_results(PRODUCTION, {"scene.ply": scene})
    finally:
        store.close()


defs = Definitions(
    assets=[frames, bundle],
    jobs=[define_asset_job(PROCESS_JOB_NAME, selection=[frames, bundle])],
)


@pytest.fixture(scope="module")
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(productions.name, [PRODUCTION])
        yield instance


@pytest.fixture
def server() -> Iterator[CallbackServer]:
    with CallbackServer() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path, server: CallbackServer) -> Path:
    """The store, and the run's record that `source_videos` resolved from its manifest."""
    manifest = {"preset": "preview", "callback_url": f"{server.url}/studio/{PRODUCTION}"}
    (tmp_path / PRODUCTION / "videos").mkdir(parents=True)
    (tmp_path / PRODUCTION / "production.json").write_text(json.dumps(manifest))
    workdir(tmp_path).production(PRODUCTION).run.write(
        ProductionRun(PRODUCTION, "run-1", "preview", manifest["callback_url"], "v1", ())
    )
    return tmp_path


def workdir(store: Path) -> WorkdirResource:
    return WorkdirResource(root=str(store.parent / f"{store.name}-work"))


def write_results(store: Path) -> None:
    """Every result file, as `bundle` publishes them (their contents do not matter here)."""
    results = store / PRODUCTION / "results"
    results.mkdir(parents=True)
    for file_name in RESULT_FILES.values():
        (results / file_name).write_bytes(b"result\n")
    (results / "bundle.json").write_text(json.dumps({"files": [], "metrics": METRICS}))


def run(instance: DagsterInstance, behaviour: str, **kwargs: Any) -> ExecuteInProcessResult:
    return defs.resolve_job_def(PROCESS_JOB_NAME).execute_in_process(
        instance=instance,
        partition_key=PRODUCTION,
        tags={"test/behaviour": behaviour, **kwargs.pop("tags", {})},
        raise_on_error=False,
        **kwargs,
    )


def evaluate(sensor, instance, result: ExecuteInProcessResult, store: Path, server) -> None:
    event = result.get_run_success_event() if result.success else result.get_run_failure_event()
    context = build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),  # with tags added since
        resources={
            "store": LocalStoreResource(root=str(store)),
            "workdir": workdir(store),
            "callbacks": StudioCallbacks(
                default_url=f"{server.url}/default",
                secret=SECRET,
                allowed_hosts=["127.0.0.1"],
                backoff_s=0.01,
            ),
        },
    )
    sensor(context)


def only_callback(server: CallbackServer) -> Received:
    (received,) = server.wait_for(1)
    time.sleep(0.05)
    assert len(server.received) == 1
    ts, sig = received.headers["X-GameView-Timestamp"], received.headers["X-GameView-Signature"]
    assert verify_signature(SECRET, ts, received.body, sig)
    return received


def test_success_sends_completed_with_results_and_metrics(instance, store, server) -> None:
    write_results(store)
    result = run(instance, "ok")
    assert result.success

    evaluate(production_completed_sensor, instance, result, store, server)

    received = only_callback(server)
    body = received.json
    assert received.path == f"/studio/{PRODUCTION}"
    assert body["status"] == "completed"
    assert body["production_id"] == PRODUCTION
    assert body["run_id"] == result.run_id
    assert body["progress"] == 1.0
    assert body["metrics"] == METRICS
    assert body["error"] is None
    expected = {
        "ply": "scene.ply",
        "cameras": "cameras.json",
        "thumbnail": "thumbnail.jpg",
        "spz": "scene.spz",
        "compressed_ply": "scene.compressed.ply",
        "turntable": "turntable.mp4",
        "viewer": "viewer.html",
        "bundle": "bundle.json",
    }
    assert set(body["results"]) == set(expected)
    for name, file_name in expected.items():
        entry = body["results"][name]
        assert entry["key"] == f"{PRODUCTION}/results/{file_name}"
        assert entry["url"] == (store / PRODUCTION / "results" / file_name).as_uri()


def test_success_without_results_reports_them_missing(instance, store, server) -> None:
    result = run(instance, "ok")

    evaluate(production_completed_sensor, instance, result, store, server)

    body = only_callback(server).json
    assert body["status"] == "failed"
    assert body["error"]["code"] == "results_missing"


def test_a_subset_run_that_does_not_publish_sends_nothing(instance, store, server) -> None:
    write_results(store)
    result = run(instance, "ok", asset_selection=[frames.key])
    assert result.success

    evaluate(production_completed_sensor, instance, result, store, server)

    time.sleep(0.05)
    assert server.received == []


def test_stage_failure_sends_its_stage_code_message_and_hint(instance, store, server) -> None:
    result = run(instance, "capture_error")
    assert not result.success

    evaluate(production_failed_sensor, instance, result, store, server)

    body = only_callback(server).json
    assert body["status"] == "failed"
    assert body["run_id"] == result.run_id
    assert body["stage"] == "frames"
    assert body["results"] is None
    assert body["error"] == {
        "stage": "frames",
        "code": "too_few_frames",
        "message": "only 3 sharp frames in videos/a.mp4",
        "hint": "film for longer, moving slowly around the subject",
    }


def test_unexpected_error_is_an_internal_error(instance, store, server) -> None:
    result = run(instance, "crash")

    evaluate(production_failed_sensor, instance, result, store, server)

    error = only_callback(server).json["error"]
    assert error["stage"] == "frames"
    assert error["code"] == "internal_error"
    assert "boom in frames" in error["message"]
    assert error["hint"]


def test_a_failed_run_that_run_retries_will_re_execute_sends_nothing(
    instance, store, server
) -> None:
    """Its worker died (deploy/dagster.yaml retries such runs): the retry's outcome is the
    production's, so the app must not hear `failed` first."""
    result = run(instance, "crash")
    instance.add_run_tags(result.run_id, {WILL_RETRY_TAG: "true"})

    evaluate(production_failed_sensor, instance, result, store, server)

    assert server.received == []
    instance.add_run_tags(result.run_id, {WILL_RETRY_TAG: "false"})  # retries used up
    evaluate(production_failed_sensor, instance, result, store, server)
    assert only_callback(server).json["status"] == "failed"


def test_unreadable_run_record_falls_back_to_the_default_url(instance, store, server) -> None:
    workdir(store).production(PRODUCTION).run.path.write_text("{oops")
    result = run(instance, "capture_error")

    evaluate(production_failed_sensor, instance, result, store, server)

    assert only_callback(server).path == "/default"


def test_canceled_run_sends_failed(instance, store, server) -> None:
    result = run(instance, "crash")

    evaluate(production_canceled_sensor, instance, result, store, server)

    assert only_callback(server).json["error"]["code"] == "canceled"


def test_the_run_record_not_the_live_manifest_names_the_url(instance, store, server) -> None:
    """A manifest rewritten after the run resolved it does not redirect the run's callback."""
    manifest = {"preset": "preview", "callback_url": f"{server.url}/rewritten"}
    (store / PRODUCTION / "production.json").write_text(json.dumps(manifest))
    result = run(instance, "capture_error")

    evaluate(production_failed_sensor, instance, result, store, server)

    assert only_callback(server).path == f"/studio/{PRODUCTION}"


def test_a_run_that_never_resolved_its_manifest_uses_the_default_url(
    instance, store, server
) -> None:
    workdir(store).production(PRODUCTION).run.discard()
    result = run(instance, "capture_error")

    evaluate(production_failed_sensor, instance, result, store, server)

    assert only_callback(server).path == "/default"


def test_a_result_over_the_size_limit_fails_with_file_size_limit_and_hint(
    instance, store, server, tmp_path
) -> None:
    scene = tmp_path / "scene.ply"
    with scene.open("wb") as f:
        f.truncate(12_000_000)
    with FakeStorage(file_size_limit=5_000_000) as storage:
        tags = {"test/supabase": storage.url, "test/scene": str(scene)}
        result = run(instance, "ok", tags=tags)
        assert not result.success

        evaluate(production_failed_sensor, instance, result, store, server)

        error = only_callback(server).json["error"]
        assert error["stage"] == "bundle" and error["code"] == "result_too_large"
        assert error["message"] == (
            "scene.ply is 12.0 MB (12,000,000 bytes) and could not be stored: "
            "the limit of supabase://productions is 5.0 MB"
        )
        assert "smaller scene" in error["hint"] and "file size limit" in error["hint"]
        assert storage.objects == {}  # no results/

        storage.file_size_limit = 20_000_000  # an operator raised the limit
        assert run(instance, "ok", tags=tags).success
        assert storage.objects[f"{PRODUCTION}/results/scene.ply"].size == 12_000_000


def test_an_app_down_longer_than_all_retries_gets_the_callback_once_it_is_back(
    instance, store, server, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(callbacks_module, "OUTBOX_RETRY_S", 0.0)  # due at once, for the test
    callbacks = StudioCallbacks(
        secret=SECRET, allowed_hosts=["127.0.0.1"], outbox_dir=str(tmp_path / "outbox"),
        backoff_s=0.01,
    )  # fmt: skip
    # Down for the sensor's try and four outbox ticks: more than the 4 attempts of `send`.
    server.statuses = [503] * 5
    result = run(instance, "capture_error")
    event = result.get_run_failure_event()
    production_failed_sensor(
        build_run_status_sensor_context(
            sensor_name=production_failed_sensor.name,
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={"workdir": workdir(store), "callbacks": callbacks},
        )
    )
    assert len(server.wait_for(1)) == 1  # one try, no retries with backoff inside the tick
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 1

    outcomes = []
    for _ in range(6):
        with build_sensor_context(instance=instance, resources={"callbacks": callbacks}) as ctx:
            outcomes.append(callback_outbox_sensor(ctx).skip_message)

    assert [r.path for r in server.received] == [f"/studio/{PRODUCTION}"] * 6
    assert outcomes[:4] == ["callback outbox: 1 kept"] * 4
    assert outcomes[4:] == ["callback outbox: 1 delivered", "callback outbox: empty"]
    assert list((tmp_path / "outbox").glob("*.json")) == []
    for received in server.received:  # each signed when it was sent, not when kept
        ts = received.headers["X-GameView-Timestamp"]
        sig = received.headers["X-GameView-Signature"]
        assert verify_signature(SECRET, ts, received.body, sig)
    delivered = server.received[-1].json
    assert delivered["status"] == "failed" and delivered["error"]["code"] == "too_few_frames"
    assert delivered["run_id"] == result.run_id
