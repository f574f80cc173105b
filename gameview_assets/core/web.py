"""Scenes a browser can open: web formats within a splat budget.

`scene.ply` keeps every splat at full precision (about 250 bytes a splat at SH degree 3).
Browsers, phones especially, get at most `web_max_splats` splats, the ones that contribute
most to the training views, in two compressed formats written with gsply (a maintained
library, MIT; both writers follow the formats' reference code):

- `scene.spz`: Niantic's SPZ, version 3 (the gzip container with smallest-three
  quaternions), which Spark, SuperSplat, PlayCanvas and Niantic's own library read; version 4
  (zstd) is newer than several viewers.
- `scene.compressed.ply`: PlayCanvas's compressed PLY (chunks of 256 splats quantised
  against per-chunk bounds). The splats are put in Morton order first, as PlayCanvas's own
  writer does, so that each chunk is a small region and its bounds quantise it finely.

PlayCanvas SOG is not written: its spherical-harmonics palette is a k-means over every splat,
run by splat-transform on WebGPU and far too slow on a CPU; see `SOG_NOT_MADE`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gameview_assets.core.export import PinholeView, SplatArrays
from gameview_assets.core.production import RESULT_FILES

SPZ_VERSION = 3
SPZ_MAX_FRACTIONAL_BITS = 12  # gsply's default (1/4096 of a unit); fewer for large scenes
SCORE_MAX_SIDE = 480  # contribution is measured on views scaled down to this long side
EVAL_MAX_SIDE = 800  # views are loaded at most this large: 500 views at 2560 px would take 6.5 GB
SOG_NOT_MADE = (
    "not made: SOG's spherical-harmonics palette is a k-means over every splat that "
    "splat-transform runs on WebGPU; on a CPU (-g cpu) it did not finish a 20k-splat scene "
    "in 5 minutes, longer than training it. scene.spz and scene.compressed.ply serve the "
    "same viewers"
)


@dataclass(frozen=True)
class View(PinholeView):
    """A posed image in the scene's (exported) frame; image is uint8 [H, W, 3] or None."""

    image: np.ndarray | None = None


def training_and_held_out_views(
    undistorted_dir: Path, max_size: int, holdout_every: int, transform: np.ndarray
) -> tuple[list[View], list[View]]:
    """The registered views, split as training split them (every `holdout_every`-th held
    out), moved into the exported frame by `transform` [4, 4]: training views (to score
    splats, no images kept) and held-out views (with images, to measure PSNR), loaded at
    `max_size` but at most EVAL_MAX_SIDE pixels across (so the held-out PSNR of the full
    and web versions is measured at that size for the larger presets)."""
    from gameview_assets.core.train.data import load_views
    from gameview_assets.core.train.trainer import split_views

    max_size = min(max_size, EVAL_MAX_SIDE) if max_size else EVAL_MAX_SIDE
    loaded = load_views(undistorted_dir / "sparse", undistorted_dir / "images", max_size)
    train_ids, held_out_ids = split_views(len(loaded), holdout_every)

    def view(index: int, with_image: bool) -> View:
        return View(
            camtoworld=transform @ loaded.camtoworlds[index].double().numpy(),
            K=loaded.Ks[index].double().numpy(),
            width=loaded.widths[index],
            height=loaded.heights[index],
            image=loaded.images[index].numpy() if with_image else None,
        )

    return [view(i, False) for i in train_ids], [view(i, True) for i in held_out_ids]


def subset(splats: SplatArrays, index: np.ndarray) -> SplatArrays:
    return SplatArrays(
        means=splats.means[index],
        quats=splats.quats[index],
        scales=splats.scales[index],
        opacities=splats.opacities[index],
        sh0=splats.sh0[index],
        shN=splats.shN[index],
    )


def _scaled(view: View, max_side: int) -> tuple[np.ndarray, int, int]:
    scale = min(1.0, max_side / max(view.width, view.height))
    K = np.array(view.K, dtype=np.float64)
    K[:2] *= scale
    return K, max(1, round(view.width * scale)), max(1, round(view.height * scale))


