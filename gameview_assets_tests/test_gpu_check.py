"""benchmarks/gpu_check.py: its dry run (gsplat's code on the CPU stand-in) end to end, so the
device check cannot rot between GPU machines, and its lean-kernel patch of gsplat's sources."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gsplat

from gameview_assets.core.train.data import save_views
from gameview_assets_tests.core.test_train import make_scene

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from gpu_check import LEAN_CHANNELS, kernel_channels, lean_kernels  # noqa: E402


def test_dry_run_writes_every_section(tmp_path: Path) -> None:
    for name, seed in (("kitchen", 0), ("sample", 1)):
        save_views(make_scene(n_views=6, n_gaussians=60, width=40, seed=seed), tmp_path / name)
    out = tmp_path / "out"
    command = [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(out),
               "--data", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["dry_run"] is True and "error" not in report
    assert report["build"]["gsplat"] == gsplat.__version__
    assert report["build"]["first_image_finite"] is True
    assert len(report["parity"]) == 2
    assert all(row["within_tolerance"] for row in report["parity"]), report["parity"]
    rows = report["training"]
    assert [(row["capture"], row["recipe"]) for row in rows] == [
        (capture, recipe)
        for capture in ("kitchen", "sample")
        for recipe in ("fast", "fast-default", "simple-trainer")
    ]
    for row in rows:
        assert row["steps"] == 12 and row["splats"] > 0 and row["held_out_psnr"] > 0, row
        assert (out / row["picture"]).stat().st_size > 0
    table = (out / "gpu_check.md").read_text()
    assert "| kitchen | fast |" in table and "within tol." in table


def test_lean_kernels_keep_only_the_channel_counts_rendered(tmp_path: Path) -> None:
    csrc = Path(gsplat.__file__).parent / "cuda" / "csrc"
    copy = tmp_path / "gsplat" / "cuda" / "csrc"
    shutil.copytree(csrc, copy, ignore=shutil.ignore_patterns("third_party"))
    assert kernel_channels(tmp_path / "gsplat") == "all"
    removed = lean_kernels(copy)
    assert removed > 0
    assert kernel_channels(tmp_path / "gsplat") == ",".join(map(str, LEAN_CHANNELS))
    for source in copy.glob("*.cu"):
        counts = {int(n) for n in re.findall(r"__INS__\((\d+)\)", source.read_text())}
        assert counts <= set(LEAN_CHANNELS), source.name
    # Instantiations and dispatch cases still pair up, so the extension links.
    dispatch = (copy / "Rasterization.cpp").read_text()
    assert "__LAUNCH_KERNEL__(3)" in dispatch and "__LAUNCH_KERNEL__(8)" not in dispatch
