"""The production service as the README runs it, for the service tests and
benchmarks/bench_service.py: a `$DAGSTER_HOME` with deploy/dagster.yaml on a PostgreSQL
database, the processes started as real subprocesses, productions dropped into the local
store the way the studio app uploads them, and what happened read back from the instance."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from gameview_assets.core.production import RESULT_FILES
from gameview_assets.jobs import PARTITION_TAG
from gameview_assets.service import DEPLOY_DIR, Service
from gameview_assets_tests.processes import kill_tree
from gameview_assets_tests.service.postgres import free_port

REPO = Path(__file__).resolve().parents[2]
CALLBACK_SECRET = "service-secret"
LEFT_OUT = ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "GAMEVIEW_CALLBACK_URL")


@dataclass(frozen=True)
class ServiceSetup:
    """One deployment's folders and environment; processes' logs go to `logs`."""

    root: Path
    env: dict[str, str]

    @property
    def home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    @property
    def store(self) -> Path:
        return Path(self.env["GAMEVIEW_STORE"])

    @property
    def workdir(self) -> Path:
        return Path(self.env["GAMEVIEW_WORKDIR"])

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def service(self) -> Service:
        return Service(
            self.home,
            self.env["GAMEVIEW_CODE_SERVER_HOST"],
            int(self.env["GAMEVIEW_CODE_SERVER_PORT"]),
            web_port=int(self.env["GAMEVIEW_TEST_WEB_PORT"]),
        )

    def instance(self) -> dg.DagsterInstance:
        """The deployment's instance, opened in this process (its PG settings exported)."""
        for name, value in self.env.items():
            if name.startswith("DAGSTER_PG_"):
                os.environ[name] = value
        return dg.DagsterInstance.from_config(str(self.home))

    def log_tails(self, lines: int = 15) -> str:
        """The end of every process log, for a failure message."""
        parts = []
        for log in sorted(self.logs.rglob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.relative_to(self.logs)}\n" + "\n".join(tail))
        return "\n".join(parts)


def service_setup(
    root: Path, pg_env: dict[str, str], code_host: str = "localhost"
) -> ServiceSetup:
    """$DAGSTER_HOME with deploy/dagster.yaml copied in (README), a store and work folder.
    A `code_host` other than localhost (127.0.0.2) addresses the code server as another
    machine's, whose run workers the daemon cannot look up by pid (run_launcher.py)."""
    home = root / "dagster"
    home.mkdir(parents=True)
    shutil.copyfile(DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k not in LEFT_OUT}
    env.update(pg_env)
    env.update(
        DAGSTER_HOME=str(home),
        GAMEVIEW_STORE=str(root / "store"),
        GAMEVIEW_WORKDIR=str(root / "work"),
        GAMEVIEW_CODE_SERVER_HOST=code_host,
        GAMEVIEW_CODE_SERVER_PORT=str(free_port()),
        GAMEVIEW_TEST_WEB_PORT=str(free_port()),
        GAMEVIEW_CALLBACK_SECRET=CALLBACK_SECRET,
        GAMEVIEW_CALLBACK_ALLOWED_HOSTS="127.0.0.1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    (root / "logs").mkdir()
    return ServiceSetup(root, env)


def start_serve(setup: ServiceSetup, log_name: str = "serve") -> subprocess.Popen:
    """`gameview serve --production`, as the README starts it."""
    command = [sys.executable, "-m", "gameview_assets.cli", "serve", "--production",
               "--port", setup.env["GAMEVIEW_TEST_WEB_PORT"]]  # fmt: skip
    return _start(setup, command, log_name)


def start_process(setup: ServiceSetup, name: str, log_name: str | None = None) -> subprocess.Popen:
    """One of the three processes (`code-server`, `daemon`, `webserver`), by the README's
    command for it."""
    return _start(setup, setup.service().commands()[name], log_name or name)


def _start(setup: ServiceSetup, command: list[str], log_name: str) -> subprocess.Popen:
    log = setup.logs / f"{log_name}.log"
    with open(log, "ab") as out:
        return subprocess.Popen(
            command, env=setup.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop(process: subprocess.Popen, timeout_s: float = 120.0) -> int:
    """SIGTERM, as a person's Ctrl-C or a supervisor does; its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid)
        raise


def wait_until(
    condition: Callable[[], object], timeout_s: float, what: str, setup: ServiceSetup
) -> object:
    """Poll until `condition()` is truthy; on timeout fail with the processes' logs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s: {what}\n{setup.log_tails()}")


def drop_production(
    store: Path, production_id: str, video: Path, callback_url: str, preset: str = "smoke"
) -> None:
    """What the studio app does: the videos first, `production.json` last."""
    videos = store / production_id / "videos"
    videos.mkdir(parents=True)
    shutil.copyfile(video, videos / video.name)
    manifest = {"preset": preset, "callback_url": callback_url}
    staging = store / production_id / ".production.json.partial"
    staging.write_text(json.dumps(manifest), encoding="utf-8")
    staging.rename(store / production_id / "production.json")


def runs_of(instance: dg.DagsterInstance, production_id: str) -> list[dg.DagsterRun]:
    """Every run of a production, oldest first."""
    runs = instance.get_runs(dg.RunsFilter(tags={PARTITION_TAG: production_id}))
    return sorted(runs, key=lambda run: instance.get_run_record_by_id(run.run_id).create_timestamp)


def step_span(
    instance: dg.DagsterInstance, run_id: str, step_key: str
) -> tuple[float, float] | None:
    """When a step started in a run and when it ended (its success or failure, else the
    run's end); None if it never started."""
    start = end = None
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
             dg.DagsterEventType.STEP_FAILURE}  # fmt: skip
    for record in instance.all_logs(run_id, of_type=kinds):
        if record.step_key != step_key:
            continue
        if record.dagster_event_type == dg.DagsterEventType.STEP_START:
            start = record.timestamp
        else:
            end = record.timestamp
    if start is None:
        return None
    if end is None:
        end = instance.get_run_record_by_id(run_id).end_time or time.time()
    return start, end


def overlaps(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = open_now = 0
    for _, change in edges:
        open_now += change
        most = max(most, open_now)
    return most


class ResultsWatcher:
    """Looks at a production's `results/` every 20 ms from a thread and keeps each moment
    it existed without every result file (`partial`): the app must never see that."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.partial: list[list[str]] = []
        self.seen_complete = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ResultsWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        wanted = set(RESULT_FILES.values())
        while not self._done.wait(0.02):
            try:
                names = set(os.listdir(self.folder))
            except FileNotFoundError:
                continue
            if wanted <= names:
                self.seen_complete = True
            else:
                self.partial.append(sorted(names))


def assert_results_match_bundle(results: Path) -> None:
    """Every file bundle.json lists is there, with its size and sha256."""
    listed = json.loads((results / RESULT_FILES["bundle"]).read_text())["files"]
    assert {entry["name"] for entry in listed} >= set(RESULT_FILES.values()) - {"bundle.json"}
    for entry in listed:
        data = (results / entry["name"]).read_bytes()
        assert len(data) == entry["size"], entry["name"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["name"]


def callback_statuses(received: list, production_id: str) -> list[str]:
    """The statuses the app was told for a production, in arrival order."""
    return [r.json["status"] for r in received if r.json.get("production_id") == production_id]
