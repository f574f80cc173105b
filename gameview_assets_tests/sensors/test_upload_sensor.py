"""Upload sensor ticks against a local store, with a real Dagster instance and a cursor."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context, instance_for_test

from gameview_assets.cli import submit_production
from gameview_assets.jobs import MANIFEST_VERSION_TAG, PARTITION_TAG, PRESET_TAG
from gameview_assets.partitions import productions
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import LocalStoreResource
from gameview_assets.sensors.upload_sensor import upload_sensor
from gameview_assets.settings import Settings
from gameview_assets_tests.callback_server import CallbackServer


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def server() -> Iterator[CallbackServer]:
    with CallbackServer() as server:
        yield server


def add_videos(store: Path, production_id: str, names: tuple[str, ...] = ("a.mp4",)) -> None:
    videos = store / production_id / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for name in names:
        (videos / name).write_bytes(b"not really a video")


def write_manifest(store: Path, production_id: str, manifest: dict | str, age_s: float = 0) -> None:
    path = store / production_id / "production.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


def tick(
    instance: DagsterInstance, store: Path, server: CallbackServer, cursor: str | None
) -> SensorResult:
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "store": LocalStoreResource(root=str(store)),
            "callbacks": StudioCallbacks(
                default_url=f"{server.url}/default",
                secret="s",
                allowed_hosts=["127.0.0.1"],
                backoff_s=0.01,
            ),
        },
    )
    result = upload_sensor(context)
    assert isinstance(result, SensorResult)
    return result


def apply(instance: DagsterInstance, result: SensorResult) -> None:
    """What the daemon does with a tick's partition requests."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)


def added_keys(result: SensorResult) -> list[str]:
    return [k for r in result.dynamic_partitions_requests or [] for k in r.partition_keys]


