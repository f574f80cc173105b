"""Upright and centred: the capture's up becomes the viewer's, splats turn with the cameras."""

import numpy as np
import pytest

from gameview_assets.core.align import (
    VIEWER_UP,
    SceneTransform,
    cameras_up,
    sh_rotation,
    transform_cameras,
    transform_splats,
    upright_transform,
)
from gameview_assets.core.export import ExportCamera, SplatArrays
from gameview_assets.core.samples import LOOK_AT, orbit_cameras

TRUE_UP = np.array([0.0, 0.0, 1.0])  # the synthetic scenes are z-up


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def arbitrary_frame(seed: int) -> np.ndarray:
    """A rigid transform like the one structure from motion leaves a scene in."""
    matrix = np.eye(4)
    matrix[:3, :3] = random_rotation(seed)
    matrix[:3, 3] = np.random.default_rng(seed + 1).normal(size=3) * 3
    return matrix


def table_points(seed: int = 0) -> np.ndarray:
    """Sparse points as SfM finds them on the tabletop scene: most on the table (z = 0),
    the rest on the objects above it, with a little noise."""
    rng = np.random.default_rng(seed)
    table = np.column_stack([rng.uniform(-2, 2, (3000, 2)), np.zeros(3000)])
    objects = rng.normal([0.0, 0.0, 0.4], 0.3, size=(1500, 3))
    return np.concatenate([table, objects]) + rng.normal(scale=0.005, size=(4500, 3))


def to_frame(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def test_full_orbit_up_and_centre_from_the_cameras_alone():
    frame = arbitrary_frame(3)
    camtoworlds = np.stack([frame @ c.camtoworld for c in orbit_cameras(24, (320, 240))])
    transform = upright_transform(camtoworlds)
    up = transform.rotation @ frame[:3, :3] @ TRUE_UP
    assert angle_deg(up, VIEWER_UP) < 3.0
    centre = transform.matrix @ frame @ np.append(LOOK_AT, 1.0)
    assert np.linalg.norm(centre[:3]) < 0.05  # the orbit's radius is 3.2
    assert transform.up_source == "cameras"


def test_ground_plane_corrects_the_tilt_of_a_partial_orbit():
    """Cameras on a half orbit all look down at the subject, so their average up leans
    ~15° toward it; the table's plane among the sparse points puts up right."""
    frame = arbitrary_frame(5)
    cameras = orbit_cameras(12, (320, 240), turns=0.5)
    camtoworlds = np.stack([frame @ c.camtoworld for c in cameras])
    points = to_frame(frame, table_points())
    tilt = angle_deg(frame[:3, :3].T @ cameras_up(camtoworlds), TRUE_UP)
    assert tilt > 8.0  # the cameras alone would leave the scene visibly tilted

    transform = upright_transform(camtoworlds, points)
    assert transform.up_source == "ground plane"
    assert angle_deg(transform.rotation @ frame[:3, :3] @ TRUE_UP, VIEWER_UP) < 3.0
    assert transform.cameras_up_deg == pytest.approx(tilt, abs=1.0)


def test_a_wall_is_not_taken_for_the_ground():
    frame = arbitrary_frame(9)
    camtoworlds = np.stack([frame @ c.camtoworld for c in orbit_cameras(24, (320, 240))])
    rng = np.random.default_rng(0)
    wall = np.column_stack([np.full(3000, -3.0), rng.uniform(-2, 2, (3000, 2))])
    transform = upright_transform(camtoworlds, to_frame(frame, wall))
    assert transform.up_source == "cameras"
    assert angle_deg(transform.rotation @ frame[:3, :3] @ TRUE_UP, VIEWER_UP) < 3.0


def test_cameras_move_with_the_scene():
    frame = arbitrary_frame(2)
    cameras = [
        ExportCamera(c.name, c.width, c.height, c.fx, c.fy, c.cx, c.cy, frame @ c.camtoworld)
        for c in orbit_cameras(8, (320, 240))
    ]
    transform = upright_transform(np.stack([c.camtoworld for c in cameras]))
    moved = transform_cameras(cameras, transform)
    for before, after in zip(cameras, moved, strict=True):
        np.testing.assert_allclose(after.camtoworld, transform.matrix @ before.camtoworld)
        np.testing.assert_allclose(after.camtoworld[:3, :3] @ after.camtoworld[:3, :3].T,
                                   np.eye(3), atol=1e-9)
    # The first camera looks along +z, level with the viewer's horizon.
    assert moved[0].camtoworld[:3, 2] @ VIEWER_UP == pytest.approx(
        cameras[0].camtoworld[:3, 2] @ frame[:3, :3] @ TRUE_UP, abs=1e-6
    )


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_sh_rotation_is_orthogonal_and_composes(degree):
    a, b = random_rotation(0), random_rotation(1)
    for band, (ma, mb, mab) in enumerate(
        zip(sh_rotation(a, degree), sh_rotation(b, degree), sh_rotation(a @ b, degree),
            strict=True),
        start=1,
    ):
        assert ma.shape == (2 * band + 1, 2 * band + 1)
        np.testing.assert_allclose(ma @ ma.T, np.eye(2 * band + 1), atol=1e-9)
        np.testing.assert_allclose(ma @ mb, mab, atol=1e-9)


def scene_with_sh(n: int = 300, degree: int = 3, seed: int = 0) -> SplatArrays:
    """Splats in a ball of radius 1 with strong view-dependent colour."""
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(n, 4))
    return SplatArrays(
        means=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        quats=(quats / np.linalg.norm(quats, axis=1, keepdims=True)).astype(np.float32),
        scales=np.log(rng.uniform(0.03, 0.12, (n, 3))).astype(np.float32),
        opacities=rng.normal(1.0, 1.0, n).astype(np.float32),
        sh0=rng.normal(0, 0.8, (n, 1, 3)).astype(np.float32),
        shN=rng.normal(0, 0.4, (n, (degree + 1) ** 2 - 1, 3)).astype(np.float32),
    )


