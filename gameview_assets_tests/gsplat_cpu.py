"""A CPU stand-in for gsplat's CUDA kernels, so gsplat's own Python runs where no GPU is.

`gsplat.rasterization` and gsplat's densification strategies call CUDA kernels through
`gsplat.cuda._wrapper`; everything around those calls (argument handling, SH colouring, the
`info` the strategies read, the strategies themselves) is plain Python that CI would never
execute on a CPU machine. `gsplat_on_cpu()` swaps the kernels, where gsplat's modules imported
them, for gsplat's own plain-torch reference (`gsplat.cuda._torch_impl`: projection, tile
intersection, offsets, spherical harmonics), plus the compositing `_torch_impl` leaves to a
kernel, written here by enumerating every (pixel, Gaussian) pair of each tile. It also makes
`backend.uses_gsplat` answer yes, so the trainer takes its CUDA branch with CPU tensors.

This is the one module of the project that reaches into gsplat's private modules (a test-only
tool; nothing in `gameview_assets/` imports it). `REPLACED` names every function swapped;
`test_gsplat_cpu.py` fails loudly when gsplat moves or renames one, or changes its signature.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gsplat.optimizers.selective_adam
import gsplat.rendering
import gsplat.strategy.ops
import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _isect_offset_encode,
    _isect_tiles,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)
from torch import Tensor

from gameview_assets.core.train import backend
from gameview_assets.core.train.mcmc import compute_relocation

ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat's kernels: a pair fainter than this is skipped
MAX_ALPHA = 0.999  # gsplat's kernels cap a pair's alpha here
MIN_TRANSMITTANCE = 1e-4  # gsplat's kernels stop a pixel once its transmittance would drop here
EXTENT_SIGMAS = 3.33


def fully_fused_projection(
    means: Tensor,
    covars: Tensor | None,
    quats: Tensor | None,
    scales: Tensor | None,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    packed: bool = False,
    sparse_grad: bool = False,
    calc_compensations: bool = False,
    camera_model: str = "pinhole",
    opacities: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """gsplat's reference projection, with the kernel's opacity-aware extent and radius clip
    (which `_fully_fused_projection` leaves out)."""
    if packed or sparse_grad:
        raise NotImplementedError("the CPU stand-in renders the packed=False layout only")
    if covars is None:
        covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False, triu=False)
    radii, means2d, depths, conics, compensations = _fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d, near_plane, far_plane,
        calc_compensations, camera_model,
    )
    with torch.no_grad():
        a, b, c = conics.unbind(-1)
        det = a * c - b * b
        variances = torch.stack([c / det, a / det], dim=-1)  # the blurred 2D covariance's diagonal
        extent = torch.full_like(a, EXTENT_SIGMAS)
        valid = (radii > 0).all(-1)
        if opacities is not None:
            opacity = torch.broadcast_to(opacities[..., None, :], a.shape).detach()
            if compensations is not None:
                opacity = opacity * compensations.detach()
            valid &= opacity >= ALPHA_THRESHOLD
            ratio = (opacity / ALPHA_THRESHOLD).clamp_min(1.0)
            extent = torch.minimum(extent, torch.sqrt(2.0 * torch.log(ratio)))
        radius = torch.ceil(extent[..., None] * variances.clamp_min(0).sqrt())
        valid &= (radius > radius_clip).any(-1)
        valid &= (means2d + radius > 0).all(-1)
        valid &= (means2d[..., 0] - radius[..., 0] < width) & (
            means2d[..., 1] - radius[..., 1] < height
        )
        radii = torch.where(valid[..., None], radius, 0).int()
    return radii, means2d, depths, conics, compensations


def isect_tiles(
    means2d: Tensor,
    radii: Tensor,
    depths: Tensor,
    tile_size: int,
    tile_width: int,
    tile_height: int,
    sort: bool = True,
    segmented: bool = False,
    packed: bool = False,
    n_images: int | None = None,
    image_ids: Tensor | None = None,
    gaussian_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """gsplat's reference tile intersection (packed=False only)."""
    if packed:
        raise NotImplementedError("the CPU stand-in renders the packed=False layout only")
    return _isect_tiles(
        means2d.detach(), radii, depths.detach(), tile_size, tile_width, tile_height, sort
    )


