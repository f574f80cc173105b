"""Export formats side by side: size per splat, write time and round-trip fidelity.

Run: python benchmarks/bench_export.py [--splats 1000000] [--degree 3] [--views 4] [--ply FILE]

The scene is synthetic by default (splats on a sphere and a floor, with view-dependent colour
in every trained band) or any 3DGS PLY given with --ply (for example a production's
scene.ply). Each format is written from the same arrays in the same run, so its size and
time are compared with the PLY's measured beside it. Fidelity: the scene read back from each
file is rendered with our rasterizer from `--views` cameras around it and compared with the
render of the arrays themselves (PSNR in dB; the PLY is lossless, so inf).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from gameview_assets.core.train.cpu import prepare_cpu_training

prepare_cpu_training()  # before torch loads, as the splat asset does: OpenMP reads it then

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gameview_assets.core.export import SplatArrays, read_ply, splat_tensors, write_ply  # noqa: E402
from gameview_assets.core.metrics import psnr  # noqa: E402
from gameview_assets.core.samples import look_at  # noqa: E402
from gameview_assets.core.train.trainer import render_image  # noqa: E402
from gameview_assets.core.web import (  # noqa: E402
    read_compressed_ply,
    read_spz,
    subset,
    write_compressed_ply,
    write_spz,
)


def synthetic_scene(n: int, degree: int, seed: int = 0) -> SplatArrays:
    """Half the splats on a unit sphere, half on a 4 × 4 floor below it, coloured in stripes,
    with SH coefficients of every band up to `degree` (|c| <= 0.3, as trained scenes have)."""
    rng = np.random.default_rng(seed)
    half = n // 2
    sphere = rng.normal(size=(half, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    floor = np.column_stack([rng.uniform(-2, 2, (n - half, 2)), np.full(n - half, -1.0)])
    means = np.concatenate([sphere, floor]).astype(np.float32)
    rgb = 0.5 + 0.4 * np.sin(means * np.array([7.0, 5.0, 3.0]))
    quats = rng.normal(size=(n, 4))
    scale = 0.03 * math.sqrt(20_000 / n)
    return SplatArrays(
        means=means,
        quats=(quats / np.linalg.norm(quats, axis=1, keepdims=True)).astype(np.float32),
        scales=np.log(scale * rng.uniform(0.5, 1.5, (n, 3))).astype(np.float32),
        opacities=rng.normal(1.5, 1.0, n).astype(np.float32),
        sh0=((rgb - 0.5) / 0.28209479177387814).reshape(n, 1, 3).astype(np.float32),
        shN=np.clip(rng.normal(0, 0.1, (n, (degree + 1) ** 2 - 1, 3)), -0.3, 0.3).astype(
            np.float32
        ),
    )


def cameras(splats: SplatArrays, count: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` cameras on a ring around the splats' median, 2.5 × their spread away."""
    centre = np.median(splats.means, axis=0)
    spread = float(np.percentile(np.linalg.norm(splats.means - centre, axis=1), 90))
    K = np.array([[0.8 * size, 0, size / 2], [0, 0.8 * size, size / 3], [0, 0, 1.0]])
    views = []
    for angle in np.linspace(0, 2 * np.pi, count, endpoint=False):
        eye = centre + 2.5 * spread * np.array([np.cos(angle), np.sin(angle), 0.5])
        views.append((look_at(eye, centre), K))
    return views


def renders(splats: SplatArrays, views, size: int) -> list[torch.Tensor]:
    tensors = splat_tensors(splats)
    return [
        torch.from_numpy(render_image(tensors, c2w, K, size, size * 2 // 3)).float() / 255
        for c2w, K in views
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splats", type=int, default=1_000_000)
    parser.add_argument("--degree", type=int, default=3)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--ply", type=Path, help="benchmark this 3DGS PLY instead")
    args = parser.parse_args()

    splats = read_ply(args.ply) if args.ply else synthetic_scene(args.splats, args.degree)
    n = len(splats)
    source = args.ply or f"synthetic, SH degree {args.degree}"
    print(f"scene: {n:,} splats ({source}); torch threads {torch.get_num_threads()}")
    views = cameras(splats, args.views, args.size)
    reference = renders(splats, views, args.size)

    formats = {
        "scene.ply": (write_ply, read_ply),
        "scene.spz": (write_spz, read_spz),
        "scene.compressed.ply": (write_compressed_ply, read_compressed_ply),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (write, read) in formats.items():
            warm = Path(tmp) / f"warm-{name}"  # compile gsply's Numba kernels before timing
            write(subset(splats, np.arange(min(n, 1000))), warm)
            read(warm)
            path = Path(tmp) / name
            started = time.perf_counter()
            write(splats, path)
            write_s = time.perf_counter() - started
            started = time.perf_counter()
            back = read(path)
            read_s = time.perf_counter() - started
            values = [psnr(a, b) for a, b in zip(renders(back, views, args.size), reference,
                                                 strict=True)]
            rows.append((name, path.stat().st_size, write_s, read_s, float(np.mean(values))))

    ply_size, ply_write = rows[0][1], rows[0][2]
    print()
    print("| file | bytes/splat | size vs PLY | write s | write vs PLY | read s | "
          "round-trip PSNR dB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, size, write_s, read_s, value in rows:
        print(f"| {name} | {size / n:.1f} | {size / ply_size:.3f}× | {write_s:.3f} | "
              f"{write_s / ply_write:.2f}× | {read_s:.3f} | {value:.2f} |")


if __name__ == "__main__":
    main()