def contribution(
    splats: SplatArrays, views: Sequence[View], max_side: int = SCORE_MAX_SIDE
) -> np.ndarray:
    """Each splat's accumulated alpha × transmittance over `views`, summed over pixels.

    A rendered pixel is sum_i c_i α_i T_i, so the gradient of the image's sum with respect to
    splat i's colour is exactly sum over pixels of α_i T_i: what the splat adds to what the
    views see, occlusion included. One forward and backward pass per view, on the training
    rasterizer (gsplat on CUDA, ours on CPU), at most `max_side` pixels across.
    """
    import torch

    from gameview_assets.core.export import splat_tensors
    from gameview_assets.core.train.backend import rasterize

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tensors = {k: v.to(device) for k, v in splat_tensors(splats).items()}
    quats = torch.nn.functional.normalize(tensors["quats"], dim=-1)
    scales = torch.exp(tensors["scales"])
    opacities = torch.sigmoid(tensors["opacities"])
    total = torch.zeros(len(splats), dtype=torch.float64, device=device)
    for view in views:
        K, width, height = _scaled(view, max_side)
        colours = torch.zeros(len(splats), 3, device=device, requires_grad=True)
        viewmat = torch.linalg.inv(torch.as_tensor(view.camtoworld, dtype=torch.float32))
        image, _, _ = rasterize(
            tensors["means"],
            quats,
            scales,
            opacities,
            colours,
            viewmat[None].to(device),
            torch.as_tensor(K, dtype=torch.float32, device=device)[None],
            width,
            height,
        )
        image[..., 0].sum().backward()
        total += colours.grad[:, 0].double()
    return total.cpu().numpy()


def select_within_budget(
    splats: SplatArrays, views: Sequence[View], max_splats: int
) -> tuple[SplatArrays, str]:
    """The `max_splats` splats that contribute most to `views` (all of them if within budget),
    and how they were chosen."""
    if max_splats <= 0:
        raise ValueError("web_max_splats must be positive")
    if len(splats) <= max_splats:
        return splats, f"all {len(splats)} splats (within the budget of {max_splats})"
    if views:
        scores = contribution(splats, views)
        how = f"accumulated alpha x transmittance over {len(views)} training views"
    else:
        scores = 1.0 / (1.0 + np.exp(-splats.opacities.astype(np.float64)))
        scores *= np.exp(splats.scales.astype(np.float64).sum(axis=1))
        how = "opacity x volume (no training views given)"
    keep = np.sort(np.argpartition(-scores, max_splats - 1)[:max_splats])
    return subset(splats, keep), f"top {max_splats} of {len(splats)} by {how}"


def morton_order(means: np.ndarray) -> np.ndarray:
    """Indices sorting points along a 3D Z-order curve (10 bits an axis) of their bounds."""
    low, high = means.min(axis=0), means.max(axis=0)
    cells = ((means - low) / np.maximum(high - low, 1e-12) * 1023).astype(np.uint64)
    code = np.zeros(len(means), dtype=np.uint64)
    for bit in range(10):
        for axis in range(3):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(code, kind="stable")


def _gsdata(splats: SplatArrays):
    import gsply

    return gsply.GSData.from_arrays(
        np.ascontiguousarray(splats.means, dtype=np.float32),
        np.ascontiguousarray(splats.scales, dtype=np.float32),
        np.ascontiguousarray(splats.quats / np.linalg.norm(splats.quats, axis=1, keepdims=True),
                             dtype=np.float32),
        np.ascontiguousarray(splats.opacities, dtype=np.float32),
        np.ascontiguousarray(splats.sh0.reshape(-1, 3), dtype=np.float32),
        np.ascontiguousarray(splats.shN, dtype=np.float32) if splats.shN.shape[1] else None,
        format="ply",
    )


def _arrays(data, sh_rest: int) -> SplatArrays:
    n = len(data.means)
    shN = np.zeros((n, 0, 3), np.float32) if data.shN is None else np.asarray(data.shN)
    return SplatArrays(
        means=np.asarray(data.means, dtype=np.float32),
        quats=np.asarray(data.quats, dtype=np.float32),
        scales=np.asarray(data.scales, dtype=np.float32),
        opacities=np.asarray(data.opacities, dtype=np.float32).reshape(n),
        sh0=np.asarray(data.sh0, dtype=np.float32).reshape(n, 1, 3),
        shN=shN.reshape(n, -1, 3)[:, :sh_rest].astype(np.float32),
    )


