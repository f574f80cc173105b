"""The CPU rasterizer against hand-computed cases, a dense reference, and autograd."""

from __future__ import annotations

import math

import pytest
import torch
from gsplat.strategy import DefaultStrategy

from gameview_assets.core.train.projection import project_gaussians
from gameview_assets.core.train.rasterizer import rasterization
from gameview_assets_tests.core.dense_compositing import dense_composite


def pinhole(width: int, height: int, focal: float) -> torch.Tensor:
    return torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def random_scene(n: int, seed: int, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "means": (
            (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([2.0, 1.5, 1.0])
            + torch.tensor([0.0, 0.0, 4.0])
        ).to(dtype),
        "quats": torch.randn(n, 4, generator=g).to(dtype),
        "scales": (torch.rand(n, 3, generator=g) * 0.2 + 0.05).to(dtype),
        "opacities": (torch.rand(n, generator=g) * 0.7 + 0.2).to(dtype),
        "colors": torch.rand(n, 3, generator=g).to(dtype),
    }


def dense_reference(scene: dict[str, torch.Tensor], viewmat, K, width, height):
    means2d, conics, depths, radii = project_gaussians(
        scene["means"],
        scene["quats"],
        scene["scales"],
        scene["opacities"],
        viewmat[None],
        K[None],
        width,
        height,
    )
    return dense_composite(
        means2d[0],
        conics[0],
        depths[0],
        radii[0],
        scene["opacities"],
        scene["colors"],
        width,
        height,
    )


def test_single_gaussian_lands_on_its_pixel_with_symmetric_falloff() -> None:
    size, focal, depth, scale = 33, 40.0, 5.0, 0.25
    color = torch.tensor([[0.2, 0.6, 0.9]])
    image, alpha, info = rasterization(
        torch.tensor([[0.0, 0.0, depth]]),
        torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        torch.full((1, 3), scale),
        torch.tensor([0.8]),
        color,
        torch.eye(4)[None],
        pinhole(size, size, focal)[None],
        size,
        size,
    )
    image = image[0]
    peak = int(torch.argmax(image[..., 1]))
    assert divmod(peak, size) == (16, 16)
    torch.testing.assert_close(image[16, 16], 0.8 * color[0])
    for offset in range(1, 6):
        torch.testing.assert_close(image[16, 16 + offset], image[16, 16 - offset])
        torch.testing.assert_close(image[16 + offset, 16], image[16 - offset, 16])
        torch.testing.assert_close(image[16 + offset, 16], image[16, 16 + offset])
    variance = (focal * scale / depth) ** 2 + 0.3
    expected = 0.8 * math.exp(-0.5 * 9 / variance)
    assert image[16, 19, 1].item() == pytest.approx(expected * 0.6, rel=1e-4)
    assert alpha[0, 16, 16, 0].item() == pytest.approx(0.8)
    assert info["radii"].shape == (1, 1, 2) and info["radii"][0, 0, 0] > 0


@pytest.mark.parametrize(
    "mean", [[0.0, 0.0, -5.0], [100.0, 0.0, 5.0], [0.0, -100.0, 5.0], [0.0, 0.0, 0.001]]
)
def test_gaussians_behind_or_outside_the_camera_do_not_render(mean: list[float]) -> None:
    image, alpha, info = rasterization(
        torch.tensor([mean]),
        torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        torch.full((1, 3), 0.2),
        torch.tensor([0.9]),
        torch.ones(1, 3),
        torch.eye(4)[None],
        pinhole(16, 16, 20.0)[None],
        16,
        16,
    )
    assert image.abs().max() == 0 and alpha.max() == 0
    assert (info["radii"] == 0).all()


@pytest.mark.parametrize("tile_size", [4, 8, 16])
def test_tiled_output_matches_dense_reference(tile_size: int) -> None:
    scene = random_scene(60, seed=1)
    width, height = 45, 30
    viewmat, K = torch.eye(4), pinhole(width, height, 30.0)
    image, alpha, _ = rasterization(
        **scene,
        viewmats=viewmat[None],
        Ks=K[None],
        width=width,
        height=height,
        tile_size=tile_size,
    )
    ref_image, ref_alpha = dense_reference(scene, viewmat, K, width, height)
    assert ref_alpha.max() > 0.9
    torch.testing.assert_close(image[0], ref_image, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(alpha[0], ref_alpha, atol=2e-5, rtol=1e-4)


def test_gradients_match_dense_reference() -> None:
    width, height = 24, 20
    viewmat, K = torch.eye(4), pinhole(width, height, 20.0)
    grads = []
    for render in ("tiled", "dense"):
        scene = {k: v.clone().requires_grad_(True) for k, v in random_scene(25, seed=2).items()}
        if render == "tiled":
            image = rasterization(
                **scene, viewmats=viewmat[None], Ks=K[None], width=width, height=height
            )[0][0]
        else:
            image = dense_reference(scene, viewmat, K, width, height)[0]
        (image * torch.linspace(0, 1, 3)).sum().backward()
        grads.append({k: v.grad for k, v in scene.items()})
    for key in grads[0]:
        torch.testing.assert_close(grads[0][key], grads[1][key], atol=1e-4, rtol=1e-3)


def test_gradcheck_in_double_precision() -> None:
    scene = random_scene(4, seed=3, dtype=torch.float64)
    viewmat = torch.eye(4, dtype=torch.float64)[None]
    K = pinhole(8, 8, 6.0).double()[None]

    def render(means, quats, scales, opacities, colors):
        image, alpha, _ = rasterization(
            means,
            quats,
            scales,
            opacities,
            colors,
            viewmat,
            K,
            8,
            8,
            backgrounds=torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64),
        )
        return image, alpha

    inputs = tuple(
        scene[k].requires_grad_(True) for k in ("means", "quats", "scales", "opacities", "colors")
    )
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)


