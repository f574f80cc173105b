"""`gameview serve` stops, with every process it started, on SIGTERM however it was started.

A shell script's `command &` starts the command with SIGINT ignored (and `setsid` keeps it
so); Dagster copies SIGINT's disposition onto SIGTERM, so a `dagster dev` started that way
ignored both. Each test starts `gameview serve` the way a script does, waits until its
webserver answers, sends SIGTERM to the one process the script knows (`$!`), and waits for
every process of the service, found by its `$DAGSTER_HOME`, to be gone.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from gameview_assets_tests.processes import kill_tree
from gameview_assets_tests.service.harness import REPO, ServiceSetup, service_setup, wait_until

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 600.0
"""Generous: loading the definitions takes tens of seconds on a busy 2-core machine."""
STOP_TIMEOUT_S = 120.0
"""Dagster gives its processes up to 60 s each to stop before it kills them."""
SIGINT_BIT = 1 << (signal.SIGINT - 1)


def start_as_script(setup: ServiceSetup, args: list[str], setsid: bool) -> int:
    """`gameview <args> &` from a non-interactive bash (under `setsid` if asked); the pid
    a script gets from `$!`. Bash exits at once: the service is nobody's child but init's."""
    command = shlex.join([sys.executable, "-m", "gameview_assets.cli", *args])
    log = shlex.quote(str(setup.logs / "serve.log"))
    script = f"{'setsid ' if setsid else ''}{command} >> {log} 2>&1 & echo $!"
    done = subprocess.run(["bash", "-c", script], env=setup.env, cwd=REPO, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(done.stdout.strip())


def service_processes(home: Path) -> list[psutil.Process]:
    """Every live process whose environment has this `$DAGSTER_HOME` (zombies, which the
    container's init may never reap, have stopped)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("DAGSTER_HOME") == str(home):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def answers(port: str) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def assert_stops_on_sigterm(
    setup: ServiceSetup, args: list[str], setsid: bool, target: str = ""
) -> None:
    """Start, wait for the webserver, SIGTERM the service's own process (or the one whose
    command line has `target`), and wait for every process of the service to stop."""
    pid = start_as_script(setup, args, setsid)
    try:
        port = setup.env["GAMEVIEW_TEST_WEB_PORT"]
        wait_until(lambda: answers(port), START_TIMEOUT_S, "the webserver answers", setup)
        started = service_processes(setup.home)
        assert len(started) >= 3, started  # gameview/dagster dev, webserver, daemon, ...
        (victim,) = (
            [p for p in started if target in " ".join(p.cmdline())]
            if target
            else [psutil.Process(pid)]
        )

        victim.send_signal(signal.SIGTERM)

        wait_until(lambda: not service_processes(setup.home), STOP_TIMEOUT_S,
                   "every process of the service stopped on SIGTERM", setup)  # fmt: skip
        assert not answers(port)
    finally:
        kill_tree(pid)
        for process in service_processes(setup.home):
            kill_tree(process.pid)


def test_a_script_starts_commands_with_sigint_ignored(tmp_path: Path) -> None:
    """The premise: what `command &` and `setsid command &` do to SIGINT."""
    for prefix in ("", "setsid "):
        script = f"{prefix}sleep 600 >/dev/null 2>&1 & echo $!"
        done = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True)
        pid = int(done.stdout.strip())
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            ignored = int(next(line for line in status.splitlines()
                               if line.startswith("SigIgn:")).split()[1], 16)  # fmt: skip
            assert ignored & SIGINT_BIT, prefix
        finally:
            psutil.Process(pid).kill()


@pytest.mark.parametrize("setsid", [False, True], ids=["background", "setsid"])
def test_serve_started_by_a_script_stops_on_sigterm(tmp_path: Path, setsid: bool) -> None:
    setup = service_setup(tmp_path, {})
    (setup.home / "dagster.yaml").unlink()  # `gameview serve` writes its own (SQLite)
    port = setup.env["GAMEVIEW_TEST_WEB_PORT"]
    assert_stops_on_sigterm(setup, ["serve", "--port", port], setsid)


@pytest.mark.parametrize("target", ["", "dagster-daemon"], ids=["serve", "daemon"])
def test_serve_production_started_by_a_script_stops_on_sigterm(
    tmp_path: Path, pg_env: dict[str, str], target: str
) -> None:
    """SIGTERM to `gameview serve --production`, or to its daemon alone (which then exits,
    and the service stops the other two, as a supervisor expects)."""
    setup = service_setup(tmp_path, pg_env)
    port = setup.env["GAMEVIEW_TEST_WEB_PORT"]
    args = ["serve", "--production", "--port", port]
    assert_stops_on_sigterm(setup, args, setsid=True, target=target)
