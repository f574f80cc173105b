"""Our CPU rasterizer against gsplat's own reference maths, images and gradients.

gsplat's CUDA kernels cannot run without a GPU, but gsplat ships the same maths in plain
torch (`gsplat.cuda._torch_impl`): covariance from quaternion and scale, EWA projection with
its frustum clamp and eps2d blur, and spherical harmonics. The reference render below uses
those functions and composites front to back with the rules of gsplat's kernel. Our rasterizer
must agree with it on the image, the alpha and every gradient the trainer uses.
"""

from __future__ import annotations

import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)

from gameview_assets.core.train.projection import project_gaussians
from gameview_assets.core.train.rasterizer import rasterization
from gameview_assets_tests.core.dense_compositing import dense_composite

WIDTH, HEIGHT = 40, 30
SH_DEGREE = 3


def camera() -> tuple[torch.Tensor, torch.Tensor]:
    """A camera turned and shifted off the world axes, so no term of the projection vanishes."""
    angle = torch.tensor(0.3)
    rotation = torch.tensor(
        [
            [torch.cos(angle), 0.0, torch.sin(angle)],
            [0.0, 1.0, 0.0],
            [-torch.sin(angle), 0.0, torch.cos(angle)],
        ]
    )
    viewmat = torch.eye(4)
    viewmat[:3, :3] = rotation
    viewmat[:3, 3] = torch.tensor([0.2, -0.1, 0.5])
    K = torch.tensor([[32.0, 0.0, 19.0], [0.0, 30.0, 16.0], [0.0, 0.0, 1.0]])
    return viewmat, K


def scene(n: int, seed: int, spread: float = 1.0) -> dict[str, torch.Tensor]:
    """Splats in front of the camera; `spread` > 1 puts some behind it and beside the frustum."""
    g = torch.Generator().manual_seed(seed)
    rotation = camera()[0][:3, :3]
    in_view = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([2.4, 1.8, 1.5]) * spread
    in_view[:, 2] += 4.0
    return {
        "means": (in_view - torch.tensor([0.2, -0.1, 0.5])) @ rotation,
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.rand(n, 3, generator=g) * 0.25 + 0.03,
        "opacities": torch.rand(n, generator=g) * 0.75 + 0.2,
        "colors": torch.randn(n, (SH_DEGREE + 1) ** 2, 3, generator=g) * 0.3,
    }


def gsplat_reference(splats: dict[str, torch.Tensor], viewmat, K) -> tuple:
    """Image and alpha from gsplat's torch reference functions, composited densely."""
    covars, _ = _quat_scale_to_covar_preci(splats["quats"], splats["scales"], compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        splats["means"], covars, viewmat[None], K[None], WIDTH, HEIGHT
    )
    campos = torch.linalg.inv(viewmat)[:3, 3]
    colors = _spherical_harmonics(SH_DEGREE, splats["means"] - campos, splats["colors"])
    colors = torch.clamp_min(colors + 0.5, 0.0)
    return dense_composite(
        means2d[0], conics[0], depths[0], radii[0], splats["opacities"], colors, WIDTH, HEIGHT
    )


def ours(splats: dict[str, torch.Tensor], viewmat, K) -> tuple:
    image, alpha, _ = rasterization(
        splats["means"],
        splats["quats"],
        splats["scales"],
        splats["opacities"],
        splats["colors"],
        viewmat[None],
        K[None],
        WIDTH,
        HEIGHT,
        sh_degree=SH_DEGREE,
    )
    return image[0], alpha[0]


def test_projection_matches_gsplat_reference() -> None:
    splats = scene(200, seed=11, spread=4.0)
    viewmat, K = camera()
    covars, _ = _quat_scale_to_covar_preci(splats["quats"], splats["scales"], compute_preci=False)
    ref_radii, ref_means2d, ref_depths, ref_conics, _ = _fully_fused_projection(
        splats["means"], covars, viewmat[None], K[None], WIDTH, HEIGHT
    )
    # Opacity 1 makes our opacity-aware extent equal gsplat's fixed 3.33 sigmas.
    means2d, conics, depths, radii = project_gaussians(
        splats["means"],
        splats["quats"],
        splats["scales"],
        torch.ones(len(splats["means"])),
        viewmat[None],
        K[None],
        WIDTH,
        HEIGHT,
    )
    visible = (ref_radii > 0).all(-1)
    assert 50 < int(visible.sum()) < 200, "the scene should be partly in view, partly culled"
    torch.testing.assert_close(radii, ref_radii, atol=1, rtol=0)
    torch.testing.assert_close(means2d[visible], ref_means2d[visible], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(depths[visible], ref_depths[visible], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(conics[visible], ref_conics[visible], atol=1e-5, rtol=1e-4)


def test_image_and_gradients_match_gsplat_reference() -> None:
    viewmat, K = camera()
    results = []
    for render in (ours, gsplat_reference):
        splats = {k: v.clone().requires_grad_(True) for k, v in scene(120, seed=12).items()}
        image, alpha = render(splats, viewmat, K)
        weights = torch.linspace(0.2, 1.0, 3)
        ((image * weights).sum() + alpha.sum()).backward()
        results.append((image.detach(), alpha.detach(), {k: v.grad for k, v in splats.items()}))
    (image, alpha, grads), (ref_image, ref_alpha, ref_grads) = results
    assert ref_alpha.max() > 0.9 and ref_image.std() > 0.05, "the reference render is not blank"
    torch.testing.assert_close(image, ref_image, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(alpha, ref_alpha, atol=1e-4, rtol=1e-4)
    for key, ref_grad in ref_grads.items():
        assert ref_grad.abs().max() > 0, f"no gradient reached {key}"
        scale = ref_grad.abs().max()
        torch.testing.assert_close(grads[key] / scale, ref_grad / scale, atol=2e-4, rtol=1e-3)