def render(splats: SplatArrays, camtoworld: np.ndarray) -> np.ndarray:
    from gameview_assets.core.export import splat_tensors
    from gameview_assets.core.train.trainer import render_image

    K = np.array([[120.0, 0, 80], [0, 120.0, 60], [0, 0, 1]])
    return render_image(splat_tensors(splats), camtoworld, K, 160, 120).astype(float)


@pytest.mark.parametrize("degree", [1, 3])
def test_rotated_splats_seen_from_the_rotated_camera_look_the_same(degree):
    from gameview_assets.core.samples import look_at

    splats = scene_with_sh(degree=degree)
    camera = look_at(np.array([0.5, -3.0, 1.2]), np.zeros(3))
    transform = SceneTransform(random_rotation(4), np.array([0.3, -1.0, 2.0]))
    original = render(splats, camera)
    moved = render(transform_splats(splats, transform), transform.matrix @ camera)
    assert original.std() > 20  # a real picture, not a blank
    assert np.abs(moved - original).max() <= 2  # uint8 rounding of float32 maths

    unturned = transform_splats(splats, transform)
    unturned = SplatArrays(unturned.means, unturned.quats, unturned.scales,
                           unturned.opacities, unturned.sh0, splats.shN)
    # Without turning the harmonics the colours go wrong: the check above has teeth.
    assert np.abs(render(unturned, transform.matrix @ camera) - original).mean() > 5


@pytest.mark.realdata
def test_kitchen_cameras_up_becomes_the_viewer_up(datasets, tmp_path):
    """Phones are held upright: on the real kitchen orbit, the cameras' average up must map to
    the viewer's up within 10° once the (plane-refined) transform is applied."""
    from gameview_assets.core.align import sparse_points
    from gameview_assets.core.colmap_model import read_cameras
    from gameview_assets.core.sfm import PoseOptions, register_images

    result = register_images(datasets / "kitchen" / "images", tmp_path, PoseOptions())
    model = result.undistorted_dir / "sparse"
    camtoworlds = np.stack([c.camtoworld for c in read_cameras(model)])
    transform = upright_transform(camtoworlds, sparse_points(model))
    assert angle_deg(transform.rotation @ cameras_up(camtoworlds), VIEWER_UP) < 10.0
