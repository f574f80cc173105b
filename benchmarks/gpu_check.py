"""The first GPU run in one command: gsplat's kernels built, checked against our CPU
rasterizer, and training measured on a real and a synthetic capture.

A lent GPU machine is bare (no Dagster, no pycolmap, no network) and short-lived, so
everything it needs is made here first and carried in one ignored folder, `.gpu-carry/`:

    python benchmarks/gpu_check.py --prepare             # here: gsplat's sources and the views
    python benchmarks/gpu_check.py --out DIR             # there (PYTHONPATH=.gpu-carry/site:.)
    python benchmarks/gpu_check.py --dry-run --out DIR   # anywhere: same code, CPU stand-in

`make gpu-check` is the device call; docs/gpu.md gives it whole. The run writes
`gpu_check.json` and `gpu_check.md` to DIR after every section, so whatever finished is kept
when a limit cuts it short, and it stops training at `--budget-s` on its own.

Sections: `build` (gsplat's kernels compiled or loaded, versions, GPU), `parity` (our CPU
rasterizer against gsplat's kernels on the parity tests' scenes: image, alpha and every
gradient the trainer and strategies use), `training` (`train_splat` on the GPU for each
capture, with the fast preset and with gsplat simple_trainer's default recipe for as many
steps). `--dry-run` swaps gsplat's kernels for the plain-torch stand-in of the tests, trains
a few steps on tiny images, and is run by the test suite so this script cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CARRY = REPO / ".gpu-carry"
GSPLAT_VERSION = "1.5.3"
DATASETS = ("kitchen", "sample")
# Channel counts gsplat's kernels are built for in the carried copy: RGB (3), RGB+depth (4),
# depth (1) and the small ones gsplat pads to. Stock gsplat also instantiates 8..513 channels,
# which nothing here renders and which dominate a JIT build's time (see `lean_kernels`).
LEAN_CHANNELS = (1, 2, 3, 4, 5)
# Parity tolerances of gameview_assets_tests/core/test_gsplat_parity.py.
IMAGE_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 2e-4
SIMPLE_TRAINER_NO_CAP = 50_000_000  # simple_trainer's default strategy has no splat cap


class DeadlineReached(Exception):
    """Training stopped because the run's time budget is spent."""


@dataclass
class Report:
    """What the check found so far, written out whole after every section."""

    out: Path  # the folder gpu_check.json and gpu_check.md go to
    data: dict[str, Any]  # the figures, section by section
    deadline: float  # time.monotonic() at which training stops

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2) + "\n")
        (self.out / "gpu_check.md").write_text(markdown(self.data))


# --- preparation (on the CPU machine) ------------------------------------------------------


def lean_kernels(csrc: Path, channels: tuple[int, ...] = LEAN_CHANNELS) -> int:
    """Drop gsplat's kernel instantiations and dispatch cases for other channel counts.

    Each rasterization kernel is instantiated for 19 channel counts; compiling them is most
    of a JIT build (minutes of a 15-minute device lease). The kernels for the counts kept are
    untouched. Returns how many lines were removed."""
    pattern = re.compile(r"^\s*__(INS|LAUNCH_KERNEL)__\((\d+)\)\s*$")
    removed = 0
    for source in [*csrc.glob("*.cu"), *csrc.glob("*.cpp")]:
        lines = source.read_text().splitlines(keepends=True)
        kept = [
            line
            for line in lines
            if not ((match := pattern.match(line)) and int(match[2]) not in channels)
        ]
        removed += len(lines) - len(kept)
        source.write_text("".join(kept))
    return removed


