"""Dagster's default run launcher, plus the run-worker health check that run monitoring needs.

`DefaultRunLauncher` starts each run in a process of the code server but cannot say whether
that process is still alive, so with the service killed mid-run (a preempted machine) the
run would stay STARTED forever. Every run worker records its pid in the run's first
engine event ("Started process for run (pid: N)"); the daemon runs on the same machine as
the code server here, so it can look that process up. Dead (or the pid now belongs to a
younger process): the run is reported FAILED, and run retries re-execute it.

A code server on another machine (or in another container, as under docker compose) is
out of reach of a pid: it is asked over gRPC which runs it is executing. It lists each run
worker it started until that worker exits, and itself fails a run whose worker died under
it; a server that answers without the run was restarted since, and the worker went with it
(a container's processes end with it). A server that does not answer leaves the run RUNNING
(unknown is not dead: it may be restarting).
"""

from __future__ import annotations

import json
import socket

import dagster as dg
import psutil

# Not exported by `dagster`: the health-check types every launcher that supports run
# monitoring returns (dagster-k8s and dagster-docker import them from here too), and the
# code server's answer to `get_current_runs` (the client the default launcher uses to
# cancel a run).
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._grpc.types import GetCurrentRunsResult
from dagster_shared.serdes import deserialize_value

RUN_WORKER_MESSAGE = "Started process for run"
"""The start of the engine event in which Dagster's run worker records its pid."""
GRPC_INFO_TAG = ".dagster/grpc_info"
"""The tag in which the default launcher records the code server a run was launched on."""
PID_TIME_SLACK_S = 2.0
"""A process created this much after its pid was recorded is another process."""


def local_hosts() -> set[str]:
    """Names under which a code server on this machine is reached."""
    return {"localhost", "127.0.0.1", "::1", "0.0.0.0", socket.gethostname(), socket.getfqdn()}


def launched_here(run: dg.DagsterRun) -> bool:
    """Whether the run's code server (and so its worker) is on this machine."""
    info = json.loads(run.tags.get(GRPC_INFO_TAG) or "{}")
    return "socket" in info or info.get("host", "localhost") in local_hosts()


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid the run worker recorded, and when; None before it has (or for an in-process
    run, which has no separate worker)."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event is not None and (event.message or "").startswith(RUN_WORKER_MESSAGE):
            pid = event.engine_event_data.metadata.get("pid")
            if pid is not None:
                return int(pid.value), record.timestamp
    return None


def process_status(pid: int, recorded_at: float) -> WorkerStatus:
    """RUNNING while that very process lives; FAILED once it is gone (a zombie is gone)."""
    try:
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
        same = process.create_time() <= recorded_at + PID_TIME_SLACK_S
    except psutil.NoSuchProcess:
        return WorkerStatus.FAILED
    return WorkerStatus.RUNNING if alive and same else WorkerStatus.FAILED


class LocalProcessRunLauncher(dg.DefaultRunLauncher):
    """The default launcher, whose run workers run monitoring can check (module docstring)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if not launched_here(run):
            return self._ask_code_server(run)
        recorded = worker_pid(self._instance, run.run_id)
        if recorded is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker pid recorded")
        pid, recorded_at = recorded
        status = process_status(pid, recorded_at)
        return CheckRunHealthResult(status, f"run worker process {pid}: {status.value}")

    def _ask_code_server(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """Whether the code server the run was launched on still executes it (module
        docstring)."""
        client = self._get_grpc_client_for_termination(run.run_id)
        if client is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no code server recorded")
        server = f"code server {client.host}:{client.port or client.socket}"
        try:
            answer = deserialize_value(client.get_current_runs(), GetCurrentRunsResult)
        except Exception as exc:  # unreachable, or answering with an error
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"{server} did not answer: {reason}")
        if run.run_id in answer.current_runs:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"{server} executes the run")
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"{server} does not execute the run (restarted since its launch)"
        )
