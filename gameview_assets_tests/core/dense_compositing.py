"""Front-to-back compositing of every pixel against every Gaussian: slow, but obviously right.

The reference the tiled rasterizer is tested against; it follows gsplat's kernel rules
(alpha capped at 0.999, skipped below 1/255, stop once transmittance falls under 1e-4).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gameview_assets.core.train.rasterizer import ALPHA_THRESHOLD, MAX_ALPHA, MIN_TRANSMITTANCE


def dense_composite(
    means2d: Tensor,
    conics: Tensor,
    depths: Tensor,
    radii: Tensor,
    opacities: Tensor,
    colors: Tensor,
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:
    """Image [H, W, D] and alpha [H, W, 1] of one camera's projected Gaussians
    (means2d [N, 2], conics [N, 3], depths [N], radii [N, 2], opacities [N], colors [N, D])."""
    visible = (radii > 0).all(-1)
    order = torch.argsort(depths[visible])
    mean, conic = means2d[visible][order], conics[visible][order]
    opacity, color = opacities[visible][order], colors[visible][order]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixels = torch.stack([xs, ys], -1).reshape(-1, 1, 2).to(mean.dtype) + 0.5
    d = pixels - mean[None]
    sigma = (
        0.5 * (conic[:, 0] * d[..., 0] ** 2 + conic[:, 2] * d[..., 1] ** 2)
        + conic[:, 1] * d[..., 0] * d[..., 1]
    )
    alpha = torch.clamp_max(opacity * torch.exp(-sigma), MAX_ALPHA)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
    after = torch.cumprod(1 - alpha, dim=1)
    before = torch.cat([torch.ones_like(after[:, :1]), after[:, :-1]], dim=1)
    alive = (after > MIN_TRANSMITTANCE).detach()
    weights = alpha * before * alive
    image = (weights[..., None] * color[None]).sum(1).reshape(height, width, -1)
    transmittance = torch.where(alive, 1 - alpha, torch.ones_like(alpha)).prod(1)
    return image, 1 - transmittance.reshape(height, width, 1)