def prepare_gsplat(site: Path) -> None:
    """gsplat's wheel unpacked into `site` (its CUDA sources are JIT-compiled on the GPU), with
    lean kernels and without glm's documentation and tests (20 MB of the 26)."""
    shutil.rmtree(site, ignore_errors=True)
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "-q", "-d", download, f"gsplat=={GSPLAT_VERSION}"],
            check=True,
        )
        (wheel,) = Path(download).glob("gsplat-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    glm = site / "gsplat" / "cuda" / "csrc" / "third_party" / "glm"
    for folder in ("doc", "test"):
        shutil.rmtree(glm / folder, ignore_errors=True)
    print(f"gsplat {GSPLAT_VERSION}: {lean_kernels(glm.parents[1])} instantiations dropped")


def prepare_views(views_dir: Path, kitchen_video: Path) -> None:
    """Undistorted frames and poses of the synthetic sample and the kitchen capture at the
    fast preset's sizes, made with `gameview poses` (pycolmap runs here, not there)."""
    gameview = [sys.executable, "-m", "gameview_assets.cli"]
    with tempfile.TemporaryDirectory() as work:
        sample_video = Path(work) / "sample.mp4"
        subprocess.run([*gameview, "sample", str(sample_video)], check=True)
        for name, video in (("sample", sample_video), ("kitchen", kitchen_video)):
            model = Path(work) / name
            subprocess.run(
                [*gameview, "poses", str(video), "--out", str(model), "--preset", "fast"],
                check=True,
            )
            shutil.rmtree(views_dir / name, ignore_errors=True)
            shutil.copytree(model / "views", views_dir / name)


def folder_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**20


# --- the check ----------------------------------------------------------------------------


@contextmanager
def kernels(dry_run: bool) -> Iterator[None]:
    """gsplat's CUDA kernels, or (dry run) the tests' plain-torch stand-in for them."""
    if not dry_run:
        yield
        return
    from gameview_assets_tests.gsplat_cpu import gsplat_on_cpu

    with gsplat_on_cpu():
        yield


def nvcc_version() -> str:
    try:
        output = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return "no nvcc"
    return output.strip().splitlines()[-1] if output.strip() else "unknown"


def built_library() -> Path | None:
    """gsplat's JIT-built extension, where torch put it."""
    from torch.utils.cpp_extension import get_default_build_root

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    return next(iter(sorted(root.rglob("gsplat_cuda*.so"))), None)


def kernel_channels(package: Path) -> str:
    """'all' for stock gsplat sources, else the channel counts `lean_kernels` kept."""
    source = (package / "cuda" / "csrc" / "Rasterization.cpp").read_text()
    kept = sorted({int(n) for n in re.findall(r"__LAUNCH_KERNEL__\((\d+)\)", source)})
    return "all" if 513 in kept else ",".join(map(str, kept))


def check_build(device: str, dry_run: bool) -> dict[str, Any]:
    """Versions, and the time of the first gsplat call (which compiles or loads its kernels)."""
    import gsplat
    import torch

    from gameview_assets_tests.core.test_gsplat_parity import HEIGHT, WIDTH, camera, scene

    record: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "gsplat": gsplat.__version__,
        "gsplat_from": str(Path(gsplat.__file__).parent),
        "nvcc": nvcc_version(),
        "gpu": torch.cuda.get_device_name() if device == "cuda" else "none (CPU stand-in)",
        "kernel_channels": kernel_channels(Path(gsplat.__file__).parent),
    }
    splats = {key: value.to(device) for key, value in scene(20, seed=1).items()}
    viewmat, K = (tensor.to(device) for tensor in camera())
    started = time.perf_counter()
    with kernels(dry_run):
        image, _, _ = gsplat.rasterization(
            splats["means"], splats["quats"], splats["scales"], splats["opacities"],
            splats["colors"], viewmat[None], K[None], WIDTH, HEIGHT, sh_degree=3, packed=False,
        )
    if device == "cuda":
        torch.cuda.synchronize()
    record["first_call_s"] = round(time.perf_counter() - started, 1)
    record["first_image_finite"] = bool(torch.isfinite(image).all())
    library = None if dry_run else built_library()
    if library is not None:
        record["library"] = str(library)
        record["library_mb"] = round(library.stat().st_size / 2**20, 1)
    return record


def relative_error(value, reference) -> float:
    scale = float(reference.abs().max())
    return float((value - reference).abs().max()) / scale if scale > 0 else float("nan")


def render_with_gradients(splats: dict, device: str, through_gsplat: bool) -> dict[str, Any]:
    """Image, alpha and the gradients of a fixed weighting of both (the parity tests' loss)."""
    import torch

    from gameview_assets.core.train import rasterizer
    from gameview_assets_tests.core.test_gsplat_parity import HEIGHT, SH_DEGREE, WIDTH, camera

    viewmat, K = (tensor.to(device) for tensor in camera())
    params = {key: value.to(device).clone().requires_grad_(True) for key, value in splats.items()}
    arguments = (
        params["means"], params["quats"], params["scales"], params["opacities"],
        params["colors"], viewmat[None], K[None], WIDTH, HEIGHT,
    )
    if through_gsplat:
        import gsplat

        image, alpha, info = gsplat.rasterization(*arguments, sh_degree=SH_DEGREE, packed=False)
    else:
        image, alpha, info = rasterizer.rasterization(*arguments, sh_degree=SH_DEGREE)
    info["means2d"].retain_grad()
    weights = torch.linspace(0.2, 1.0, 3, device=device)
    ((image * weights).sum() + alpha.sum()).backward()
    grads = {key: value.grad for key, value in params.items()}
    grads["means2d (strategies)"] = info["means2d"].grad
    as_cpu = {key: value.detach().cpu() for key, value in grads.items()}
    return {"image": image.detach().cpu(), "alpha": alpha.detach().cpu(), "grads": as_cpu,
            "radii": info["radii"].cpu()}


