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