def spz_fractional_bits(means: np.ndarray) -> int:
    """SPZ stores positions as 24-bit fixed point: as many fractional bits (up to 12) as
    keep the farthest splat in range."""
    reach = float(np.abs(means).max()) if len(means) else 1.0
    return int(np.clip(22 - math.ceil(math.log2(max(reach, 1e-6))), 1, SPZ_MAX_FRACTIONAL_BITS))


def write_spz(splats: SplatArrays, path: Path) -> None:
    """Niantic SPZ version 3, through gsply."""
    import gsply

    path.parent.mkdir(parents=True, exist_ok=True)
    gsply.write_spz(
        path,
        _gsdata(splats),
        version=SPZ_VERSION,
        fractional_bits=spz_fractional_bits(splats.means),
    )


def read_spz(path: Path) -> SplatArrays:
    import gsply

    data = gsply.read_spz(path)
    return _arrays(data, data.shN.shape[1] if data.shN is not None else 0)


def write_compressed_ply(splats: SplatArrays, path: Path) -> SplatArrays:
    """PlayCanvas compressed PLY through gsply, in Morton order; returns the splats in the
    order written."""
    from gsply.writer import write_compressed

    ordered = subset(splats, morton_order(splats.means))
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _gsdata(ordered)
    write_compressed(
        path, data.means, data.scales, data.quats, data.opacities, data.sh0, data.shN
    )
    return ordered


def read_compressed_ply(path: Path) -> SplatArrays:
    from gsply.reader import read_compressed

    data = read_compressed(path)
    if data is None:
        raise ValueError(f"{path} is not a PlayCanvas compressed PLY")
    return _arrays(data, data.shN.shape[1] if data.shN is not None else 0)


def held_out_psnr(splats: SplatArrays, views: Sequence[View]) -> float:
    """Mean PSNR of `splats` rendered from `views` against their images (NaN without any),
    at the degree the splats hold, on the training rasterizer."""
    import torch

    from gameview_assets.core.export import splat_tensors
    from gameview_assets.core.metrics import psnr
    from gameview_assets.core.train.trainer import render_image

    values = []
    tensors = splat_tensors(splats)
    for view in views:
        if view.image is None:
            continue
        rendered = render_image(tensors, view.camtoworld, view.K, view.width, view.height)
        values.append(
            psnr(torch.from_numpy(rendered).float() / 255, torch.from_numpy(view.image) / 255)
        )
    return float(np.mean(values)) if values else math.nan


WEB_FORMATS = {
    "spz": ("Niantic SPZ v3 (gzip)", write_spz, read_spz),
    "compressed_ply": ("PlayCanvas compressed PLY", write_compressed_ply, read_compressed_ply),
}
"""Result name → (format, writer, reader); the reader is gsply's, used to measure PSNR."""


def write_web_versions(
    splats: SplatArrays,
    outputs: dict[str, Path],
    max_splats: int,
    scoring_views: Sequence[View],
    held_out: Sequence[View],
    full_size: int,
) -> dict:
    """Write each of `outputs` (result name → path, names from WEB_FORMATS) with at most
    `max_splats` splats; returns bundle.json's `web` section: the budget, how splats were
    chosen, and per file its splat count, size, bytes a splat and held-out PSNR (of the file
    as decoded) next to the full scene's."""
    import time

    import gsply

    chosen, how = select_within_budget(splats, scoring_views, max_splats)
    full_psnr = held_out_psnr(splats, held_out)
    section: dict = {
        "max_splats": max_splats,
        "selection": how,
        "full": {
            "file": RESULT_FILES["ply"],
            "splats": len(splats),
            "size": full_size,
            "bytes_per_splat": round(full_size / max(1, len(splats)), 1),
            "held_out_psnr": _round(full_psnr),
        },
        "files": {},
        "sog": SOG_NOT_MADE,
        "writer": f"gsply {gsply.__version__}",
    }
    for name, path in outputs.items():
        label, write, read = WEB_FORMATS[name]
        started = time.perf_counter()
        write(chosen, path)
        seconds = time.perf_counter() - started
        decoded = read(path)
        size = path.stat().st_size
        web_psnr = held_out_psnr(decoded, held_out)
        section["files"][path.name] = {
            "format": label,
            "splats": len(decoded),
            "size": size,
            "bytes_per_splat": round(size / max(1, len(decoded)), 2),
            "held_out_psnr": _round(web_psnr),
            "psnr_loss_db": _round(full_psnr - web_psnr),
            "write_seconds": round(seconds, 3),
        }
    return section


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 3)