def check_parity(device: str, dry_run: bool) -> list[dict[str, Any]]:
    """Our CPU rasterizer against gsplat's kernels on the parity tests' two scenes."""
    from gameview_assets_tests.core.test_gsplat_parity import scene

    rows = []
    for label, splats in (
        ("120 splats in view", scene(120, seed=12)),
        ("200 splats, some behind and beside the camera", scene(200, seed=11, spread=4.0)),
    ):
        ours = render_with_gradients(splats, "cpu", through_gsplat=False)
        with kernels(dry_run):
            theirs = render_with_gradients(splats, device, through_gsplat=True)
        row: dict[str, Any] = {
            "scene": label,
            "image_max_abs": float((ours["image"] - theirs["image"]).abs().max()),
            "alpha_max_abs": float((ours["alpha"] - theirs["alpha"]).abs().max()),
            "radii_differ": int((ours["radii"] != theirs["radii"]).any(-1).sum()),
        }
        row["gradients_rel"] = {
            key: relative_error(ours["grads"][key], reference)
            for key, reference in theirs["grads"].items()
        }
        row["within_tolerance"] = (
            row["image_max_abs"] <= IMAGE_TOLERANCE
            and row["alpha_max_abs"] <= IMAGE_TOLERANCE
            and all(value <= GRADIENT_TOLERANCE for value in row["gradients_rel"].values())
        )
        rows.append(row)
    return rows


def recipes(steps: int, max_splats: int) -> dict[str, Any]:
    """`fast`: the fast preset as the splat stage trains it; `fast-default`: the same with
    gsplat's default strategy (capped) instead of the preset's; `fast-selective`: the same
    with gsplat's SelectiveAdam; `simple-trainer`: gsplat
    simple_trainer's defaults (default strategy on its absolute schedule, no cap, no far
    shell, no LR boost)."""
    from gameview_assets.core.train.config import TrainConfig
    from gameview_assets.core.train.densification import DefaultDensification
    from gameview_assets.presets import get_preset, train_config

    fast = replace(train_config(get_preset("fast")), steps=steps)
    if max_splats:
        fast = replace(fast, max_splats=max_splats)
    simple_trainer = TrainConfig(
        steps=steps,
        max_splats=max_splats or SIMPLE_TRAINER_NO_CAP,
        sh_degree=3,
        strategy=DefaultDensification(),
        lr_boost=1.0,
        background_points=0,
        sh_degree_interval=1000,
        refine_start=500,
        refine_stop=15_000,
        refine_every=100,
        reset_every=3000,
    )
    return {
        "fast": fast,
        "fast-default": replace(fast, strategy=DefaultDensification()),
        "fast-selective": replace(fast, optimizer="selective_adam"),
        "simple-trainer": simple_trainer,
    }


RECIPES = ("fast", "fast-default", "fast-selective", "simple-trainer")


def deadline_progress(deadline: float, state: dict[str, Any]) -> Callable[[float, str], None]:
    def progress(fraction: float, message: str) -> None:
        state["fraction"] = fraction
        if time.monotonic() > deadline:
            raise DeadlineReached(message)

    return progress


def side_by_side(result, views, device: str, out: Path) -> str:
    """Held-out view 0: the capture beside the trained scene, as a JPEG to look at."""
    import numpy as np
    from PIL import Image

    from gameview_assets.core.train.trainer import render_image

    rendered = render_image(
        {key: value.float().to(device) for key, value in result.splats.items()},
        views.camtoworlds[0].numpy(),
        views.Ks[0].numpy(),
        views.widths[0],
        views.heights[0],
    )
    Image.fromarray(np.concatenate([views.images[0].numpy(), rendered], axis=1)).save(
        out, quality=90
    )
    return out.name


def train_one(views, config, device: str, deadline: float, picture: Path) -> dict[str, Any]:
    import torch

    from gameview_assets.core.train.trainer import train_splat

    state: dict[str, Any] = {"fraction": 0.0}
    config = replace(config, device=device)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        try:
            result = train_splat(views, config, Path(work), deadline_progress(deadline, state))
        except DeadlineReached:
            seconds = time.perf_counter() - started
            done = round(state["fraction"] * config.steps)
            return {"stopped": f"time budget spent at step {done} of {config.steps}",
                    "steps_per_second": round(done / seconds, 2)}
    if device == "cuda":
        torch.cuda.empty_cache()
    return {
        "steps": result.steps,
        "steps_per_second": round(result.steps_per_second, 2),
        "held_out_psnr": round(result.psnr, 2),
        "held_out_ssim": round(result.ssim, 4),
        "splats": result.num_splats,
        "peak_memory_mb": round(result.peak_memory_mb),
        "minutes": round(result.seconds / 60, 2),
        "picture": side_by_side(result, views, device, picture),
    }


