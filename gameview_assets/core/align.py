"""Upright and centred scenes: one rigid transform applied to splats and cameras together.

Structure from motion leaves a scene in an arbitrary frame, so viewers show it tilted or
upside down. Before export the scene is turned so that the capture's up is `VIEWER_UP` and
moved so that the point the cameras look at is the origin.

`VIEWER_UP` is -y. A standard 3DGS PLY is in COLMAP's (OpenCV's) axes, where a phone held
upright has its image rows running down the world's +y: the original 3DGS SIBR viewer, and
SuperSplat and PlayCanvas (which turn a PLY 180° about z on load) and Spark's examples (180°
about x) all expect such a scene to have -y up. The subject's front (the average horizontal
viewing direction, or the first camera's where an orbit averages it away) faces +z, the way
the first camera looks, so a viewer's default camera sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from gameview_assets.core.export import ExportCamera, SplatArrays

VIEWER_UP = np.array([0.0, -1.0, 0.0])
VIEWER_FORWARD = np.array([0.0, 0.0, 1.0])
PLANE_MAX_TILT_DEG = 30.0  # a plane further from the cameras' up is a wall or a table side
PLANE_MIN_INLIERS = 0.2  # of the sparse points, within PLANE_TOLERANCE of the plane
PLANE_TOLERANCE = 0.01  # of the scene's extent (the cameras' spread and the points' spread)
PLANE_TRIALS = 400


@dataclass(frozen=True)
class SceneTransform:
    """x' = rotation @ x + translation, and what the up and centre were found from."""

    rotation: np.ndarray  # [3, 3]
    translation: np.ndarray  # [3]
    up_source: str = "cameras"  # "cameras", or "ground plane" where one refined it
    cameras_up_deg: float = 0.0  # angle between the cameras' average up and the up used

    @property
    def matrix(self) -> np.ndarray:
        matrix = np.eye(4)
        matrix[:3, :3] = self.rotation
        matrix[:3, 3] = self.translation
        return matrix

    def to_json(self) -> dict:
        """For bundle.json: the 4×4 matrix from COLMAP's frame to the exported one."""
        return {
            "matrix": [[round(float(v), 9) for v in row] for row in self.matrix],
            "up": [float(v) for v in VIEWER_UP],
            "up_source": self.up_source,
            "cameras_up_deg": round(float(self.cameras_up_deg), 3),
        }


def cameras_up(camtoworlds: np.ndarray) -> np.ndarray:
    """The cameras' average up (OpenCV axes: up is each camera's -y), unit length."""
    up = -camtoworlds[:, :3, 1].sum(axis=0)
    return up / np.linalg.norm(up)


def look_at_centre(camtoworlds: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
    """The point nearest every camera's optical axis in least squares: where they look.

    For cameras that look the same way (a walk past a wall) the axes nearly never meet; then
    the median sparse point (or the cameras' centroid) is used.
    """
    origins = camtoworlds[:, :3, 3]
    axes = camtoworlds[:, :3, 2] / np.linalg.norm(camtoworlds[:, :3, 2], axis=1, keepdims=True)
    projectors = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]
    lhs = projectors.sum(axis=0)
    rhs = np.einsum("nij,nj->i", projectors, origins)
    eigenvalues = np.linalg.eigvalsh(lhs)
    fallback = np.median(points, axis=0) if points is not None and len(points) else None
    if eigenvalues[0] < 0.05 * eigenvalues[-1]:
        return fallback if fallback is not None else origins.mean(axis=0)
    centre = np.linalg.solve(lhs, rhs)
    in_front = np.einsum("ni,ni->n", centre[None] - origins, axes) > 0
    if in_front.mean() < 0.5 and fallback is not None:
        return fallback
    return centre


