"""viewer.html in headless Chromium shows what our own rasterizer renders from the same view."""

import numpy as np
import pytest

from gameview_assets.core.export import ExportCamera, SplatArrays, splat_tensors
from gameview_assets.core.thumbnail import framed_view, look_at_origin, render_view
from gameview_assets.core.viewer import bundle_path, start_view, write_viewer
from gameview_assets.core.web import read_spz, write_spz
from gameview_assets_tests.core.splat_transform import missing


def ball(rng, n: int, centre, radius: float, rgb) -> dict:
    offsets = rng.normal(size=(n, 3))
    offsets *= radius * rng.uniform(0, 1, (n, 1)) ** (1 / 3) / np.linalg.norm(
        offsets, axis=1, keepdims=True
    )
    colour = np.clip(np.asarray(rgb) + rng.normal(0, 0.05, (n, 3)), 0, 1)
    return {"means": np.asarray(centre) + offsets, "rgb": colour}


def asymmetric_scene(seed: int = 0) -> SplatArrays:
    """Red ball toward +x, green above the centre (up is -y), blue toward +z, on a grey floor:
    a mirror, a flip or a turn of the axes shows at once. SH degree 1 adds view-dependent
    colour, so a mistake in the harmonics shows too."""
    rng = np.random.default_rng(seed)
    parts = [
        ball(rng, 700, [0.7, 0.0, 0.0], 0.3, [0.9, 0.15, 0.1]),
        ball(rng, 700, [0.0, -0.7, 0.0], 0.3, [0.1, 0.85, 0.2]),
        ball(rng, 700, [0.0, 0.0, 0.7], 0.3, [0.15, 0.25, 0.95]),
    ]
    floor = rng.uniform(-1.2, 1.2, (1500, 2))
    parts.append({"means": np.column_stack([floor[:, 0], np.full(1500, 0.35), floor[:, 1]]),
                  "rgb": np.full((1500, 3), 0.55) + rng.normal(0, 0.05, (1500, 3))})
    means = np.concatenate([p["means"] for p in parts]).astype(np.float32)
    rgb = np.clip(np.concatenate([p["rgb"] for p in parts]), 0.02, 0.98)
    n = len(means)
    scales = np.full((n, 3), np.log(0.05))
    scales[-1500:, 1] = np.log(0.01)  # flat floor tiles
    quats = np.zeros((n, 4))
    quats[:, 0] = 1
    return SplatArrays(
        means=means,
        quats=quats.astype(np.float32),
        scales=scales.astype(np.float32),
        opacities=np.full(n, 2.5, np.float32),
        sh0=((rgb - 0.5) / 0.28209479177387814).reshape(n, 1, 3).astype(np.float32),
        shN=rng.normal(0, 0.08, (n, 3, 3)).astype(np.float32),
    )


def capture_cameras() -> list[ExportCamera]:
    """Half an orbit, above the subject, in the exported frame."""
    cameras = []
    for i, angle in enumerate(np.linspace(-0.6, 0.9, 7)):
        eye = 3.0 * np.array([np.sin(angle), -0.45, np.cos(angle)])
        cameras.append(ExportCamera(f"{i}.jpg", 640, 480, 560.0, 560.0, 320.0, 240.0,
                                    look_at_origin(eye)))
    return cameras


def test_start_view_is_the_framed_view_in_three_js_axes():
    view = framed_view(asymmetric_scene().means, capture_cameras(), 320)
    settings = start_view(view)
    eye = view.camtoworld[:3, 3]
    np.testing.assert_allclose(settings["position"], [eye[0], -eye[1], -eye[2]], atol=1e-5)
    assert settings["position"][1] > 0  # above the subject: three.js has +y up
    assert settings["fov"] == pytest.approx(2 * np.degrees(np.arctan(120 / view.K[1, 1])))


def test_viewer_page_is_self_contained(tmp_path):
    if not bundle_path().is_file():
        missing("the viewer bundle is not installed: python -m gameview_assets.core.viewer install")
    view = framed_view(asymmetric_scene().means, capture_cameras(), 320)
    page = write_viewer(tmp_path / "viewer.html", view, "scene.spz").read_text()
    assert '"scene": "scene.spz"' in page
    for scheme in ("http://", "https://", "//cdn", "//unpkg"):  # nothing fetched from the net
        assert f'src="{scheme}' not in page and f"import('{scheme}" not in page
    assert page.count("<script") == 2 and "GameViewViewer" in page


def ssim_of(a: np.ndarray, b: np.ndarray) -> float:
    import torch

    from gameview_assets.core.metrics import ssim

    a, b = (torch.from_numpy(np.array(x)).float() / 255 for x in (a, b))
    return float(ssim(a, b))


def test_chromium_shows_what_our_rasterizer_renders(tmp_path):
    """Screenshot of viewer.html at the thumbnail's view against our render of scene.spz.

    Measured: SSIM 0.988 between Chromium (Spark on SwiftShader) and our render; against our
    render turned upside down (a wrong flip) 0.36, mirrored (a wrong handedness) lower than
    the right one by far too. The floor of 0.9 leaves room for Spark's own splat cut-off
    and 8-bit blending, and for SwiftShader versions, while no axis mistake comes near it."""
    from gameview_assets_tests.core.browser import screenshot, serve

    if not bundle_path().is_file():
        missing("the viewer bundle is not installed: python -m gameview_assets.core.viewer install")
    write_spz(asymmetric_scene(), tmp_path / "scene.spz")
    decoded = splat_tensors(read_spz(tmp_path / "scene.spz"))
    view = framed_view(decoded["means"].numpy(), capture_cameras(), 320)
    write_viewer(tmp_path / "viewer.html", view, "scene.spz")
    with serve(tmp_path) as url:
        shot = screenshot(f"{url}/viewer.html", view.width, view.height, "window.gameviewReady")
    ours = render_view(decoded, view)
    from PIL import Image

    Image.fromarray(shot).save(tmp_path / "chromium.png")
    Image.fromarray(ours).save(tmp_path / "ours.png")
    assert shot.shape == ours.shape
    assert shot.std() > 20, "blank page"
    right = ssim_of(shot, ours)
    upside_down, mirrored = ssim_of(shot, ours[::-1, ::-1]), ssim_of(shot, ours[:, ::-1])
    print(f"SSIM {right:.3f}; upside down {upside_down:.3f}; mirrored {mirrored:.3f}")
    assert right > BROWSER_SSIM_FLOOR, (right, upside_down, mirrored)
    assert max(upside_down, mirrored) < BROWSER_SSIM_FLOOR - 0.2


BROWSER_SSIM_FLOOR = 0.9


def test_the_app_can_point_the_page_at_the_scene(tmp_path):
    """A private bucket signs every file apart: the app passes the scene's URL after `#`."""
    from gameview_assets_tests.core.browser import screenshot, serve

    if not bundle_path().is_file():
        missing("the viewer bundle is not installed: python -m gameview_assets.core.viewer install")
    (tmp_path / "signed").mkdir()
    write_spz(asymmetric_scene(), tmp_path / "signed" / "object.spz")
    view = framed_view(asymmetric_scene().means, capture_cameras(), 160)
    write_viewer(tmp_path / "viewer.html", view, "scene.spz")  # no scene.spz beside it
    with serve(tmp_path) as url:
        shot = screenshot(f"{url}/viewer.html#scene={url}/signed/object.spz", view.width,
                          view.height, "window.gameviewReady")
    assert shot.std() > 20
