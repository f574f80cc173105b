"""Pinhole EWA projection of 3D Gaussians, as gsplat computes it (packed=False layout)."""

from __future__ import annotations

import torch
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
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
