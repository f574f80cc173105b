"""Differentiable Gaussian splatting in plain PyTorch, for machines without CUDA.

gsplat only rasterizes with CUDA kernels, so CPU training needs its own renderer. This one
follows gsplat's maths (EWA projection, 0.3 px dilation, opacity-aware 3-sigma extent, alpha
clamped to 0.999, contributions under 1/255 skipped, stop at transmittance 1e-4) and is
vectorised end to end: every (Gaussian, tile) overlap becomes a row of `tile_size**2` pixel
slots, rows are sorted by (camera, tile, depth), and front-to-back transmittance comes from
one segmented cumulative sum of log(1 - alpha). Autograd differentiates all of it, and the
returned `info` carries what gsplat's densification strategies read.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gameview_assets.core.train.sh import eval_sh

ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
MAX_EXTENT_SIGMAS = 3.33


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] from (w, x, y, z) quaternions of any length."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape((*quats.shape[:-1], 3, 3))


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    radius_clip: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pinhole EWA projection of N Gaussians into C cameras.

    Returns means2d [C, N, 2] (pixels), conics [C, N, 3] (inverse 2D covariance a, b, c),
    depths [C, N] and radii [C, N, 2] (int32 pixel extents, 0 where culled).
    """
    rot_w2c = viewmats[:, :3, :3]
    p_cam = torch.einsum("cij,nj->cni", rot_w2c, means) + viewmats[:, None, :3, 3]
    x, y, z = p_cam.unbind(-1)
    in_depth = (z > near_plane) & (z < far_plane)
    z = torch.where(in_depth, z, torch.ones_like(z))
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    u, v = x / z, y / z
    # As gsplat: clamp the Jacobian's view direction a little beyond the frustum.
    u_clamped = torch.clamp(
        u, -(cx / fx + 0.15 * width / fx), (width - cx) / fx + 0.15 * width / fx
    )
    v_clamped = torch.clamp(
        v, -(cy / fy + 0.15 * height / fy), (height - cy) / fy + 0.15 * height / fy
    )
    rot_scale = quat_to_rotmat(quats) * scales[:, None, :]
    cam_rot_scale = torch.einsum("cij,njk->cnik", rot_w2c, rot_scale)
    row_x = (fx / z)[..., None] * (
        cam_rot_scale[..., 0, :] - u_clamped[..., None] * cam_rot_scale[..., 2, :]
    )
    row_y = (fy / z)[..., None] * (
        cam_rot_scale[..., 1, :] - v_clamped[..., None] * cam_rot_scale[..., 2, :]
    )
    cov_a = (row_x * row_x).sum(-1) + eps2d
    cov_b = (row_x * row_y).sum(-1)
    cov_c = (row_y * row_y).sum(-1) + eps2d
    det = cov_a * cov_c - cov_b * cov_b
    valid = in_depth & (det > 0)
    det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([cov_c / det, -cov_b / det, cov_a / det], dim=-1)
    means2d = torch.stack([fx * u + cx, fy * v + cy], dim=-1)

    with torch.no_grad():
        opac = opacities.detach().expand_as(z)
        extent = torch.sqrt(
            2.0 * torch.log(opac.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)
        ).clamp_max(MAX_EXTENT_SIGMAS)
        radius_x = torch.ceil(extent * cov_a.detach().clamp_min(0).sqrt())
        radius_y = torch.ceil(extent * cov_c.detach().clamp_min(0).sqrt())
        mx, my = means2d.detach().unbind(-1)
        valid = (
            valid
            & ~((radius_x <= radius_clip) & (radius_y <= radius_clip))
            & (mx + radius_x > 0)
            & (mx - radius_x < width)
            & (my + radius_y > 0)
            & (my - radius_y < height)
        )
        radii = torch.where(valid[..., None], torch.stack([radius_x, radius_y], -1), 0).int()
    return means2d, conics, z * valid, radii


