"""Held-out quality of our training recipe against gsplat simple_trainer's, same scene and steps.

Run: python benchmarks/bench_quality.py [--steps 600] [--seeds 0,1] [--preset preview]

Frames and poses come from the kitchen video through our own stages (the preset's frame
selection and pose options); both recipes then train on the same views with our rasterizer,
which matches gsplat's maths (gameview_assets_tests/core/test_gsplat_parity.py), so only the
recipe differs:
- gsplat: simple_trainer's defaults, made for 30k steps: SH degree up every 1000 steps,
  densification from step 500 every 100, its learning rates as they are, no far points.
- ours: the same losses and learning rates, with the schedule scaled to the step count, a
  learning-rate boost for short runs and a shell of far background points
  (gameview_assets/core/train/config.py).
Held-out views are every 8th frame; the table gives the mean over seeds and the difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from gameview_assets.core.train.config import TrainConfig
from gameview_assets.core.train.cpu import prepare_cpu_training

prepare_cpu_training()  # before torch loads (in main), as the splat asset does

REPO = Path(__file__).resolve().parent.parent


def recipes(steps: int, max_splats: int, sh_degree: int) -> dict[str, TrainConfig]:
    ours = TrainConfig(steps=steps, max_splats=max_splats, sh_degree=sh_degree)
    gsplat = replace(
        ours,
        lr_boost=1.0,
        sh_degree_interval=1000,
        refine_start=500,
        refine_every=100,
        refine_stop=15_000,
        reset_every=3000,
        background_points=0,
    )
    return {"gsplat simple_trainer": gsplat, "ours": ours}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    datasets = Path(os.environ.get("GAMEVIEW_DATASETS", REPO.parent / "shared" / "datasets"))
    parser.add_argument("--video", type=Path, default=datasets / "kitchen" / "kitchen.mp4")
    parser.add_argument("--preset", default="preview")
    parser.add_argument("--steps", type=int, default=0, help="0: the preset's steps")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    if not args.video.is_file():
        print(f"no video at {args.video}; set GAMEVIEW_DATASETS or pass --video", file=sys.stderr)
        return 1

    from gameview_assets.core.sfm import PoseOptions, register_images
    from gameview_assets.core.train.data import load_views
    from gameview_assets.core.train.trainer import train_splat
    from gameview_assets.core.video import FrameSelection, extract_frames
    from gameview_assets.presets import get_preset

    preset = get_preset(args.preset)
    steps = args.steps or preset.steps
    seeds = [int(seed) for seed in args.seeds.split(",")]
    root = Path(tempfile.mkdtemp(prefix="gameview-quality-"))
    selection = FrameSelection(
        fps=preset.extract_fps, max_size=preset.frame_max_size, max_frames=preset.max_frames
    )
    extract_frames([args.video], root / "frames", selection)
    poses = register_images(
        root / "frames", root / "sfm", PoseOptions(max_image_size=preset.frame_max_size)
    )
    assert poses.undistorted_dir is not None
    views = load_views(
        poses.undistorted_dir / "sparse", poses.undistorted_dir / "images", preset.train_max_size
    )
    print(
        f"{args.video.name}: {poses.num_registered}/{poses.num_images} frames registered, "
        f"{poses.num_points} points; {steps} steps, at most {preset.max_splats} splats, "
        f"{views.widths[0]}x{views.heights[0]} px, seeds {seeds}",
        flush=True,
    )
    rows = {}
    for name, config in recipes(steps, preset.max_splats, preset.sh_degree).items():
        runs = []
        for seed in seeds:
            work = root / f"{name.split()[0]}-{seed}"
            result = train_splat(views, replace(config, seed=seed), work)
            runs.append(result)
            print(
                f"  {name:<22} seed {seed}: PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.3f}, "
                f"{result.num_splats} splats, {result.steps_per_second:.2f} steps/s",
                flush=True,
            )
        rows[name] = (
            float(np.mean([run.psnr for run in runs])),
            float(np.mean([run.ssim for run in runs])),
            float(np.mean([run.num_splats for run in runs])),
        )
    print("\n| recipe | held-out PSNR dB | SSIM | splats |\n|---|---|---|---|")
    for name, (value_psnr, value_ssim, splats) in rows.items():
        print(f"| {name} | {value_psnr:.2f} | {value_ssim:.3f} | {splats:.0f} |")
    (base_psnr, base_ssim, _), (our_psnr, our_ssim, _) = rows.values()
    print(f"\nours - gsplat: {our_psnr - base_psnr:+.2f} dB PSNR, {our_ssim - base_ssim:+.3f} SSIM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