def isect_offset_encode(
    isect_ids: Tensor, n_images: int, tile_width: int, tile_height: int
) -> Tensor:
    """gsplat's reference offsets of each tile's first intersection."""
    return _isect_offset_encode(isect_ids, n_images, tile_width, tile_height)


def spherical_harmonics(
    degrees_to_use: int, dirs: Tensor, coeffs: Tensor, masks: Tensor | None = None
) -> Tensor:
    """gsplat's reference SH colours; masked-out entries are zero, as the kernel leaves them."""
    colors = _spherical_harmonics(degrees_to_use, dirs, coeffs)
    if masks is not None:
        colors = torch.where(masks[..., None], colors, torch.zeros_like(colors))
    return colors


def _tile_pairs(
    isect_offsets: Tensor, flatten_ids: Tensor, width: int, height: int, tile_size: int
) -> tuple[Tensor, Tensor]:
    """Every (pixel, intersection) pair: flat pixel index (image * H * W + y * W + x) and the
    index into `flatten_ids`, grouped by pixel and front to back within each pixel."""
    _, tiles_y, tiles_x = isect_offsets.shape
    starts = isect_offsets.flatten().long()
    ends = torch.cat([starts[1:], starts.new_tensor([len(flatten_ids)])])
    tile = torch.arange(len(starts))
    image, tile_y, tile_x = tile // (tiles_y * tiles_x), tile // tiles_x % tiles_y, tile % tiles_x
    dy, dx = torch.meshgrid(torch.arange(tile_size), torch.arange(tile_size), indexing="ij")
    ys = tile_y[:, None] * tile_size + dy.flatten()  # [tiles, tile_size²]
    xs = tile_x[:, None] * tile_size + dx.flatten()
    inside = (ys < height) & (xs < width)
    pixel = image[:, None] * height * width + ys * width + xs
    counts = ends - starts
    pixel_tile, pixel_slot = torch.nonzero(inside & (counts[:, None] > 0), as_tuple=True)
    per_pixel = counts[pixel_tile]
    pair_pixel = torch.repeat_interleave(pixel[pixel_tile, pixel_slot], per_pixel)
    first = torch.repeat_interleave(starts[pixel_tile], per_pixel)
    offset_in_pixel = torch.arange(len(pair_pixel)) - torch.repeat_interleave(
        torch.cumsum(per_pixel, 0) - per_pixel, per_pixel
    )
    return pair_pixel, first + offset_in_pixel


