"""Retries that resume, in a real Dagster instance: the process training `splat` is killed
with SIGKILL after its first checkpoint; the multiprocess executor retries the step, which
resumes from the checkpoint, and the app gets exactly one `completed` callback. Runs again of
the finished production reuse every stage (`cached`); a changed preset redoes `frames` on."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg
import pytest

from gameview_assets.core.train.checkpoint import CHECKPOINT_FILE, checkpoints_in
from gameview_assets.core.workdir import ProductionPaths
from gameview_assets.definitions import build_definitions
from gameview_assets.jobs import FRESH_TAG, PARTITION_TAG, PROCESS_JOB_NAME
from gameview_assets.presets import PRESETS
from gameview_assets.sensors.callback_sensors import (
    production_completed_sensor,
    production_failed_sensor,
)
from gameview_assets.settings import Settings
from gameview_assets_tests.assets.test_pipeline import STAGES, drop_production
from gameview_assets_tests.callback_server import CallbackServer

PRODUCTION = "resumed"
SECRET = "resume-secret"
WAIT_S = 600.0  # generous: the machine may be busy; nothing here asserts a duration


def production_job() -> dg.JobDefinition:
    """The job as a code server loads it, rebuilt in each step process from the environment."""
    return build_definitions(Settings.from_env()).resolve_job_def(PROCESS_JOB_NAME)


@dataclass
class KilledRun:
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    server: CallbackServer
    result: dg.ExecutionResult
    killed_pid: int
    events: list[dg.EventLogEntry]


def step_worker_pid(instance: dg.DagsterInstance, run_id: str, step: str) -> int | None:
    """The pid of the latest process started for `step` (the executor logs each one)."""
    started = [
        entry.dagster_event
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED)
        if entry.dagster_event and entry.dagster_event.step_key == step
    ]
    if not started:
        return None
    return int(started[-1].engine_event_data.metadata["pid"].value)


def kill_training_after_checkpoint(
    instance: dg.DagsterInstance, checkpoint: Path, killed: list[int]
) -> None:
    """Wait for the first checkpoint on disk, then SIGKILL the process running `splat`."""
    deadline = time.monotonic() + WAIT_S
    while not checkpoint.is_file():
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)
    (run,) = instance.get_runs()
    pid = step_worker_pid(instance, run.run_id, "splat")
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # training ended before the kill: the test says so below
            return
        killed.append(pid)


def tick(sensor: dg.RunStatusSensorDefinition, defs: dg.Definitions, instance, cursor):
    """One evaluation of a run-status sensor as the daemon does it; returns its cursor."""
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources=defs.resources,
        repository_def=defs.get_repository_def(),
    ) as context:
        sensor.evaluate_tick(context)
        return context.cursor


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> Iterator[KilledRun]:
    from gameview_assets.core.samples import render_orbit_video

    root = tmp_path_factory.mktemp("resume")
    video = root / "orbit.mp4"
    render_orbit_video(video)
    with (
        pytest.MonkeyPatch.context() as env,
        CallbackServer(secret=SECRET) as server,
        dg.instance_for_test() as instance,
    ):
        env.setenv("GAMEVIEW_STORE", str(root / "store"))
        env.setenv("GAMEVIEW_WORKDIR", str(root / "work"))
        env.setenv("GAMEVIEW_CALLBACK_SECRET", SECRET)
        env.setenv("GAMEVIEW_CALLBACK_ALLOWED_HOSTS", "127.0.0.1")
        for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "GAMEVIEW_CALLBACK_URL"):
            env.delenv(name, raising=False)
        settings = Settings.from_env()
        defs = build_definitions(settings)
        drop_production(settings.store_root, PRODUCTION, video, f"{server.url}/cb", "smoke")
        instance.add_dynamic_partitions("productions", [PRODUCTION])
        cursors = {
            sensor: tick(sensor, defs, instance, None)
            for sensor in (production_completed_sensor, production_failed_sensor)
        }
        paths = ProductionPaths.under(settings.workdir, PRODUCTION)
        killed: list[int] = []
        killer = threading.Thread(
            target=kill_training_after_checkpoint,
            args=(instance, checkpoints_in(paths.splat) / CHECKPOINT_FILE, killed),
            daemon=True,
        )
        killer.start()
        result = dg.execute_job(
            dg.reconstructable(production_job),
            instance=instance,
            tags={PARTITION_TAG: PRODUCTION},
        )
        killer.join(timeout=WAIT_S)
        for sensor, cursor in cursors.items():
            tick(sensor, defs, instance, cursor)
        events = list(instance.all_logs(result.run_id))
        assert killed, "the splat step was not killed after its first checkpoint"
        yield KilledRun(settings, defs, instance, server, result, killed[0], events)


def test_killed_training_is_retried_resumes_and_completes_once(killed_run: KilledRun) -> None:
    result, events = killed_run.result, killed_run.events
    assert result.success
    splat_events = [e.dagster_event for e in events if e.dagster_event and e.step_key == "splat"]
    kinds = [event.event_type for event in splat_events]
    assert kinds.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert kinds.count(dg.DagsterEventType.STEP_RESTARTED) == 1
    assert kinds.count(dg.DagsterEventType.STEP_SUCCESS) == 1
    pids = [
        int(event.engine_event_data.metadata["pid"].value)
        for event in splat_events
        if event.event_type == dg.DagsterEventType.STEP_WORKER_STARTED
    ]
    assert len(pids) == 2 and pids[0] == killed_run.killed_pid != pids[1]

    # The retried attempt's first progress is its checkpoint's step, not 0.
    restarted = kinds.index(dg.DagsterEventType.STEP_RESTARTED)
    retried_progress = [
        event.event_specific_data.asset_observation.metadata
        for event in splat_events[restarted:]
        if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    ]
    first = retried_progress[0]
    assert first["status"].value == "resumed at step 100"
    assert first["stage_progress"].value == pytest.approx(100 / 150, abs=1e-3)

    materialized = killed_run.instance.get_latest_materialization_event(dg.AssetKey("splat"))
    metadata = materialized.asset_materialization.metadata
    assert metadata["resumed_from_step"].value == 100
    assert metadata["cached"].value is False

    received = [r.json for r in killed_run.server.received]
    assert all(r.signed_validly for r in killed_run.server.received)
    finals = [r for r in received if r["status"] != "processing"]
    assert [r["status"] for r in finals] == ["completed"]
    assert finals[0]["run_id"] == result.run_id
    results = killed_run.settings.store_root / PRODUCTION / "results"
    assert (results / "bundle.json").is_file() and (results / "scene.ply").is_file()


def stage_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        event.asset_key.to_user_string(): {
            key: getattr(value, "value", value) for key, value in event.metadata.items()
        }
        for event in result.get_asset_materialization_events()
        for event in [event.step_materialization_data.materialization]
    }


def checks_passed(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {check.check_name: check.passed for check in result.get_asset_check_evaluations()}


def test_a_finished_production_run_again_reuses_every_stage(killed_run: KilledRun) -> None:
    job = killed_run.defs.resolve_job_def(PROCESS_JOB_NAME)
    results = killed_run.settings.store_root / PRODUCTION / "results"
    published = (results / "bundle.json").read_bytes()
    (results / "bundle.json").unlink()  # publishing happens again even when bundle is reused
    again = job.execute_in_process(instance=killed_run.instance, partition_key=PRODUCTION)
    assert again.success
    metadata = stage_metadata(again)
    assert {stage: metadata[stage]["cached"] for stage in STAGES} == dict.fromkeys(STAGES, True)
    assert metadata["splat"]["reused_from_run"] == killed_run.result.run_id
    assert "splat/splats.pt" in metadata["splat"]["reused"]
    assert metadata["splat"]["resumed_from_step"] == 100  # what that run reported
    assert checks_passed(again) == dict.fromkeys(
        ["enough_frames_registered", "held_out_psnr", "valid_ply"], True
    )  # the quality gates, re-emitted
    assert (results / "bundle.json").read_bytes() == published

    # A preset whose frame size changed (same name): frames and what follows are redone
    # (splat and bundle by the same digest chain: see core/test_stage_cache.py).
    early = [dg.AssetKey(stage) for stage in ("source_videos", "frames", "sparse_model")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PRESETS, "smoke", replace(PRESETS["smoke"], frame_max_size=288))
        changed = job.execute_in_process(
            instance=killed_run.instance, partition_key=PRODUCTION, asset_selection=early
        )
    assert changed.success
    metadata = stage_metadata(changed)
    assert [metadata[key.to_user_string()]["cached"] for key in early] == [True, False, False]
    assert metadata["frames"]["max_size_px"] == 288

    fresh = job.execute_in_process(
        instance=killed_run.instance,
        partition_key=PRODUCTION,
        tags={FRESH_TAG: "true"},
        asset_selection=early[:1],
    )
    assert stage_metadata(fresh)["source_videos"]["cached"] is False
