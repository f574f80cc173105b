"""Differentiable Gaussian splatting in plain PyTorch, for machines without CUDA.

gsplat only rasterizes with CUDA kernels, so CPU training needs its own renderer. This one
follows gsplat's maths (see `projection`; alpha clamped to 0.999, contributions under 1/255
skipped, stop at transmittance 1e-4) and is vectorised end to end: every (Gaussian, tile)
overlap becomes a row of `tile_size**2` pixel slots, rows are sorted by (camera, tile, depth)
and padded to whole chunks per tile, and front-to-back transmittance is a segmented prefix
sum of log(1 - alpha). A custom autograd Function with an analytic backward does the
compositing; the returned `info` carries what gsplat's densification strategies read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gameview_assets.core.train.projection import ALPHA_THRESHOLD, project_gaussians
from gameview_assets.core.train.sh import eval_sh

MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
CHUNK_ROWS = 16


@dataclass(frozen=True)
class TileLayout:
    """Overlaps of projected Gaussians with tiles, sorted by (camera, tile, depth) and padded
    so that every tile owns whole chunks of CHUNK_ROWS rows.

    source [R]: the projected Gaussian behind each row (M, one past the last, for padding);
    chunk_tiles [R / CHUNK_ROWS]: global tile id (camera * tiles + tile) of each chunk;
    chunk_first / chunk_last: the first and last chunk of the same tile;
    chunk_px / chunk_py: pixel-centre coordinates of the tile's top-left slot.
    """

    source: Tensor
    chunk_tiles: Tensor
    chunk_first: Tensor
    chunk_last: Tensor
    chunk_px: Tensor
    chunk_py: Tensor
    total_tiles: int
    tile_size: int


def _min_sigma_over_tiles(
    offset_x: Tensor, offset_y: Tensor, conics: Tensor, extent: float
) -> Tensor:
    """Smallest Mahalanobis term 0.5 d^T conic d over each row's tile of pixel centres.

    offset_x / offset_y: the tile's first pixel centre minus the mean; `extent` is the
    distance to the last. A positive-definite quadratic is smallest at the mean when the mean
    is inside, else on an edge, where along the edge it is a 1D parabola: clamp its vertex.
    """
    a, b, c = conics.unbind(-1)
    inside = (offset_x <= 0) & (offset_x + extent >= 0) & (offset_y <= 0) & (offset_y + extent >= 0)
    best = torch.where(inside, 0.0, torch.inf)
    for edge_x in (offset_x, offset_x + extent):
        dy = torch.clamp(-b * edge_x / c, offset_y, offset_y + extent)
        best = torch.minimum(best, 0.5 * a * edge_x**2 + b * edge_x * dy + 0.5 * c * dy**2)
    for edge_y in (offset_y, offset_y + extent):
        dx = torch.clamp(-b * edge_y / a, offset_x, offset_x + extent)
        best = torch.minimum(best, 0.5 * a * dx**2 + b * dx * edge_y + 0.5 * c * edge_y**2)
    return best


def bin_gaussians(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    radii: Tensor,
    depths: Tensor,
    camera_ids: Tensor,
    n_cameras: int,
    tiles_x: int,
    tiles_y: int,
    tile_size: int,
) -> TileLayout:
    """Tile layout for M projected Gaussians (means2d [M, 2], conics [M, 3], opacities [M],
    radii [M, 2], depths [M]); overlaps of the bounding box where the ellipse keeps alpha
    under the 1/255 threshold on every pixel of the tile are dropped (about a quarter)."""
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
    local = torch.arange(len(row_gaussian), device=device)
    local -= torch.repeat_interleave(first_row, counts)
    row_span = span_x[row_gaussian]
    tile_x = x0[row_gaussian] + local % row_span
    tile_y = y0[row_gaussian] + local // row_span
    min_sigma = _min_sigma_over_tiles(
        (tile_x * tile_size).to(mx.dtype) + 0.5 - mx[row_gaussian],
        (tile_y * tile_size).to(my.dtype) + 0.5 - my[row_gaussian],
        conics[row_gaussian],
        tile_size - 1.0,
    )
    touches = min_sigma <= torch.log(opacities[row_gaussian] / ALPHA_THRESHOLD)
    row_gaussian, tile_x, tile_y = row_gaussian[touches], tile_x[touches], tile_y[touches]
    tiles_per_camera = tiles_x * tiles_y
    tile_ids = camera_ids[row_gaussian] * tiles_per_camera + tile_y * tiles_x + tile_x
    tile_ids, by_tile = torch.sort(tile_ids, stable=True)
    row_gaussian = row_gaussian[by_tile]

    total_tiles = n_cameras * tiles_per_camera
    tile_rows = torch.bincount(tile_ids, minlength=total_tiles)
    tile_chunks = (tile_rows + CHUNK_ROWS - 1) // CHUNK_ROWS
    tile_first_chunk = torch.cumsum(tile_chunks, 0) - tile_chunks
    tile_first_row = torch.cumsum(tile_rows, 0) - tile_rows
    n_chunks = int(tile_chunks.sum())
    row_in_tile = torch.arange(len(tile_ids), device=device) - tile_first_row[tile_ids]
    source = torch.full((n_chunks * CHUNK_ROWS,), len(means2d), dtype=torch.long, device=device)
    source[tile_first_chunk[tile_ids] * CHUNK_ROWS + row_in_tile] = row_gaussian
    chunk_tiles = torch.repeat_interleave(torch.arange(total_tiles, device=device), tile_chunks)
    chunk_first = tile_first_chunk[chunk_tiles]
    tile_in_camera = chunk_tiles % tiles_per_camera
    return TileLayout(
        source=source,
        chunk_tiles=chunk_tiles,
        chunk_first=chunk_first,
        chunk_last=chunk_first + tile_chunks[chunk_tiles] - 1,
        chunk_px=((tile_in_camera % tiles_x) * tile_size).to(means2d.dtype) + 0.5,
        chunk_py=((tile_in_camera // tiles_x) * tile_size).to(means2d.dtype) + 0.5,
        total_tiles=total_tiles,
        tile_size=tile_size,
    )


def _segment_exclusive_prefix(chunk_totals: Tensor, layout: TileLayout) -> Tensor:
    """Per chunk, the sum of the earlier chunks of its tile (float64 for long tiles)."""
    inclusive = torch.cumsum(chunk_totals.double(), 0)
    exclusive = inclusive - chunk_totals
    return (exclusive - exclusive[layout.chunk_first]).to(chunk_totals.dtype)


def _segment_exclusive_suffix(chunk_totals: Tensor, layout: TileLayout) -> Tensor:
    """Per chunk, the sum of the later chunks of its tile."""
    inclusive = torch.cumsum(chunk_totals.double(), 0)
    return (inclusive[layout.chunk_last] - inclusive).to(chunk_totals.dtype)


def _strict_triangle(size: int, lower: bool, like: Tensor) -> Tensor:
    ones = torch.ones(size, size, dtype=like.dtype, device=like.device)
    return torch.tril(ones, diagonal=-1) if lower else torch.triu(ones, diagonal=1)


class _RowGeometry:
    """Per padded row: the Gaussian's parameters and its offsets to the tile's pixel centres."""

    def __init__(
        self, means2d: Tensor, conics: Tensor, opacities: Tensor, layout: TileLayout
    ) -> None:
        pad = means2d.new_zeros(1, 1)
        self.means = torch.cat([means2d, pad.expand(1, 2)])[layout.source]
        self.conics = torch.cat([conics, pad.expand(1, 3)])[layout.source]
        self.opacities = torch.cat([opacities, pad[0]])[layout.source]
        offsets = torch.arange(layout.tile_size, device=means2d.device, dtype=means2d.dtype)
        origin_x = layout.chunk_px.repeat_interleave(CHUNK_ROWS)
        origin_y = layout.chunk_py.repeat_interleave(CHUNK_ROWS)
        self.dx = (origin_x - self.means[:, 0])[:, None] + offsets
        self.dy = (origin_y - self.means[:, 1])[:, None] + offsets

    def alphas(self) -> Tensor:
        """opacity * exp(-sigma) per slot [rows, size * size], clamped and thresholded."""
        a, b, c = self.conics.unbind(-1)
        # sigma[row, y, x]: separable terms plus the cross term, built in one buffer.
        sigma = torch.mul((b[:, None] * self.dy)[:, :, None], self.dx[:, None, :])
        sigma += (0.5 * a[:, None] * self.dx * self.dx)[:, None, :]
        sigma += (0.5 * c[:, None] * self.dy * self.dy)[:, :, None]
        alpha = (
            sigma.neg_()
            .exp_()
            .mul_(self.opacities[:, None, None])
            .view(len(sigma), self.dx.shape[1] ** 2)
        )
        return alpha.clamp_max_(MAX_ALPHA).masked_fill_(alpha < ALPHA_THRESHOLD, 0.0)


class _Composite(torch.autograd.Function):
    """Front-to-back compositing of tile rows with a hand-written backward.

    Transmittance in log space: within a chunk by a triangular matmul, across a tile's
    chunks by a segmented prefix sum, so nothing loops in Python. In-place updates keep the
    working set to a few [rows, tile_size**2] buffers, which matters more than FLOPs on CPU.
    """

    @staticmethod
    def forward(
        ctx: Any,
        means2d: Tensor,
        conics: Tensor,
        opacities: Tensor,
        colors: Tensor,
        layout: TileLayout,
    ) -> tuple[Tensor, Tensor]:
        geometry = _RowGeometry(means2d, conics, opacities, layout)
        slots, channels = layout.tile_size**2, colors.shape[-1]
        n_chunks = len(layout.chunk_tiles)
        alpha = geometry.alphas()
        log_transmit = torch.log1p(alpha.neg()).view(n_chunks, CHUNK_ROWS, slots)
        lower = _strict_triangle(CHUNK_ROWS, lower=True, like=alpha)
        log_before = torch.matmul(lower, log_transmit)
        log_before += _segment_exclusive_prefix(log_transmit.sum(1), layout)[:, None, :]
        alive = torch.add(log_before, log_transmit).gt_(math.log(MIN_TRANSMITTANCE))
        transmit_before = log_before.exp_().mul_(alive).view(-1, slots)
        weights = torch.mul(alpha, transmit_before).view(n_chunks, CHUNK_ROWS, slots)
        row_colors = torch.cat([colors, colors.new_zeros(1, channels)])[layout.source]
        chunk_image = torch.bmm(
            weights.transpose(1, 2), row_colors.view(n_chunks, CHUNK_ROWS, channels)
        )
        image = colors.new_zeros(layout.total_tiles, slots, channels)
        image.index_add_(0, layout.chunk_tiles, chunk_image)
        log_final = alpha.new_zeros(layout.total_tiles, slots)
        log_final.index_add_(0, layout.chunk_tiles, log_transmit.mul_(alive).sum(1))
        transmittance = log_final.exp_()
        ctx.layout = layout
        ctx.save_for_backward(
            means2d, conics, opacities, colors, alpha, transmit_before, transmittance
        )
        return image, transmittance

    @staticmethod
    def backward(ctx: Any, grad_image: Tensor, grad_transmittance: Tensor) -> tuple:
        means2d, conics, opacities, colors, alpha, transmit_before, transmittance = (
            ctx.saved_tensors
        )
        layout: TileLayout = ctx.layout
        geometry = _RowGeometry(means2d, conics, opacities, layout)
        size, slots, channels = layout.tile_size, layout.tile_size**2, colors.shape[-1]
        n_chunks, rows = len(layout.chunk_tiles), len(layout.source)
        weights = torch.mul(alpha, transmit_before).view(n_chunks, CHUNK_ROWS, slots)
        row_colors = torch.cat([colors, colors.new_zeros(1, channels)])[layout.source]
        chunk_grad_image = grad_image[layout.chunk_tiles]
        grad_colors_rows = torch.bmm(weights, chunk_grad_image).view(rows, channels)
        grad_weights = torch.bmm(
            row_colors.view(n_chunks, CHUNK_ROWS, channels), chunk_grad_image.transpose(1, 2)
        )
        # d loss / d log(1 - alpha_r): every later row's weight and the final transmittance.
        later = weights.mul_(grad_weights)
        upper = _strict_triangle(CHUNK_ROWS, lower=False, like=alpha)
        grad_log = torch.matmul(upper, later)
        grad_log += _segment_exclusive_suffix(later.sum(1), layout)[:, None, :]
        grad_log += (grad_transmittance * transmittance)[layout.chunk_tiles][:, None, :]
        grad_log = grad_log.view(rows, slots).mul_(transmit_before > 0)
        grad_alpha = grad_weights.view(rows, slots).mul_(transmit_before)
        grad_alpha -= grad_log.div_(torch.rsub(alpha, 1.0))
        # Zero where alpha was thresholded away or clamped; then d alpha / d sigma = -alpha.
        grad_alpha.mul_((alpha > 0) & (alpha < MAX_ALPHA)).mul_(alpha)
        safe_opacities = torch.where(geometry.opacities > 0, geometry.opacities, 1.0)
        grad_opacities_rows = grad_alpha.sum(1) / safe_opacities
        grad_sigma = grad_alpha.neg_().view(rows, size, size)
        dx, dy = geometry.dx, geometry.dy
        column_sums = grad_sigma.sum(1)
        row_sums = grad_sigma.sum(2)
        sum_dx = (column_sums * dx).sum(1)
        sum_dy = (row_sums * dy).sum(1)
        sum_dx2 = (column_sums * dx * dx).sum(1)
        sum_dy2 = (row_sums * dy * dy).sum(1)
        sum_dxdy = (torch.bmm(grad_sigma, dx[:, :, None])[:, :, 0] * dy).sum(1)
        a, b, c = geometry.conics.unbind(-1)
        grad_means_rows = -torch.stack([a * sum_dx + b * sum_dy, b * sum_dx + c * sum_dy], -1)
        grad_conics_rows = torch.stack([0.5 * sum_dx2, sum_dxdy, 0.5 * sum_dy2], -1)

        def to_inputs(row_grads: Tensor, like: Tensor) -> Tensor:
            padded = row_grads.new_zeros((len(like) + 1, *row_grads.shape[1:]))
            return padded.index_add_(0, layout.source, row_grads)[:-1]

        return (
            to_inputs(grad_means_rows, means2d),
            to_inputs(grad_conics_rows, conics),
            to_inputs(grad_opacities_rows, opacities),
            to_inputs(grad_colors_rows, colors),
            None,
        )


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
    with torch.no_grad():
        layout = bin_gaussians(
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
    image, transmittance = _Composite.apply(means2d, conics, opacities, colors.contiguous(), layout)
    return untile(image, n_cameras, tiles_y, tiles_x, tile_size, height, width), untile(
        transmittance[..., None], n_cameras, tiles_y, tiles_x, tile_size, height, width
    )


def untile(
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
