"""The thumbnail frames the whole subject; the turntable is a browser-playable H.264 orbit."""

import numpy as np
import pytest

from gameview_assets.core.align import VIEWER_UP
from gameview_assets.core.export import ExportCamera, SplatArrays, splat_tensors
from gameview_assets.core.thumbnail import (
    FramedView,
    framed_view,
    look_at_origin,
    write_thumbnail,
)
from gameview_assets_tests.core.test_align import scene_with_sh


def subject_and_background() -> SplatArrays:
    """A subject of radius 1 at the origin, and a far background shell at radius 30."""
    subject = scene_with_sh(600, degree=1, seed=5)
    rng = np.random.default_rng(6)
    shell = rng.normal(size=(200, 3))
    shell = 30 * shell / np.linalg.norm(shell, axis=1, keepdims=True)
    background = scene_with_sh(200, degree=1, seed=7)
    return SplatArrays(
        means=np.concatenate([subject.means, shell.astype(np.float32)]),
        quats=np.concatenate([subject.quats, background.quats]),
        scales=np.concatenate([subject.scales, background.scales + 2]),
        opacities=np.concatenate([subject.opacities, background.opacities]),
        sh0=np.concatenate([subject.sh0, background.sh0]),
        shN=np.concatenate([subject.shN, background.shN]),
    )


def close_up_cameras() -> list[ExportCamera]:
    """A half orbit of close-ups 1.6 from the centre with a narrow lens: none sees it all."""
    cameras = []
    for i, angle in enumerate(np.linspace(0, np.pi, 9)):
        eye = 1.6 * np.array([np.cos(angle), -0.4, np.sin(angle)])
        cameras.append(ExportCamera(f"{i}.jpg", 400, 300, 500.0, 500.0, 200.0, 150.0,
                                    look_at_origin(eye)))
    return cameras


def project(view, points: np.ndarray) -> np.ndarray:
    world_to_cam = np.linalg.inv(view.camtoworld)
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    assert (cam[:, 2] > 0).all()
    return (cam @ view.K.T)[:, :2] / cam[:, 2:3]


def test_the_framed_view_sees_the_whole_subject_upright():
    scene = subject_and_background()
    cameras = close_up_cameras()
    subject = scene.means[:600]
    # The capture's own middle view cuts the subject off.
    middle = FramedView(cameras[4].camtoworld, cameras[4].intrinsics, 400, 300, 1.0)
    pixels = project(middle, subject)
    assert not ((pixels >= 0) & (pixels < [400, 300])).all()

    view = framed_view(scene.means, cameras, 640)
    assert view.width == 640 and view.height == 480
    assert 0.9 < view.subject_radius < 1.8  # the ball's splats, not the background's
    pixels = project(view, subject)
    assert ((pixels >= 0) & (pixels < [640, 480])).all()
    eye = view.camtoworld[:3, 3]
    np.testing.assert_allclose(view.camtoworld[:3, 2], -eye / np.linalg.norm(eye), atol=1e-9)
    assert view.camtoworld[:3, 1] @ VIEWER_UP < 0  # image rows run down the viewer's up
    assert abs(view.camtoworld[:3, 0] @ VIEWER_UP) < 1e-9  # level horizon
    # It looks from the middle of the half orbit, the average viewing direction.
    assert eye / np.linalg.norm(eye) @ np.array([0.0, 0.0, 1.0]) > 0.9


def test_thumbnail_is_centred_on_the_subject(tmp_path):
    from PIL import Image

    scene = subject_and_background()
    view = write_thumbnail(splat_tensors(scene), close_up_cameras(), tmp_path / "t.jpg", 320)
    with Image.open(tmp_path / "t.jpg") as image:
        assert image.format == "JPEG" and image.size == (320, 240)
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert view.width == 320
    ys, xs = np.nonzero(pixels > 20)
    assert len(xs) > 0.1 * pixels.size
    assert abs(xs.mean() - 160) < 30 and abs(ys.mean() - 120) < 25


def test_turntable_is_a_browser_playable_h264_orbit(tmp_path):
    import av

    from gameview_assets.core.thumbnail import render_view
    from gameview_assets.core.turntable import contact_strip, orbit, write_turntable

    scene = subject_and_background()
    start = framed_view(scene.means, close_up_cameras(), 320)
    frames = write_turntable(splat_tensors(scene), start, tmp_path / "turntable.mp4",
                             seconds=1.0, fps=8, width=96)
    data = (tmp_path / "turntable.mp4").read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: plays while downloading
    with av.open(str(tmp_path / "turntable.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (96, 72)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(container.duration / av.time_base) == pytest.approx(1.0, abs=0.15)
    assert len(decoded) == len(frames) == 8
    error = np.abs(decoded[0].astype(float) - frames[0].astype(float)).mean()
    assert error < 8  # the first frame is the thumbnail's view, through a lossy codec
    first = orbit(start, 8, 96)[0]
    np.testing.assert_allclose(first.camtoworld, start.camtoworld, atol=1e-9)
    np.testing.assert_array_equal(render_view(splat_tensors(scene), first), frames[0])
    # Successive frames turn about up: the camera height stays, the picture changes.
    heights = [v.camtoworld[:3, 3] @ VIEWER_UP for v in orbit(start, 8, 96)]
    np.testing.assert_allclose(heights, heights[0], atol=1e-9)
    assert np.abs(frames[2].astype(float) - frames[0]).mean() > 5
    assert contact_strip(frames, count=4, height=36).shape == (36, 4 * 48, 3)
