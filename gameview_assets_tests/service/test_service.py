"""The production service end to end, as the README runs it: deploy/dagster.yaml on a real
PostgreSQL server, the code server, daemon and webserver as real processes, productions
dropped into the local store as the studio app uploads them, a real HTTP server as the app.

The slowest tests of the suite (smoke preset, minutes on a loaded 2-core machine): every
wait is on a condition, with generous limits, never on a duration.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psutil
import pytest

from gameview_assets.core.train.checkpoint import CHECKPOINT_FILE, checkpoints_in
from gameview_assets.core.workdir import ProductionPaths
from gameview_assets.jobs import WILL_RETRY_TAG
from gameview_assets.service import wait_for_port
from gameview_assets_tests.callback_server import CallbackServer
from gameview_assets_tests.processes import kill_tree
from gameview_assets_tests.service.harness import (
    CALLBACK_SECRET,
    ResultsWatcher,
    assert_results_match_bundle,
    callback_statuses,
    drop_production,
    overlaps,
    runs_of,
    service_setup,
    start_process,
    start_serve,
    step_span,
    stop,
    wait_until,
)

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 900.0
"""Generous: a smoke production takes about 30 s on an idle machine, minutes on a busy one."""
CALLBACK_TIMEOUT_S = 180.0
"""A run status sensor ticks every 30 s."""
STAGES = ["source_videos", "frames", "sparse_model", "splat", "bundle"]


@pytest.fixture(scope="module")
def orbit_video(tmp_path_factory) -> Path:
    from gameview_assets.core.samples import render_orbit_video

    path = tmp_path_factory.mktemp("sample") / "orbit.mp4"
    render_orbit_video(path)
    return path


def succeeded(instance: dg.DagsterInstance, production_id: str) -> bool:
    runs = runs_of(instance, production_id)
    return any(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)


def assert_told_once(app: CallbackServer, production_id: str) -> None:
    """`processing` first, then exactly one `completed`, never `failed`, all signed."""
    statuses = callback_statuses(app.received, production_id)
    assert statuses[0] == "processing", statuses
    assert statuses.count("completed") == 1 and statuses[-1] == "completed", statuses
    assert "failed" not in statuses, statuses
    assert all(r.signed_validly for r in app.received)


def test_two_productions_share_the_gpu_and_outlive_a_daemon_restart(
    tmp_path, pg_env, orbit_video
):
    """Two productions dropped at once both run, their `splat` steps one at a time (the
    `gpu` pool's limit is 1); the daemon stopped and started again mid-run loses nothing:
    one run per production, one `completed` callback each. The code server is addressed as
    another machine's (127.0.0.2), as under docker compose: run monitoring asks it over gRPC
    whether it still executes each run, and must never take a live run for a dead one."""
    setup = service_setup(tmp_path, pg_env, code_host="127.0.0.2")
    productions = ["prod-a", "prod-b"]
    processes = {}
    with CallbackServer(secret=CALLBACK_SECRET) as app:
        try:
            processes["code-server"] = start_process(setup, "code-server")
            service = setup.service()
            assert wait_for_port(service.code_host, service.code_port, processes["code-server"],
                                 RUN_TIMEOUT_S), setup.log_tails()  # fmt: skip
            for name in ("daemon", "webserver"):
                processes[name] = start_process(setup, name)
            for production_id in productions:
                drop_production(setup.store, production_id, orbit_video, app.url)
            with setup.instance() as instance:
                wait_until(
                    lambda: any(
                        run.status == dg.DagsterRunStatus.STARTED
                        for production_id in productions
                        for run in runs_of(instance, production_id)
                    ),
                    RUN_TIMEOUT_S, "a run started", setup,
                )  # fmt: skip
                stop(processes["daemon"])
                processes["daemon"] = start_process(setup, "daemon", "daemon-restarted")
                for production_id in productions:
                    wait_until(lambda p=production_id: succeeded(instance, p),
                               RUN_TIMEOUT_S, f"{production_id} succeeded", setup)  # fmt: skip
                    wait_until(
                        lambda p=production_id: "completed" in callback_statuses(app.received, p),
                        CALLBACK_TIMEOUT_S, f"{production_id}'s completed callback", setup,
                    )  # fmt: skip
                runs = {p: runs_of(instance, p) for p in productions}
                splat_spans = [step_span(instance, r[0].run_id, "splat") for r in runs.values()]
                records = [instance.get_run_record_by_id(r[0].run_id) for r in runs.values()]
        finally:
            for process in reversed(processes.values()):
                stop(process)
        for production_id in productions:
            assert len(runs[production_id]) == 1, runs[production_id]  # no duplicate run
            assert_told_once(app, production_id)
            assert_results_match_bundle(setup.store / production_id / "results")
    # Both runs were in progress together, yet only one trained at a time.
    assert overlaps([(r.start_time, r.end_time) for r in records]) == 2
    assert overlaps(splat_spans) == 1


def test_whole_service_killed_mid_training_recovers_with_no_one_acting(
    tmp_path, pg_env, orbit_video
):
    """SIGKILL `gameview serve --production` and every process under it (code server,
    daemon, webserver, the run worker and its step processes) while `splat` trains, then
    start it again as the README says. Run monitoring finds the run's worker dead, the run
    fails (no callback: it will be retried), run retries re-execute it from the failure:
    the stages that finished do not run again and `splat` resumes from its checkpoint.
    The app is told `completed` once, and `results/` is never seen partial."""
    setup = service_setup(tmp_path, pg_env)
    production_id = "prod-c"
    checkpoint = checkpoints_in(ProductionPaths.under(setup.workdir, production_id).splat)
    results = setup.store / production_id / "results"
    with CallbackServer(secret=CALLBACK_SECRET) as app, ResultsWatcher(results) as watcher:
        serve = start_serve(setup)
        try:
            drop_production(setup.store, production_id, orbit_video, app.url)
            wait_until((checkpoint / CHECKPOINT_FILE).exists, RUN_TIMEOUT_S,
                       "a training checkpoint", setup)  # fmt: skip
            killed = kill_tree(serve.pid)
            serve.wait()
            assert len(killed) >= 5  # gameview, code server, daemon, webserver, run worker
            assert not any(process.is_running() for process in killed)
            assert not results.exists()
            serve = start_serve(setup, "serve-restarted")
            with setup.instance() as instance:
                wait_until(lambda: succeeded(instance, production_id), RUN_TIMEOUT_S,
                           "the retried run succeeded", setup)  # fmt: skip
                wait_until(
                    lambda: "completed" in callback_statuses(app.received, production_id),
                    CALLBACK_TIMEOUT_S, "the completed callback", setup,
                )  # fmt: skip
                runs = runs_of(instance, production_id)
                retry_steps = {s for s in STAGES if step_span(instance, runs[-1].run_id, s)}
                splat = [
                    record.asset_materialization
                    for record in instance.all_logs(
                        runs[-1].run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                    )
                    if record.asset_materialization.asset_key == dg.AssetKey("splat")
                ]
            # SIGTERM (a supervisor's stop, like Ctrl-C) stops the three processes with it.
            processes = psutil.Process(serve.pid).children(recursive=True)
            assert stop(serve) == 0
            _, still_running = psutil.wait_procs(processes, timeout=120)
            assert still_running == []
        finally:
            stop(serve)
    assert [run.status.value for run in runs] == ["FAILURE", "SUCCESS"]
    assert runs[0].tags[WILL_RETRY_TAG] == "true"
    assert runs[1].parent_run_id == runs[0].run_id
    assert retry_steps == {"splat", "bundle"}  # finished stages were not run again
    # Training was redone from its checkpoint, not reused (`cached`) nor started over.
    assert splat[0].metadata["cached"].value is False
    assert splat[0].metadata["resumed_from_step"].value > 0
    assert_told_once(app, production_id)
    assert watcher.seen_complete and watcher.partial == []
    assert_results_match_bundle(results)