def ground_plane(
    points: np.ndarray, up: np.ndarray, extent: float, seed: int = 0
) -> tuple[np.ndarray, float] | None:
    """A plane under the cameras' up holding many sparse points: (unit normal, inlier share).

    RANSAC over planes whose normal is within PLANE_MAX_TILT_DEG of `up`, then a least-squares
    refit to the inliers. None when too few points lie on any such plane."""
    if len(points) < 50:
        return None
    rng = np.random.default_rng(seed)
    tolerance = PLANE_TOLERANCE * extent
    min_cos = np.cos(np.radians(PLANE_MAX_TILT_DEG))
    samples = points[rng.integers(0, len(points), size=(PLANE_TRIALS, 3))]
    normals = np.cross(samples[:, 1] - samples[:, 0], samples[:, 2] - samples[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    usable = lengths > 1e-12
    normals = normals[usable] / lengths[usable, None]
    anchors = samples[usable, 0]
    normals *= np.sign(normals @ up)[:, None]
    upright = normals @ up >= min_cos
    normals, anchors = normals[upright], anchors[upright]
    if not len(normals):
        return None
    offsets = np.einsum("ni,ni->n", normals, anchors)
    subset = points[rng.choice(len(points), size=min(len(points), 5000), replace=False)]
    counts = (np.abs(subset @ normals.T - offsets[None]) < tolerance).sum(axis=0)
    best = int(np.argmax(counts))
    inliers = points[np.abs(points @ normals[best] - offsets[best]) < tolerance]
    share = len(inliers) / len(points)
    if share < PLANE_MIN_INLIERS:
        return None
    centred = inliers - inliers.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    normal *= np.sign(normal @ up)
    if normal @ up < min_cos:
        return None
    return normal, share


def rotation_between(frm: np.ndarray, to: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """The rotation taking `frm` (up) to `to`, and `forward` (made horizontal) to +z."""
    forward = forward - (forward @ frm) * frm
    if np.linalg.norm(forward) < 1e-9:
        forward = np.cross(frm, [1.0, 0.0, 0.0] if abs(frm[0]) < 0.9 else [0.0, 1.0, 0.0])
    forward /= np.linalg.norm(forward)
    source = np.stack([np.cross(frm, forward), frm, forward], axis=1)
    target = np.stack([np.cross(to, VIEWER_FORWARD), to, VIEWER_FORWARD], axis=1)
    return target @ source.T


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues: the rotation by `angle` radians about the unit `axis`."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def upright_transform(camtoworlds: np.ndarray, points: np.ndarray | None = None) -> SceneTransform:
    """The rigid transform that puts the capture's up on VIEWER_UP and its subject at 0.

    Up is the cameras' average up, replaced by the normal of a ground plane fitted to the
    sparse points where one within PLANE_MAX_TILT_DEG of it holds enough of them."""
    camtoworlds = np.asarray(camtoworlds, dtype=np.float64)
    points = None if points is None else np.asarray(points, dtype=np.float64).reshape(-1, 3)
    up = camera_up = cameras_up(camtoworlds)
    source = "cameras"
    if points is not None and len(points):
        origins = camtoworlds[:, :3, 3]
        extent = max(np.ptp(origins, axis=0).max(), np.percentile(np.ptp(points, axis=0), 50))
        plane = ground_plane(points, camera_up, float(extent))
        if plane is not None:
            up, source = plane[0], "ground plane"
    forwards = camtoworlds[:, :3, 2]
    forward = forwards.mean(axis=0)
    horizontal = forward - (forward @ up) * up
    if np.linalg.norm(horizontal) < 0.3:
        forward = forwards[0]
    rotation = rotation_between(up, VIEWER_UP, forward)
    centre = look_at_centre(camtoworlds, points)
    angle = np.degrees(np.arccos(np.clip(camera_up @ up, -1.0, 1.0)))
    return SceneTransform(rotation, -rotation @ centre, source, float(angle))


def sparse_points(model_dir: Path) -> np.ndarray:
    """The sparse model's 3D points [P, 3] (the ground plane is fitted to them)."""
    import pycolmap

    reconstruction = pycolmap.Reconstruction(str(model_dir))
    xyz = [point.xyz for point in reconstruction.points3D.values()]
    return np.asarray(xyz, dtype=np.float64).reshape(-1, 3)


def transform_cameras(cameras: Sequence[ExportCamera], transform: SceneTransform) -> list:
    """Cameras moved with the scene: camtoworld' = T @ camtoworld."""
    return [replace(c, camtoworld=transform.matrix @ c.camtoworld) for c in cameras]


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of wxyz quaternions (broadcasting)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """A rotation matrix as a unit wxyz quaternion."""
    m = rotation
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q)
    return q / np.linalg.norm(q)


@lru_cache(maxsize=1)
def _sample_directions() -> np.ndarray:
    rng = np.random.default_rng(7)
    directions = rng.normal(size=(64, 3))
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def _sh_basis(directions: np.ndarray) -> np.ndarray:
    """The 16 real SH basis functions of degree <= 3 at `directions`, as `eval_sh` has them."""
    import torch

    from gameview_assets.core.train.sh import eval_sh

    coeffs = torch.eye(16, dtype=torch.float64)[None].expand(len(directions), 16, 16)
    dirs = torch.as_tensor(directions, dtype=torch.float64)
    return eval_sh(3, coeffs, dirs).numpy()


def sh_rotation(rotation: np.ndarray, degree: int) -> list[np.ndarray]:
    """Per band l = 1..degree, the matrix M_l with c' = M_l @ c rotating that band's
    coefficients with the scene, so that colour'(R d) = colour(d).

    Why our own: gsplat has no SH rotation and e3nn's Wigner-D uses another basis order and
    signs. Each band is a rotation-invariant space, so M_l is found exactly (to rounding) by
    least squares between the basis evaluated at 64 directions and at the same directions
    turned back by R, in the very basis `eval_sh` renders with: the sign convention of 3DGS
    and gsplat cannot be got wrong this way.
    """
    directions = _sample_directions()
    basis = _sh_basis(directions)
    turned = _sh_basis(directions @ rotation)  # rows are R^T d
    bands = []
    for band in range(1, degree + 1):
        lo, hi = band * band, (band + 1) * (band + 1)
        # basis(R^T d) = basis(d) @ X, so colour'(d) = c . basis(R^T d) needs c' = X @ c.
        solution = np.linalg.lstsq(basis[:, lo:hi], turned[:, lo:hi], rcond=None)[0]
        bands.append(solution)
    return bands


def transform_splats(splats: SplatArrays, transform: SceneTransform) -> SplatArrays:
    """Splats moved with the scene: means, orientations and view-dependent colour turned."""
    rotation = transform.rotation
    means = splats.means.astype(np.float64) @ rotation.T + transform.translation
    quats = quaternion_multiply(matrix_to_quaternion(rotation)[None], splats.quats)
    shN = splats.shN.astype(np.float64)
    if shN.shape[1]:
        rotated = np.empty_like(shN)
        for band, matrix in enumerate(sh_rotation(rotation, splats.sh_degree), start=1):
            lo, hi = band * band - 1, (band + 1) * (band + 1) - 1
            rotated[:, lo:hi] = np.einsum("ij,njc->nic", matrix, shN[:, lo:hi])
        shN = rotated
    return replace(
        splats,
        means=means.astype(np.float32),
        quats=quats.astype(np.float32),
        shN=shN.astype(np.float32),
    )
