"""Image quality figures in torch (PSNR, SSIM), shared by the training loss and evaluation."""

from __future__ import annotations

import math

import torch
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def _to_nchw(image: Tensor) -> Tensor:
    """[H, W, C] or [B, H, W, C] channel-last images as a [B, C, H, W] batch."""
    if image.dim() == 3:
        image = image[None]
    return image.permute(0, 3, 1, 2)


def psnr(image: Tensor, reference: Tensor, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels; inf for identical images."""
    mse = torch.mean((image.double() - reference.double()) ** 2).item()
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(max_value**2 / mse)


def _gaussian_window(device: torch.device, dtype: torch.dtype) -> Tensor:
    coords = torch.arange(SSIM_WINDOW, device=device, dtype=dtype) - (SSIM_WINDOW - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    return kernel / kernel.sum()


def _blur(x: Tensor, kernel: Tensor) -> Tensor:
    """Separable Gaussian blur per channel, 'valid' borders like pytorch-msssim."""
    channels = x.shape[1]
    horizontal = kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, SSIM_WINDOW)
    vertical = kernel.reshape(1, 1, -1, 1).expand(channels, 1, SSIM_WINDOW, 1)
    x = torch.nn.functional.conv2d(x, horizontal, groups=channels)
    return torch.nn.functional.conv2d(x, vertical, groups=channels)


def ssim(image: Tensor, reference: Tensor) -> Tensor:
    """Mean structural similarity (11-px Gaussian window, sigma 1.5) of channel-last images
    in [0, 1]; differentiable, so the training loss uses it too. Returns a 0-dim tensor."""
    x, y = _to_nchw(image), _to_nchw(reference)
    kernel = _gaussian_window(x.device, x.dtype)
    mu_x, mu_y = _blur(x, kernel), _blur(y, kernel)
    var_x = _blur(x * x, kernel) - mu_x**2
    var_y = _blur(y * y, kernel) - mu_y**2
    cov = _blur(x * y, kernel) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return (numerator / denominator).mean()
