"""Training speed of the CPU rasterizer at two scene sizes, against a plain-autograd baseline.

Run: python benchmarks/bench_train.py [--steps 30] [--sizes 320,512] [--splats 20000,100000]

Scenes are synthetic (Gaussians on a textured sphere and floor, cameras on an orbit) so the
figures do not depend on a dataset. Densification and the far background shell are off so
the splat count stays fixed.
The baseline is the same tile-binned algorithm differentiated by plain autograd (global
float64 prefix sum), i.e. what the custom autograd Function replaces. Each timing runs in
its own child process so that its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gameview_assets.core.train.cpu import prepare_cpu_training

prepare_cpu_training()  # before torch loads, as the splat asset does: OpenMP reads it then

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from gameview_assets.core.samples import render_orbit_views  # noqa: E402
from gameview_assets.core.train import rasterizer  # noqa: E402
from gameview_assets.core.train.config import TrainConfig  # noqa: E402
from gameview_assets.core.train.data import TrainingViews  # noqa: E402
from gameview_assets.core.train.trainer import train_splat  # noqa: E402


def surface_points(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Half the points on a unit sphere, half on a 4 x 4 floor below it, with colour stripes."""
    n_sphere = n // 2
    sphere = torch.nn.functional.normalize(torch.randn(n_sphere, 3, generator=generator), dim=1)
    floor = (torch.rand(n - n_sphere, 3, generator=generator) - 0.5) * torch.tensor([4, 4, 0])
    floor[:, 2] = -1.0
    points = torch.cat([sphere, floor])
    rgb = 0.5 + 0.4 * torch.sin(points * torch.tensor([7.0, 5.0, 3.0]))
    return points, (rgb.clamp(0, 1) * 255).byte()


def make_views(n_splats: int, long_side: int, n_views: int = 12) -> TrainingViews:
    generator = torch.Generator().manual_seed(0)
    points, rgb = surface_points(n_splats, generator)
    width, height = long_side, long_side * 2 // 3
    gaussians = {
        "means": points,
        "quats": torch.tensor([[1.0, 0, 0, 0]]).expand(n_splats, 4),
        "scales": torch.full((n_splats, 3), 0.03 * math.sqrt(20_000 / n_splats)),
        "opacities": torch.full((n_splats,), 0.7),
        "colors": rgb.float() / 255,
    }
    return render_orbit_views(
        gaussians,
        points,
        rgb,
        n_views,
        width,
        height,
        focal=0.9 * width,
        radius=3.5,
        elevation=1.2,
    )


def autograd_composite(
    means2d,
    conics,
    opacities,
    colors,
    depths,
    radii,
    camera_ids,
    n_cameras,
    width,
    height,
    tile_size=8,
):
    """The baseline: identical maths, differentiated by autograd."""
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    with torch.no_grad():
        layout = rasterizer.bin_gaussians(
            means2d.detach(),
            conics.detach(),
            opacities.detach(),
            radii,
            depths.detach(),
            camera_ids,
            n_cameras,
            tiles_x,
            tiles_y,
            tile_size,
        )
        chunk_rows = torch.arange(len(layout.chunk_tiles)).repeat_interleave(rasterizer.CHUNK_ROWS)
        row_tiles = layout.chunk_tiles[chunk_rows]
        seg_start = layout.chunk_first[chunk_rows] * rasterizer.CHUNK_ROWS
        slot = torch.arange(tile_size * tile_size)
    pad = means2d.new_zeros(1, 3)
    mean = torch.cat([means2d, pad[:, :2]])[layout.source]
    conic = torch.cat([conics, pad])[layout.source]
    opacity = torch.cat([opacities, pad[0, :1]])[layout.source]
    color = torch.cat([colors, pad[:, : colors.shape[1]]])[layout.source]
    dx = (layout.chunk_px[chunk_rows] - mean[:, 0])[:, None] + (slot % tile_size)
    dy = (layout.chunk_py[chunk_rows] - mean[:, 1])[:, None] + (slot // tile_size)
    sigma = 0.5 * (conic[:, :1] * dx * dx + conic[:, 2:] * dy * dy) + conic[:, 1:2] * dx * dy
    alpha = torch.clamp_max(opacity[:, None] * torch.exp(-sigma), rasterizer.MAX_ALPHA)
    alpha = torch.where(alpha >= rasterizer.ALPHA_THRESHOLD, alpha, torch.zeros_like(alpha))
    log_t = torch.log1p(-alpha)
    prefix = torch.cumsum(log_t.double(), 0) - log_t
    log_before = (prefix - prefix[seg_start]).float()
    alive = ((log_before + log_t) > math.log(rasterizer.MIN_TRANSMITTANCE)).detach()
    weights = alpha * torch.exp(log_before) * alive
    image = torch.zeros(layout.total_tiles, tile_size**2, colors.shape[1])
    image = image.index_add(0, row_tiles, weights[:, :, None] * color[:, None, :])
    log_final = torch.zeros(layout.total_tiles, tile_size**2).index_add(0, row_tiles, log_t * alive)
    untile = rasterizer.untile
    return (
        untile(image, n_cameras, tiles_y, tiles_x, tile_size, height, width),
        untile(
            torch.exp(log_final)[..., None], n_cameras, tiles_y, tiles_x, tile_size, height, width
        ),
    )


def measure(long_side: int, n_splats: int, steps: int, threads: int, baseline: bool) -> dict:
    """One timing in this process (run as a child, so peak memory is its own)."""
    views = make_views(n_splats, long_side)
    if baseline:
        rasterizer.composite = autograd_composite
    config = TrainConfig(
        steps=steps,
        max_splats=n_splats,
        holdout_every=0,
        refine_stop=1,
        background_points=0,
        num_threads=threads,
    )
    with tempfile.TemporaryDirectory() as work_dir:
        result = train_splat(views, config, Path(work_dir))
    return {"steps_per_second": result.steps_per_second, "peak_mb": result.peak_memory_mb}


def measure_in_child(*args: object) -> dict:
    command = [sys.executable, __file__, "--child", *(str(a) for a in args)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sizes", default="320,512")
    parser.add_argument("--splats", default="20000,100000")
    parser.add_argument("--threads", type=int, default=0, help="0 = torch default")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        long_side, n_splats, steps, threads, baseline = (int(v) for v in args.child)
        print(json.dumps(measure(long_side, n_splats, steps, threads, bool(baseline))))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available")
    print("long side  splats  steps/s  peak MB  baseline steps/s  baseline peak MB  speed-up")
    for long_side in (int(s) for s in args.sizes.split(",")):
        for n_splats in (int(n) for n in args.splats.split(",")):
            ours = measure_in_child(long_side, n_splats, args.steps, args.threads, 0)
            line = f"{long_side:9d}  {n_splats:6d}  {ours['steps_per_second']:7.2f}  "
            line += f"{ours['peak_mb']:7.0f}"
            if not args.no_baseline:
                base = measure_in_child(
                    long_side, n_splats, max(3, args.steps // 3), args.threads, 1
                )
                speed_up = ours["steps_per_second"] / base["steps_per_second"]
                line += f"  {base['steps_per_second']:16.2f}  {base['peak_mb']:16.0f}"
                line += f"  {speed_up:7.1f}x"
            print(line, flush=True)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    if "--child" not in sys.argv:
        print(f"total {time.perf_counter() - start:.0f} s")
