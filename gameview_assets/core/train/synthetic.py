"""Training views rendered from known Gaussians on an orbit: exact scenes for tests and
benchmarks, with no dataset and no pose stage in the way."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from gameview_assets.core.samples import look_at
from gameview_assets.core.train.data import TrainingViews
from gameview_assets.core.train.rasterizer import rasterization


def render_orbit_views(
    gaussians: dict[str, Tensor],
    points: Tensor,
    points_rgb: Tensor,
    n_views: int,
    width: int,
    height: int,
    focal: float,
    radius: float,
    elevation: float,
) -> TrainingViews:
    """Render `gaussians` (means, quats, scales, opacities, colors [N, 3] in 0..1) from
    `n_views` cameras on a circle around the origin; `points`/`points_rgb` play the sparse
    model's points that training starts from."""
    K = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    angles = np.linspace(0, 2 * math.pi, n_views, endpoint=False)
    eyes = [np.array([radius * math.cos(a), radius * math.sin(a), elevation]) for a in angles]
    camtoworlds = torch.tensor(np.stack([look_at(eye) for eye in eyes]), dtype=torch.float32)
    images = []
    for camtoworld in camtoworlds:
        rendered, _, _ = rasterization(
            gaussians["means"],
            gaussians["quats"],
            gaussians["scales"],
            gaussians["opacities"],
            gaussians["colors"],
            torch.linalg.inv(camtoworld)[None],
            K[None],
            width,
            height,
        )
        images.append((rendered[0].clamp(0, 1) * 255).round().byte())
    return TrainingViews(
        names=[f"{i:03d}.png" for i in range(n_views)],
        images=images,
        Ks=K[None].repeat(n_views, 1, 1),
        camtoworlds=camtoworlds,
        widths=[width] * n_views,
        heights=[height] * n_views,
        points=points,
        points_rgb=points_rgb,
    )
