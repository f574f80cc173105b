"""Upload sensor ticks against a local store, with a real Dagster instance and a cursor."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context, instance_for_test

from gameview_assets.cli import submit_production
from gameview_assets.jobs import MANIFEST_VERSION_TAG, PARTITION_TAG, PRESET_TAG
from gameview_assets.partitions import productions
from gameview_assets.resources import supabase_store
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import LocalStoreResource, SupabaseStoreResource
from gameview_assets.sensors.upload_sensor import MAX_RUNS_PER_TICK, upload_sensor
from gameview_assets.settings import Settings
from gameview_assets_tests.callback_server import CallbackServer
from gameview_assets_tests.resources.fake_supabase import KEY, FakeStorage


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


def seen_of(result: SensorResult) -> dict[str, str]:
    """The cursor's `{production_id: manifest_version}`."""
    return json.loads(result.cursor)["seen"]


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
    version = seen_of(result)["kitchen"]
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
    assert seen_of(first) == {"lobby": version}

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
    assert seen_of(result) == {}

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


def test_hundreds_of_productions_are_requested_a_bounded_number_per_tick(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    ids = [f"prod-{i:03d}" for i in range(120)]
    for production_id in ids:
        add_videos(tmp_path, production_id)
        write_manifest(tmp_path, production_id, {"preset": "fast"})

    cursor, batches = None, []
    for _ in range(4):
        result = tick(instance, tmp_path, server, cursor)
        batches.append([r.partition_key for r in result.run_requests])
        assert added_keys(result) == batches[-1]
        apply(instance, result)
        cursor = result.cursor

    assert [len(b) for b in batches] == [MAX_RUNS_PER_TICK, MAX_RUNS_PER_TICK, 20, 0]
    assert [k for b in batches for k in b] == ids  # in order, each once
    assert set(seen_of(result)) == set(ids)
    assert len(result.cursor) < 120 * 48


def test_a_slow_store_stops_the_tick_at_its_budget_and_the_next_goes_on(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer, monkeypatch
) -> None:
    for production_id in ("a1", "a2", "a3", "a4", "a5"):
        add_videos(tmp_path, production_id)
        write_manifest(tmp_path, production_id, {})
    now = [0.0]

    def slow_clock() -> float:  # each look at the clock: 8 s later
        now[0] += 8.0
        return now[0]

    module = sys.modules[upload_sensor.__module__]  # the package's name is the sensor's
    monkeypatch.setattr(module, "clock", slow_clock)
    first = tick(instance, tmp_path, server, None)
    second = tick(instance, tmp_path, server, first.cursor)

    # Budget 20 s from the first reading (8 s); one reading after each check: 16, 24, 32.
    assert [r.partition_key for r in first.run_requests] == ["a1", "a2", "a3"]
    assert json.loads(first.cursor)["after"] == "a3"
    # The next tick goes on at a4, wraps around and stops at a1 (already handled).
    assert [r.partition_key for r in second.run_requests] == ["a4", "a5"]
    assert json.loads(second.cursor)["after"] == "a1"
    assert set(seen_of(second)) == {"a1", "a2", "a3", "a4", "a5"}


def supabase_tick(
    instance: DagsterInstance, fake: FakeStorage, server: CallbackServer
) -> SensorResult:
    with build_sensor_context(
        instance=instance,
        resources={
            "store": SupabaseStoreResource(url=fake.url, service_role_key=KEY),
            "callbacks": StudioCallbacks(default_url=f"{server.url}/default"),
        },
    ) as context:
        result = upload_sensor(context)
    assert isinstance(result, SensorResult)
    return result


def test_the_sensor_on_supabase_pages_and_never_mixes_up_ids_by_case(
    instance: DagsterInstance, server: CallbackServer, monkeypatch
) -> None:
    monkeypatch.setattr(supabase_store, "PAGE_SIZE", 3)
    with FakeStorage() as fake:
        for production_id in ("b1", "b2", "b3", "b4", "b5", "Alpha", "alpha", "Beta2"):
            fake.put(f"{production_id}/videos/a.mp4", b"v")
        for production_id in ("b1", "b2", "b3", "b4", "b5", "Alpha", "alpha", "Beta2"):
            fake.put(f"{production_id}/production.json", b'{"preset": "fast"}')
        fake.put("beta2/videos/a.mp4", b"v")  # beta2 has no manifest: Beta2's is not its
        result = supabase_tick(instance, fake, server)

    assert [r.partition_key for r in result.run_requests] == [
        "alpha", "b1", "b2", "b3", "b4", "b5"
    ]  # fmt: skip
    lists = [c[2] for c in fake.calls_to("list") if c[2]["prefix"] == ""]
    assert [c["offset"] for c in lists] == [0, 3, 6]


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

    assert set(seen_of(first)) == {"one", "two"}
    assert set(seen_of(second)) == {"one"}
    assert second.run_requests == []


def test_garbled_cursor_starts_over_without_crashing(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    add_videos(tmp_path, "one")
    write_manifest(tmp_path, "one", {})
    assert len(tick(instance, tmp_path, server, "not json").run_requests) == 1


def test_a_database_tick_cursor_starts_the_listing_over(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    """SUPABASE_DB_URL switched off: the database cursor is not a list of seen manifests."""
    add_videos(tmp_path, "one")
    write_manifest(tmp_path, "one", {})
    database_cursor = json.dumps({"db": {"since": "2026-01-01T00:00:00+00:00"}, "retry": []})
    result = tick(instance, tmp_path, server, database_cursor)
    assert [r.partition_key for r in result.run_requests] == ["one"]
    assert seen_of(result) == {"one": result.run_requests[0].tags[MANIFEST_VERSION_TAG]}


def test_misnamed_folders_are_reported_once_per_manifest_version_and_never_run(
    instance: DagsterInstance, tmp_path: Path, server: CallbackServer
) -> None:
    add_videos(tmp_path, "Kitchen")
    write_manifest(tmp_path, "Kitchen", {"callback_url": f"{server.url}/app"}, age_s=60)
    add_videos(tmp_path, "x" * 130)
    write_manifest(tmp_path, "x" * 130, {"callback_url": "http://10.0.0.7/app"})
    add_videos(tmp_path, "Garden")  # no manifest yet: nothing to say

    first = tick(instance, tmp_path, server, None)
    second = tick(instance, tmp_path, server, first.cursor)
    write_manifest(tmp_path, "Kitchen", {"callback_url": f"{server.url}/app", "preset": "fast"})
    third = tick(instance, tmp_path, server, second.cursor)

    assert [r.run_requests for r in (first, second, third)] == [[], [], []]
    assert instance.get_dynamic_partitions(productions.name) == []
    received = server.wait_for(3)
    time.sleep(0.05)
    assert len(server.received) == 3
    by_path = [(r.path, r.json["production_id"], r.json["error"]["code"]) for r in received]
    assert sorted(by_path) == [
        ("/app", "Kitchen", "invalid_production_id"),
        ("/app", "Kitchen", "invalid_production_id"),  # the rewritten manifest, once more
        ("/default", "x" * 130, "invalid_production_id"),  # its own URL is refused
    ]
    kitchen = next(r.json["error"] for r in received if r.json["production_id"] == "Kitchen")
    assert "upper-case" in kitchen["message"] and "'kitchen'" in kitchen["hint"]


def test_misnamed_folder_on_supabase_is_reported_and_its_lowercase_twin_runs(
    instance: DagsterInstance, server: CallbackServer
) -> None:
    with FakeStorage() as fake:
        fake.put("Alpha/videos/a.mp4", b"v")
        fake.put("Alpha/production.json", b'{"preset": "fast"}')
        fake.put("beta/videos/a.mp4", b"v")
        fake.put("beta/production.json", b'{"preset": "fast"}')
        result = supabase_tick(instance, fake, server)

    assert [r.partition_key for r in result.run_requests] == ["beta"]
    (report,) = server.wait_for(1)
    assert report.json["production_id"] == "Alpha"
    assert report.json["error"]["code"] == "invalid_production_id"