def _bin_and_sort(
    means2d: Tensor,
    radii: Tensor,
    depths: Tensor,
    camera_ids: Tensor,
    tiles_x: int,
    tiles_y: int,
    tile_size: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Overlaps of M projected Gaussians with tiles, sorted by (camera, tile, depth).

    Returns, per overlap row: the Gaussian's index into the M inputs, its global tile id
    (camera * tiles + tile), and the row where its tile's segment starts.
    """
    device = means2d.device
    mx, my = means2d.unbind(-1)
    rx, ry = radii.unbind(-1)
    x0 = torch.floor((mx - rx) / tile_size).clamp(0, tiles_x).long()
    x1 = torch.ceil((mx + rx) / tile_size).clamp(0, tiles_x).long()
    y0 = torch.floor((my - ry) / tile_size).clamp(0, tiles_y).long()
    y1 = torch.ceil((my + ry) / tile_size).clamp(0, tiles_y).long()
    span_x = x1 - x0
    counts = span_x * (y1 - y0)

    front_to_back = torch.argsort(depths)
    counts = counts[front_to_back]
    row_gaussian = torch.repeat_interleave(front_to_back, counts)
    first_row = torch.cumsum(counts, 0) - counts
    local = torch.arange(len(row_gaussian), device=device) - torch.repeat_interleave(
        first_row, counts
    )
    row_span = span_x[row_gaussian]
    tile_x = x0[row_gaussian] + local % row_span
    tile_y = y0[row_gaussian] + local // row_span
    tile_ids = camera_ids[row_gaussian] * (tiles_x * tiles_y) + tile_y * tiles_x + tile_x
    tile_ids, by_tile = torch.sort(tile_ids, stable=True)
    row_gaussian = row_gaussian[by_tile]

    total_tiles = int(camera_ids.max().item() + 1 if len(camera_ids) else 1) * tiles_x * tiles_y
    tile_counts = torch.bincount(tile_ids, minlength=total_tiles)
    tile_first_row = torch.cumsum(tile_counts, 0) - tile_counts
    return row_gaussian, tile_ids, tile_first_row[tile_ids]


def composite(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    depths: Tensor,
    radii: Tensor,
    camera_ids: Tensor,
    n_cameras: int,
    width: int,
    height: int,
    tile_size: int = 8,
) -> tuple[Tensor, Tensor]:
    """Alpha-composite M projected Gaussians front to back into C images.

    Inputs are per visible (camera, Gaussian) pair: means2d [M, 2], conics [M, 3],
    opacities [M], colors [M, D], depths [M], radii [M, 2], camera_ids [M].
    Returns premultiplied colors [C, H, W, D] and transmittance [C, H, W, 1].
    """
    tiles_x = math.ceil(width / tile_size)
    tiles_y = math.ceil(height / tile_size)
    n_tiles = tiles_x * tiles_y
    slots = tile_size * tile_size
    device, dtype = means2d.device, means2d.dtype
    with torch.no_grad():
        rows, tile_ids, seg_start = _bin_and_sort(
            means2d.detach(), radii, depths, camera_ids, tiles_x, tiles_y, tile_size
        )
        tile_in_cam = tile_ids % n_tiles
        row_px = ((tile_in_cam % tiles_x) * tile_size).to(dtype) + 0.5
        row_py = ((tile_in_cam // tiles_x) * tile_size).to(dtype) + 0.5
        slot = torch.arange(slots, device=device)
        slot_x = (slot % tile_size).to(dtype)
        slot_y = (slot // tile_size).to(dtype)

    mean = means2d[rows]
    conic = conics[rows]
    dx = (row_px - mean[:, 0])[:, None] + slot_x
    dy = (row_py - mean[:, 1])[:, None] + slot_y
    sigma = 0.5 * (conic[:, 0:1] * dx * dx + conic[:, 2:3] * dy * dy) + conic[:, 1:2] * dx * dy
    alpha = torch.clamp_max(opacities[rows][:, None] * torch.exp(-sigma), MAX_ALPHA)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
    log_transmit = torch.log1p(-alpha)
    # Exclusive prefix sums within each tile's rows; float64 keeps long tiles exact.
    prefix = torch.cumsum(log_transmit.double(), 0)
    prefix = torch.cat([prefix.new_zeros(1, slots), prefix])
    log_t_before = (prefix[:-1] - prefix[seg_start]).to(dtype)
    with torch.no_grad():
        alive = (log_t_before + log_transmit) > math.log(MIN_TRANSMITTANCE)
    weights = alpha * torch.exp(log_t_before) * alive
    total_tiles = n_cameras * n_tiles
    image = torch.zeros(total_tiles, slots, colors.shape[-1], device=device, dtype=dtype)
    image = image.index_add(0, tile_ids, weights[:, :, None] * colors[rows][:, None, :])
    log_t_final = torch.zeros(total_tiles, slots, device=device, dtype=dtype)
    log_t_final = log_t_final.index_add(0, tile_ids, log_transmit * alive)
    return _untile(image, n_cameras, tiles_y, tiles_x, tile_size, height, width), _untile(
        torch.exp(log_t_final)[..., None], n_cameras, tiles_y, tiles_x, tile_size, height, width
    )


def _untile(
    tiles: Tensor,
    n_cameras: int,
    tiles_y: int,
    tiles_x: int,
    tile_size: int,
    height: int,
    width: int,
) -> Tensor:
    channels = tiles.shape[-1]
    grid = tiles.reshape(n_cameras, tiles_y, tiles_x, tile_size, tile_size, channels)
    grid = grid.permute(0, 1, 3, 2, 4, 5).reshape(
        n_cameras, tiles_y * tile_size, tiles_x * tile_size, channels
    )
    return grid[:, :height, :width]


def rasterization(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    packed: bool = False,
    tile_size: int = 8,
    backgrounds: Tensor | None = None,
    render_mode: str = "RGB",
    **_: Any,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render like `gsplat.rasterization` (same arguments and outputs, packed=False layout).

    means [N, 3], quats [N, 4] (unnormalised), scales [N, 3] and opacities [N] (activated),
    colors [N, D] / [C, N, D] or SH coefficients [N, K, 3] when `sh_degree` is set,
    viewmats [C, 4, 4] world-to-camera, Ks [C, 3, 3]. render_mode is "RGB", "D", "ED",
    "RGB+D" or "RGB+ED". Returns colors [C, H, W, D], alphas [C, H, W, 1] and info.
    """
    if packed:
        raise ValueError("the CPU rasterizer only produces the packed=False layout")
    n_cameras, n_gaussians = viewmats.shape[0], means.shape[0]
    means2d, conics, depths, radii = project_gaussians(
        means,
        quats,
        scales,
        opacities,
        viewmats,
        Ks,
        width,
        height,
        near_plane,
        far_plane,
        eps2d,
        radius_clip,
    )
    camera_ids, gaussian_ids = torch.nonzero((radii > 0).all(-1), as_tuple=True)
    if sh_degree is None:
        pair_colors = (
            colors[gaussian_ids] if colors.dim() == 2 else colors[camera_ids, gaussian_ids]
        )
    else:
        rot_w2c = viewmats[:, :3, :3]
        cam_centers = -torch.einsum("cji,cj->ci", rot_w2c, viewmats[:, :3, 3])
        dirs = means[gaussian_ids] - cam_centers[camera_ids]
        pair_colors = torch.clamp_min(eval_sh(sh_degree, colors[gaussian_ids], dirs) + 0.5, 0.0)
    pair_depths = depths[camera_ids, gaussian_ids]
    if render_mode in ("D", "ED"):
        pair_colors = pair_depths[:, None]
    elif render_mode in ("RGB+D", "RGB+ED"):
        pair_colors = torch.cat([pair_colors, pair_depths[:, None]], dim=-1)

    flat = camera_ids * n_gaussians + gaussian_ids
    render, transmittance = composite(
        means2d.reshape(-1, 2)[flat],
        conics.reshape(-1, 3)[flat],
        opacities.expand(n_cameras, n_gaussians)[camera_ids, gaussian_ids],
        pair_colors,
        pair_depths,
        radii[camera_ids, gaussian_ids],
        camera_ids,
        n_cameras,
        width,
        height,
        tile_size,
    )
    alphas = 1.0 - transmittance
    if render_mode in ("ED", "RGB+ED"):
        render = torch.cat([render[..., :-1], render[..., -1:] / alphas.clamp_min(1e-10)], dim=-1)
    if backgrounds is not None:
        n_bg = backgrounds.shape[-1]
        render = torch.cat(
            [
                render[..., :n_bg] + transmittance * backgrounds[:, None, None, :],
                render[..., n_bg:],
            ],
            dim=-1,
        )
    info: dict[str, Any] = {
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": radii,
        "means2d": means2d,
        "depths": depths,
        "conics": conics,
        "opacities": opacities.expand(n_cameras, n_gaussians),
        "tile_width": math.ceil(width / tile_size),
        "tile_height": math.ceil(height / tile_size),
        "tile_size": tile_size,
        "n_cameras": n_cameras,
        "width": width,
        "height": height,
    }
    return render, alphas, info