def test_new_production_adds_its_partition_and_starts_one_run(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    add_videos(tmp_path, "kitchen")
    write_manifest(tmp_path, "kitchen", {"preset": "preview"})

    result = tick(instance, tmp_path, server, None)

    (request,) = result.run_requests
    version = json.loads(result.cursor)["kitchen"]
    assert request.partition_key == "kitchen"
    assert request.run_key == f"kitchen:{version}"
    assert request.tags[MANIFEST_VERSION_TAG] == version
    assert request.tags[PRESET_TAG] == "preview"
    (add,) = result.dynamic_partitions_requests
    assert add.partitions_def_name == productions.name
    assert list(add.partition_keys) == ["kitchen"]

    apply(instance, result)
    again = tick(instance, tmp_path, server, result.cursor)
    assert again.run_requests == []
    assert again.dynamic_partitions_requests == []
    assert again.cursor == result.cursor


@dg.op
def nothing() -> None:
    pass


@dg.job
def stand_in_for_the_cli_run() -> None:
    nothing()


def test_production_processed_by_the_cli_is_not_run_again(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    store = tmp_path / "store"
    video = tmp_path / "lobby.mp4"
    video.write_bytes(b"not really a video")
    settings = Settings.from_env({"GAMEVIEW_STORE": str(store), "GAMEVIEW_WORKDIR": str(tmp_path)})
    version = submit_production(settings, [video], "preview", "lobby")
    assert version is not None
    # A run tagged as `gameview process` tags the one it starts in-process.
    stand_in_for_the_cli_run.execute_in_process(
        instance=instance, tags={PARTITION_TAG: "lobby", MANIFEST_VERSION_TAG: version}
    )

    first = tick(instance, store, server, None)
    assert first.run_requests == []
    assert json.loads(first.cursor) == {"lobby": version}

    write_manifest(store, "lobby", {"preset": "fast"})
    (rerun,) = tick(instance, store, server, first.cursor).run_requests
    assert rerun.partition_key == "lobby" and rerun.tags[PRESET_TAG] == "fast"


def test_half_uploaded_production_waits_for_its_manifest(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    add_videos(tmp_path, "garden", ("a.mp4", "b.mp4"))

    result = tick(instance, tmp_path, server, None)

    assert result.run_requests == []
    assert result.dynamic_partitions_requests == []
    assert json.loads(result.cursor) == {}

    write_manifest(tmp_path, "garden", {"preset": "fast"})
    assert [
        r.partition_key for r in tick(instance, tmp_path, server, result.cursor).run_requests
    ] == ["garden"]


def test_updated_manifest_starts_a_fresh_run(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    add_videos(tmp_path, "hall")
    write_manifest(tmp_path, "hall", {"preset": "preview"}, age_s=60)
    first = tick(instance, tmp_path, server, None)
    apply(instance, first)

    add_videos(tmp_path, "hall", ("a.mp4", "b.mp4"))
    write_manifest(tmp_path, "hall", {"preset": "high", "videos": ["videos/a.mp4", "videos/b.mp4"]})
    second = tick(instance, tmp_path, server, first.cursor)

    (old,), (new,) = first.run_requests, second.run_requests
    assert new.partition_key == "hall"
    assert new.run_key != old.run_key
    assert new.tags[PRESET_TAG] == "high"
    assert second.dynamic_partitions_requests == []  # the partition exists already
    assert tick(instance, tmp_path, server, second.cursor).run_requests == []


def test_hundreds_of_productions_in_one_tick(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    ids = [f"prod-{i:03d}" for i in range(300)]
    for production_id in ids:
        add_videos(tmp_path, production_id)
        write_manifest(tmp_path, production_id, {"preset": "fast"})

    started = time.monotonic()
    result = tick(instance, tmp_path, server, None)
    elapsed = time.monotonic() - started

    assert sorted(r.partition_key for r in result.run_requests) == ids
    assert len({r.run_key for r in result.run_requests}) == 300
    assert sorted(added_keys(result)) == ids
    assert len(result.dynamic_partitions_requests) == 1
    assert len(result.cursor) < 300 * 48
    assert elapsed < 5

    apply(instance, result)
    started = time.monotonic()
    assert tick(instance, tmp_path, server, result.cursor).run_requests == []
    assert time.monotonic() - started < 3


def test_invalid_manifest_is_skipped_reported_once_and_others_still_run(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    add_videos(tmp_path, "bad")
    write_manifest(tmp_path, "bad", {"preset": "ultra", "callback_url": f"{server.url}/bad"})
    add_videos(tmp_path, "broken")
    write_manifest(tmp_path, "broken", "{not json")
    add_videos(tmp_path, "good")
    write_manifest(tmp_path, "good", {})

    result = tick(instance, tmp_path, server, None)

    assert [r.partition_key for r in result.run_requests] == ["good"]
    assert added_keys(result) == ["good"]
    received = {r.path: r.json for r in server.wait_for(2)}
    assert set(received) == {"/bad", "/default"}
    assert received["/bad"]["status"] == "failed"
    assert received["/bad"]["run_id"] is None
    assert received["/bad"]["error"]["code"] == "invalid_manifest"
    assert "ultra" in received["/bad"]["error"]["message"]
    assert received["/default"]["production_id"] == "broken"

    apply(instance, result)
    assert tick(instance, tmp_path, server, result.cursor).run_requests == []
    time.sleep(0.05)
    assert len(server.received) == 2


def test_deleted_productions_leave_the_cursor(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    for production_id in ("one", "two"):
        add_videos(tmp_path, production_id)
        write_manifest(tmp_path, production_id, {})
    first = tick(instance, tmp_path, server, None)
    (tmp_path / "two" / "production.json").unlink()

    second = tick(instance, tmp_path, server, first.cursor)

    assert set(json.loads(first.cursor)) == {"one", "two"}
    assert set(json.loads(second.cursor)) == {"one"}
    assert second.run_requests == []


def test_garbled_cursor_starts_over_without_crashing(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    add_videos(tmp_path, "one")
    write_manifest(tmp_path, "one", {})
    assert len(tick(instance, tmp_path, server, "not json").run_requests) == 1
