"""Real spherical harmonics up to degree 3, in the basis and sign convention of 3DGS and gsplat."""

from __future__ import annotations

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """DC coefficient that evaluates to `rgb` (in [0, 1]) once the renderer adds 0.5."""
    return (rgb - 0.5) / SH_C0


def eval_sh(degree: int, coeffs: Tensor, dirs: Tensor) -> Tensor:
    """Evaluate `coeffs` [..., K, 3] (K >= (degree+1)^2) along `dirs` [..., 3] (any length)."""
    result = SH_C0 * coeffs[..., 0, :]
    if degree == 0:
        return result
    d = torch.nn.functional.normalize(dirs, dim=-1)
    x, y, z = (d[..., i : i + 1] for i in range(3))
    result = result + SH_C1 * (
        -y * coeffs[..., 1, :] + z * coeffs[..., 2, :] - x * coeffs[..., 3, :]
    )
    if degree == 1:
        return result
    xx, yy, zz = x * x, y * y, z * z
    xy, yz, xz = x * y, y * z, x * z
    result = (
        result
        + SH_C2[0] * xy * coeffs[..., 4, :]
        + SH_C2[1] * yz * coeffs[..., 5, :]
        + SH_C2[2] * (2.0 * zz - xx - yy) * coeffs[..., 6, :]
        + SH_C2[3] * xz * coeffs[..., 7, :]
        + SH_C2[4] * (xx - yy) * coeffs[..., 8, :]
    )
    if degree == 2:
        return result
    return (
        result
        + SH_C3[0] * y * (3.0 * xx - yy) * coeffs[..., 9, :]
        + SH_C3[1] * xy * z * coeffs[..., 10, :]
        + SH_C3[2] * y * (4.0 * zz - xx - yy) * coeffs[..., 11, :]
        + SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * coeffs[..., 12, :]
        + SH_C3[4] * x * (4.0 * zz - xx - yy) * coeffs[..., 13, :]
        + SH_C3[5] * z * (xx - yy) * coeffs[..., 14, :]
        + SH_C3[6] * x * (xx - 3.0 * yy) * coeffs[..., 15, :]
    )
