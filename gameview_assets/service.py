"""`gameview serve --production`: the code server, the daemon and the webserver as three
processes on one machine, on the PostgreSQL instance at `$DAGSTER_HOME`, stopped together.

The commands are the README's ("Running in production"); each process logs to its own file
under `$DAGSTER_HOME/service-logs/`. If one of them exits, the others are stopped too, so a process
supervisor (systemd, a container runtime) sees the service down and restarts it whole.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from gameview_assets.jobs import CODE_LOCATION

DEPLOY_DIR = Path(__file__).resolve().parent.parent / "deploy"
WORKSPACE_YAML = DEPLOY_DIR / "workspace.yaml"
CODE_SERVER_DEFAULTS = {
    "GAMEVIEW_CODE_SERVER_HOST": "localhost",
    "GAMEVIEW_CODE_SERVER_PORT": "4266",
}
STOP_GRACE_S = 30.0
"""How long each process has to stop on SIGTERM before it is killed."""
CODE_SERVER_START_S = 300.0
"""How long the code server may take to load the definitions and listen."""


@dataclass(frozen=True)
class Service:
    """Where the processes listen and log."""

    home: Path
    code_host: str
    code_port: int
    web_host: str = "127.0.0.1"
    web_port: int = 3000

    @property
    def log_dir(self) -> Path:
        # Not $DAGSTER_HOME/logs: Dagster moves files from there to .logs_queue and deletes them.
        return self.home / "service-logs"

    def commands(self) -> dict[str, list[str]]:
        """The three processes: the README's commands, from this interpreter's environment
        (so no activated venv is needed)."""
        scripts = Path(sys.executable).parent
        workspace = str(WORKSPACE_YAML)
        return {
            "code-server": [str(scripts / "dagster"), "api", "grpc",
                            "-m", "gameview_assets.definitions", "--location-name", CODE_LOCATION,
                            "-h", self.code_host, "-p", str(self.code_port)],
            "daemon": [str(scripts / "dagster-daemon"), "run", "-w", workspace],
            "webserver": [str(scripts / "dagster-webserver"), "-w", workspace,
                          "-h", self.web_host, "-p", str(self.web_port)],
        }  # fmt: skip


def production_problem(home: Path) -> str | None:
    """Why `$DAGSTER_HOME` cannot serve production (not a PostgreSQL instance, or the
    database cannot be reached), in one line; None when it can."""
    config_path = home / "dagster.yaml"
    hint = f"copy {DEPLOY_DIR / 'dagster.yaml'} there and set DAGSTER_PG_*"
    if not config_path.is_file():
        return f"no {config_path}: {hint}"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    postgres = (config.get("storage") or {}).get("postgres")
    if not isinstance(postgres, dict):
        return f"{config_path} does not keep its storage in PostgreSQL: {hint}"
    try:
        from sqlalchemy import create_engine

        # The URL and driver Dagster will use, with a short timeout.
        engine = create_engine(postgres_url(postgres), connect_args={"connect_timeout": 5})
        try:
            engine.connect().close()
        finally:
            engine.dispose()
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return (
            f"cannot reach the PostgreSQL server of {config_path} ({reason}): "
            "start it or fix DAGSTER_PG_*"
        )
    return None


def postgres_url(postgres: dict) -> str:
    """The connection URL of a `storage: postgres:` block, `{env: NAME}` values resolved."""
    from dagster_postgres.utils import pg_url_from_config

    def resolve(value: object) -> object:
        if isinstance(value, dict) and "env" in value:
            name = value["env"]
            if name not in os.environ:
                raise ValueError(f"{name} is not set")
            return os.environ[name]
        return value

    if "postgres_url" in postgres:
        return str(resolve(postgres["postgres_url"]))
    db = {key: resolve(value) for key, value in (postgres.get("postgres_db") or {}).items()}
    return pg_url_from_config({"postgres_db": db})


def wait_for_port(
    host: str,
    port: int,
    process: subprocess.Popen,
    timeout_s: float,
    stopped: Callable[[], bool] = lambda: False,
) -> bool:
    """Whether the process listens on host:port before it exits, time runs out or `stopped()`
    (a SIGTERM while it loads) says to give up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None and not stopped():
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return True
        except OSError:
            time.sleep(0.5)
    return False


def stop_all(processes: dict[str, subprocess.Popen]) -> None:
    """SIGTERM to each (webserver and daemon before the code server), then SIGKILL to any
    still running after the grace period."""
    for process in reversed(processes.values()):
        if process.poll() is None:
            process.terminate()
    for process in reversed(processes.values()):
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_service(service: Service) -> int:
    """Start the three processes, the code server first; return when one exits or on
    SIGINT/SIGTERM, after stopping all of them."""
    service.log_dir.mkdir(parents=True, exist_ok=True)
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, command in service.commands().items():
            with open(service.log_dir / f"{name}.log", "ab") as log:
                # Own sessions: Ctrl-C reaches this process only, which stops them in order.
                processes[name] = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            print(f"{name}: pid {processes[name].pid}, log {log.name}", file=sys.stderr)
            if name == "code-server" and not wait_for_port(
                service.code_host,
                service.code_port,
                processes[name],
                CODE_SERVER_START_S,
                lambda: bool(stopping),
            ):
                if stopping:  # stopped while the code server loaded: nothing more to start
                    return 0
                print(f"error: the code server did not start: see {log.name}", file=sys.stderr)
                return 1
        print(f"webserver: http://{service.web_host}:{service.web_port}", file=sys.stderr)
        while not stopping:
            exited = [name for name, p in processes.items() if p.poll() is not None]
            if exited:
                log_file = service.log_dir / f"{exited[0]}.log"
                print(f"error: {exited[0]} exited: stopping the others; see {log_file}",
                      file=sys.stderr)  # fmt: skip
                return 1
            time.sleep(0.5)
        return 0
    finally:
        stop_all(processes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