def rasterize_to_pixels(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    image_width: int,
    image_height: int,
    tile_size: int,
    isect_offsets: Tensor,
    flatten_ids: Tensor,
    backgrounds: Tensor | None = None,
    masks: Tensor | None = None,
    packed: bool = False,
    absgrad: bool = False,
) -> tuple[Tensor, Tensor]:
    """Front-to-back compositing by gsplat's kernel rules, differentiable by autograd.

    `gsplat.cuda._torch_impl._rasterize_to_pixels` would call a CUDA kernel to list the
    pairs, so the pairs are enumerated here: per tile, every pixel against every Gaussian
    listed for the tile in depth order; alpha capped at 0.999 and skipped below 1/255; a
    pixel stops before the Gaussian that would take its transmittance to 1e-4 or below.
    """
    if packed or absgrad or masks is not None:
        raise NotImplementedError("the CPU stand-in supports packed=False without masks/absgrad")
    image_dims = means2d.shape[:-2]
    n_images = math.prod(image_dims)
    channels = colors.shape[-1]
    offsets = isect_offsets.reshape(n_images, *isect_offsets.shape[-2:])
    pixel, isect = _tile_pairs(offsets, flatten_ids, image_width, image_height, tile_size)
    gaussian = flatten_ids[isect].long()  # image * N + gaussian
    pixel_xy = torch.stack(
        [pixel % image_width, pixel // image_width % image_height], dim=-1
    ).to(means2d.dtype)
    delta = pixel_xy + 0.5 - means2d.reshape(-1, 2)[gaussian]
    conic = conics.reshape(-1, 3)[gaussian]
    sigma = (
        0.5 * (conic[:, 0] * delta[:, 0] ** 2 + conic[:, 2] * delta[:, 1] ** 2)
        + conic[:, 1] * delta[:, 0] * delta[:, 1]
    )
    alpha = torch.clamp_max(opacities.reshape(-1)[gaussian] * torch.exp(-sigma), MAX_ALPHA)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
    # Transmittance by a per-pixel cumulative sum of log(1 - alpha) (pairs are grouped by pixel).
    log_keep = torch.log1p(-alpha).double()
    running = torch.cumsum(log_keep, 0)
    _, per_pixel = torch.unique_consecutive(pixel, return_counts=True)
    segment_start = torch.repeat_interleave(torch.cumsum(per_pixel, 0) - per_pixel, per_pixel)
    before_start = torch.where(segment_start > 0, running[segment_start - 1], 0.0)
    after = torch.exp(running - before_start).float()
    before = torch.exp(running - log_keep - before_start).float()
    alive = (after > MIN_TRANSMITTANCE).detach()
    weight = alpha * before * alive
    total = n_images * image_height * image_width
    render = torch.zeros(total, channels, dtype=colors.dtype).index_add(
        0, pixel, weight[:, None] * colors.reshape(-1, channels)[gaussian]
    )
    log_final = torch.zeros(total, dtype=torch.float64).index_add(
        0, pixel, torch.where(alive, log_keep, 0.0)
    )
    transmittance = torch.exp(log_final).float()[:, None]
    if backgrounds is not None:
        render = render + transmittance * backgrounds.reshape(n_images, 1, channels).expand(
            n_images, image_height * image_width, channels
        ).reshape(total, channels)
    shape = (*image_dims, image_height, image_width)
    return render.reshape(*shape, channels), (1.0 - transmittance).reshape(*shape, 1)


def quat_scale_to_covar_preci(
    quats: Tensor,
    scales: Tensor,
    compute_covar: bool = True,
    compute_preci: bool = True,
    triu: bool = False,
) -> tuple[Tensor | None, Tensor | None]:
    """gsplat's reference covariance and precision from quaternion and scale."""
    return _quat_scale_to_covar_preci(quats, scales, compute_covar, compute_preci, triu)


def adam(
    param: Tensor,
    param_grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    valid: Tensor | None,
    lr: float,
    b1: float,
    b2: float,
    eps: float,
) -> None:
    """gsplat's fused Adam kernel (SelectiveAdam's step): rows where `valid` is set move, with
    no bias correction, as the kernel does."""
    new_avg = b1 * exp_avg + (1.0 - b1) * param_grad
    new_avg_sq = b2 * exp_avg_sq + (1.0 - b2) * param_grad * param_grad
    moved = param - lr * new_avg / (torch.sqrt(new_avg_sq) + eps)
    rows = torch.ones(len(param), dtype=torch.bool) if valid is None else valid.bool()
    rows = rows.reshape(-1, *[1] * (param.dim() - 1))
    param.copy_(torch.where(rows, moved, param))
    exp_avg.copy_(torch.where(rows, new_avg, exp_avg))
    exp_avg_sq.copy_(torch.where(rows, new_avg_sq, exp_avg_sq))


# (module, name) -> the stand-in put there; gsplat's modules import the kernels by name.
REPLACED: dict[tuple[Any, str], Any] = {
    (gsplat.rendering, "fully_fused_projection"): fully_fused_projection,
    (gsplat.rendering, "isect_tiles"): isect_tiles,
    (gsplat.rendering, "isect_offset_encode"): isect_offset_encode,
    (gsplat.rendering, "rasterize_to_pixels"): rasterize_to_pixels,
    (gsplat.rendering, "spherical_harmonics"): spherical_harmonics,
    (gsplat.strategy.ops, "quat_scale_to_covar_preci"): quat_scale_to_covar_preci,
    (gsplat.strategy.ops, "compute_relocation"): compute_relocation,
    (gsplat.optimizers.selective_adam, "adam"): adam,
    (backend, "uses_gsplat"): lambda tensor: True,
}


@contextmanager
def gsplat_on_cpu() -> Iterator[None]:
    """Within the block, gsplat's rasterization and strategies run on CPU tensors, and the
    trainer takes its CUDA branch (gsplat's code) for them."""
    originals = {key: getattr(*key) for key in REPLACED}
    try:
        for (module, name), replacement in REPLACED.items():
            setattr(module, name, replacement)
        yield
    finally:
        for (module, name), original in originals.items():
            setattr(module, name, original)
