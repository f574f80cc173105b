"""PSNR and SSIM on cases with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from gameview_assets.core.metrics import psnr, ssim


def test_psnr_of_identical_images_is_infinite() -> None:
    image = torch.rand(16, 16, 3)
    assert psnr(image, image.clone()) == math.inf


def test_psnr_known_value() -> None:
    assert psnr(torch.full((8, 8, 3), 0.1), torch.zeros(8, 8, 3)) == pytest.approx(20.0)
    assert psnr(torch.full((8, 8, 3), 25.5), torch.zeros(8, 8, 3), max_value=255) == (
        pytest.approx(20.0)
    )


def test_ssim_of_identical_images_is_one() -> None:
    image = torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0))
    assert ssim(image, image.clone()).item() == pytest.approx(1.0, abs=1e-6)


def test_ssim_of_constant_images_matches_closed_form() -> None:
    a, b, c1 = 0.3, 0.6, 0.01**2
    value = ssim(torch.full((16, 16, 3), a), torch.full((16, 16, 3), b)).item()
    assert value == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)


def test_ssim_falls_with_noise_and_is_differentiable() -> None:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 24, 24, 3, generator=g)
    slightly = (image + 0.02 * torch.randn(image.shape, generator=g)).clamp(0, 1)
    heavily = (image + 0.3 * torch.randn(image.shape, generator=g)).clamp(0, 1)
    assert 1.0 > ssim(slightly, image).item() > ssim(heavily, image).item()
    prediction = heavily.clone().requires_grad_(True)
    (1 - ssim(prediction, image)).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0


def channels_first(image: torch.Tensor) -> torch.Tensor:
    return (image if image.dim() == 4 else image[None]).permute(0, 3, 1, 2)


def test_ssim_matches_pytorch_msssim_on_random_and_structured_images() -> None:
    """pytorch-msssim: the same 11-px window, sigma 1.5, constants and 'valid' borders."""
    reference = pytest.importorskip("pytorch_msssim", reason="dev dependency pytorch-msssim")
    g = torch.Generator().manual_seed(2)
    noise = torch.rand(2, 40, 48, 3, generator=g)
    noisy = (noise + 0.1 * torch.randn(noise.shape, generator=g)).clamp(0, 1)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 80), indexing="ij")
    stripes = 0.5 + 0.5 * torch.sin(20 * xs) * torch.cos(14 * ys)
    scene = torch.stack([xs, ys, stripes], dim=-1)
    shifted = torch.roll(scene, shifts=(2, -3), dims=(0, 1)) * 0.9 + 0.05
    cases = [(noisy, noise), (shifted, scene), (noise[0], scene[:40, :48]), (scene, scene)]
    for image, target in cases:
        theirs = reference.ssim(channels_first(image), channels_first(target), data_range=1.0)
        assert ssim(image, target).item() == pytest.approx(theirs.item(), abs=1e-5)
