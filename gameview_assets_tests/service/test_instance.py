"""deploy/dagster.yaml as Dagster itself loads it, on a real PostgreSQL server; the checks
`gameview serve --production` makes before starting; the run launcher's worker health check
on real processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import psutil
from dagster._core.events import EngineEventData  # not exported; only this test records one
from dagster._core.launcher import WorkerStatus
from dagster_postgres import PostgresRunStorage

from gameview_assets.cli import INSTANCE_YAML, main
from gameview_assets.run_launcher import GRPC_INFO_TAG, LocalProcessRunLauncher, process_status
from gameview_assets.service import DEPLOY_DIR, production_problem, wait_for_port
from gameview_assets_tests.service.harness import service_setup, start_process, stop


def production_home(tmp_path: Path, pg_env: dict[str, str], monkeypatch) -> Path:
    """$DAGSTER_HOME with deploy/dagster.yaml copied in, as the README says."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    for name, value in pg_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_production_instance_loads_on_postgres(tmp_path, pg_env, monkeypatch):
    home = production_home(tmp_path, pg_env, monkeypatch)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, LocalProcessRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert concurrency.pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds > 0
        assert instance.run_monitoring_cancel_timeout_seconds > 0
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        assert not instance.telemetry_enabled and not instance.nux_enabled
        # The storage works: a run written is read back from PostgreSQL.
        run = instance.add_run(dg.DagsterRun(job_name="probe", run_id=str(uuid.uuid4())))
        assert instance.get_run_by_id(run.run_id).job_name == "probe"
    assert production_problem(home) is None


def test_serve_production_refuses_an_instance_that_is_not_postgres(tmp_path, monkeypatch, capsys):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(INSTANCE_YAML, home / "dagster.yaml")  # the embedded SQLite instance
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["serve", "--production"]) == 1
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1
    assert "PostgreSQL" in message and str(DEPLOY_DIR / "dagster.yaml") in message
    (home / "dagster.yaml").unlink()
    assert "no " + str(home / "dagster.yaml") in production_problem(home)


def test_serve_production_refuses_an_unreachable_server(tmp_path, pg_env, monkeypatch, capsys):
    from gameview_assets_tests.service.postgres import free_port

    production_home(tmp_path, {**pg_env, "DAGSTER_PG_PORT": str(free_port())}, monkeypatch)
    assert main(["serve", "--production"]) == 1
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1
    assert "cannot reach the PostgreSQL server" in message and "DAGSTER_PG_" in message
    monkeypatch.delenv("DAGSTER_PG_HOST")
    assert "DAGSTER_PG_HOST is not set" in production_problem(tmp_path / "dagster")


def started_run(
    instance: dg.DagsterInstance, pid: int | None, host: str, port: int = 4266
) -> dg.DagsterRun:
    """A STARTED run launched on a code server at `host`, whose worker recorded `pid`."""
    run = instance.add_run(
        dg.DagsterRun(
            job_name="probe",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={GRPC_INFO_TAG: f'{{"host": "{host}", "port": {port}}}'},
        )
    )
    if pid is not None:
        instance.report_engine_event(
            f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
        )
    return run


def test_run_worker_health_follows_the_worker_process(tmp_path, pg_env, monkeypatch):
    home = production_home(tmp_path, pg_env, monkeypatch)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            launcher = instance.run_launcher
            run = started_run(instance, worker.pid, "localhost")
            health = launcher.check_run_worker_health(run)
            assert health.status == WorkerStatus.RUNNING and str(worker.pid) in health.msg
            worker.kill()
            worker.wait()
            assert launcher.check_run_worker_health(run).status == WorkerStatus.FAILED
            # Unknown is not dead: no pid recorded yet, or a worker on another machine.
            silent = started_run(instance, None, "localhost")
            assert launcher.check_run_worker_health(silent).status == WorkerStatus.RUNNING
            remote = started_run(instance, worker.pid, "code.example.internal")
            assert launcher.check_run_worker_health(remote).status == WorkerStatus.RUNNING
        # A process younger than the recorded pid is another process that reuses the pid.
        alive = psutil.Process()
        assert process_status(alive.pid, alive.create_time()) == WorkerStatus.RUNNING
        assert process_status(alive.pid, alive.create_time() - 60) == WorkerStatus.FAILED
    finally:
        worker.kill()
        worker.wait()


def test_a_code_server_elsewhere_is_asked_whether_it_still_executes_the_run(
    tmp_path, pg_env, monkeypatch
):
    """A code server addressed as another machine's (127.0.0.2): its run workers' pids mean
    nothing here, so the launcher asks the server itself. A real code server that answers
    without the run (restarted since the launch) means the worker is gone: FAILED. A server
    that does not answer may be restarting: RUNNING. (test_service's two-production test has
    the daemon ask it about live runs.)"""
    for name, value in pg_env.items():
        monkeypatch.setenv(name, value)
    setup = service_setup(tmp_path, pg_env, code_host="127.0.0.2")
    server = start_process(setup, "code-server")
    service = setup.service()
    try:
        assert wait_for_port(service.code_host, service.code_port, server, 300), setup.log_tails()
        with setup.instance() as instance:
            launcher = instance.run_launcher
            run = started_run(instance, None, service.code_host, service.code_port)
            health = launcher.check_run_worker_health(run)
            assert health.status == WorkerStatus.FAILED, health
            assert f"127.0.0.2:{service.code_port} does not execute the run" in health.msg
            stop(server)
            health = launcher.check_run_worker_health(run)
            assert health.status == WorkerStatus.RUNNING and "did not answer" in health.msg
    finally:
        stop(server)