def check_training(args: argparse.Namespace, device: str, report: Report) -> None:
    from gameview_assets.core.train.data import read_views
    from gameview_assets.presets import get_preset

    steps, max_size, cap = (12, 48, 400) if args.dry_run else (args.steps, 0, 0)
    max_size = max_size or get_preset("fast").train_max_size
    rows = report.data["training"] = []
    for dataset in args.captures:
        views = read_views(args.data / dataset, max_size)
        configs = recipes(steps, cap)
        for recipe in args.recipes:
            config = configs[recipe]
            row: dict[str, Any] = {
                "capture": dataset,
                "recipe": recipe,
                "views": len(views),
                "image": f"{views.widths[0]}x{views.heights[0]}",
                "strategy": config.strategy.name,
                "max_splats": config.max_splats,
            }
            picture = report.out / f"{dataset}-{recipe}.jpg"
            with kernels(args.dry_run):
                row |= train_one(views, config, device, report.deadline, picture)
            rows.append(row)
            report.save()
            print(json.dumps(row), flush=True)


def markdown(data: dict[str, Any]) -> str:
    """The figures as tables, for benchmarks/README.md."""
    lines = [f"# gpu_check ({'dry run' if data.get('dry_run') else 'GPU'})", ""]
    build = data.get("build", {})
    lines += ["| build | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in build.items()]
    lines += ["", "| parity scene | image | alpha | worst gradient (rel.) | within tol. |",
              "| --- | --- | --- | --- | --- |"]
    for row in data.get("parity", []):
        worst = max(row["gradients_rel"].items(), key=lambda item: item[1])
        lines.append(
            f"| {row['scene']} | {row['image_max_abs']:.2e} | {row['alpha_max_abs']:.2e} | "
            f"{worst[0]} {worst[1]:.2e} | {row['within_tolerance']} |"
        )
    lines += ["", "| capture | recipe | steps/s | PSNR | SSIM | splats | peak MB | min |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in data.get("training", []):
        if "stopped" in row:
            lines.append(f"| {row['capture']} | {row['recipe']} | {row['steps_per_second']} "
                         f"| {row['stopped']} | | | | |")
            continue
        lines.append(
            f"| {row['capture']} | {row['recipe']} | {row['steps_per_second']} | "
            f"{row['held_out_psnr']} | {row['held_out_ssim']} | {row['splats']:,} | "
            f"{row['peak_memory_mb']:,} | {row['minutes']} |"
        )
    if data.get("error"):
        lines += ["", f"error: {data['error']}"]
    return "\n".join(lines) + "\n"


def run_check(args: argparse.Namespace) -> int:
    import torch

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --dry-run on a machine without a GPU", file=sys.stderr)
        return 2
    missing = [name for name in args.captures if not (args.data / name / "views.npz").exists()]
    if missing:
        print(f"no prepared views for {', '.join(missing)} under {args.data}: "
              "run `python benchmarks/gpu_check.py --prepare` first", file=sys.stderr)
        return 2
    report = Report(args.out, {"dry_run": args.dry_run}, time.monotonic() + args.budget_s)
    try:
        report.data["build"] = check_build(device, args.dry_run)
        report.save()
        print(json.dumps(report.data["build"]), flush=True)
        report.data["parity"] = check_parity(device, args.dry_run)
        report.save()
        print(json.dumps(report.data["parity"]), flush=True)
        check_training(args, device, report)
    except Exception as exc:  # keep what finished, say what broke, fail the command
        report.data["error"] = f"{type(exc).__name__}: {exc}"
        report.save()
        raise
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for gpu_check.json / .md")
    parser.add_argument("--dry-run", action="store_true", help="CPU stand-in, a few steps")
    parser.add_argument("--prepare", action="store_true", help="fill .gpu-carry/ (CPU machine)")
    parser.add_argument("--data", type=Path, default=CARRY / "views", help="prepared views")
    parser.add_argument("--steps", type=int, default=5000, help="training steps per run")
    parser.add_argument("--recipes", nargs="+", choices=RECIPES,
                        default=["fast", "fast-default", "simple-trainer"],
                        help="training recipes, each run on each capture (see `recipes`)")
    parser.add_argument("--captures", nargs="+", choices=DATASETS, default=list(DATASETS),
                        help="prepared captures to train on")
    parser.add_argument("--budget-s", type=float, default=440.0,
                        help="stop training when this many seconds have passed")
    args = parser.parse_args(argv)
    if args.prepare:
        datasets = Path(os.environ.get("GAMEVIEW_DATASETS", REPO.parent / "shared" / "datasets"))
        prepare_gsplat(CARRY / "site")
        prepare_views(CARRY / "views", datasets / "kitchen" / "kitchen.mp4")
        print(f"{CARRY}: {folder_mb(CARRY):.1f} MiB to carry")
        return 0
    if args.out is None:
        parser.error("--out is required (or --prepare)")
    # gsplat's JIT build: every core (gsplat's own default is 10), for the visible GPU's arch.
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 4))
    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())