def test_spherical_harmonics_and_batched_cameras() -> None:
    scene = random_scene(40, seed=4)
    sh = torch.randn(40, 16, 3, generator=torch.Generator().manual_seed(5)) * 0.3
    shifted = torch.eye(4)
    shifted[0, 3] = 0.3
    viewmats = torch.stack([torch.eye(4), shifted])
    Ks = pinhole(32, 24, 25.0)[None].repeat(2, 1, 1)
    args = (scene["means"], scene["quats"], scene["scales"], scene["opacities"], sh)
    both, _, info = rasterization(*args, viewmats, Ks, 32, 24, sh_degree=3)
    assert info["means2d"].shape == (2, 40, 2) and info["radii"].shape == (2, 40, 2)
    for i in range(2):
        single, _, _ = rasterization(*args, viewmats[i : i + 1], Ks[i : i + 1], 32, 24, sh_degree=3)
        torch.testing.assert_close(both[i], single[0])
    dc_only, _, _ = rasterization(*args, viewmats[:1], Ks[:1], 32, 24, sh_degree=0)
    assert not torch.allclose(dc_only[0], both[0])


def test_info_drives_gsplat_default_strategy() -> None:
    scene = random_scene(50, seed=6)
    params = {
        "means": torch.nn.Parameter(scene["means"]),
        "quats": torch.nn.Parameter(scene["quats"]),
        "scales": torch.nn.Parameter(scene["scales"].log()),
        "opacities": torch.nn.Parameter(torch.logit(scene["opacities"])),
        "colors": torch.nn.Parameter(scene["colors"]),
    }
    optimizers = {k: torch.optim.Adam([v], lr=1e-3) for k, v in params.items()}
    strategy = DefaultStrategy(refine_start_iter=0, refine_every=1, grow_grad2d=0.0)
    state = strategy.initialize_state()
    image, _, info = rasterization(
        params["means"],
        params["quats"],
        params["scales"].exp(),
        params["opacities"].sigmoid(),
        params["colors"],
        torch.eye(4)[None],
        pinhole(32, 32, 25.0)[None],
        32,
        32,
    )
    strategy.step_pre_backward(params, optimizers, state, 1, info)
    image.square().sum().backward()
    assert info["means2d"].grad is not None and info["means2d"].grad.abs().sum() > 0
    strategy.step_post_backward(params, optimizers, state, 1, info, packed=False)
    assert len(params["means"]) > 50
