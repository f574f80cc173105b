"""The synthetic scene: known cameras that really match the rendered images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gameview_assets.core.samples import (
    LOOK_AT,
    orbit_cameras,
    render,
    render_orbit_images,
    render_orbit_video,
    scene_extent,
)
from gameview_assets.core.video import probe_video


def test_orbit_images_are_written_with_their_cameras(tmp_path: Path) -> None:
    cameras = render_orbit_images(tmp_path, count=6, size=(160, 120))
    assert [c.name for c in cameras] == sorted(p.name for p in tmp_path.iterdir())
    with Image.open(tmp_path / cameras[0].name) as image:
        assert image.size == (160, 120)
    centres = np.array([c.centre for c in cameras])
    assert np.ptp(centres[:, 0]) > 0.5 * scene_extent()


def test_cameras_are_opencv_and_look_at_the_table() -> None:
    for camera in orbit_cameras(8, (320, 240)):
        rotation = camera.camtoworld[:3, :3]
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-9)
        assert np.linalg.det(rotation) > 0
        assert rotation[2, 1] < 0  # image "down" points down in the world (z up)
        in_camera = rotation.T @ (LOOK_AT - camera.centre)
        u = camera.fx * in_camera[0] / in_camera[2] + camera.cx
        v = camera.fy * in_camera[1] / in_camera[2] + camera.cy
        assert in_camera[2] > 0 and abs(u - 160) < 1e-6 and abs(v - 120) < 1e-6


def test_render_is_deterministic_and_textured() -> None:
    camera = orbit_cameras(4, (160, 120))[1]
    first, second = render(camera), render(camera)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (120, 160, 3)
    assert first.std() > 30  # colourful, not a flat image
    assert not np.array_equal(first, render(camera, seed=1))


def test_orbit_video_is_a_playable_mp4(tmp_path: Path) -> None:
    cameras = render_orbit_video(tmp_path / "sample.mp4", seconds=2.0, fps=5, size=(160, 120))
    info = probe_video(tmp_path / "sample.mp4")
    assert (info.width, info.height, len(cameras)) == (160, 120, 10)
    assert info.duration_s == 2.0
