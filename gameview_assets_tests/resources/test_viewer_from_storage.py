"""The published scene in headless Chromium, as the studio app will show it from Supabase.

Storage serves `viewer.html` as `text/plain` (no scripts on the storage origin), so a browser
opened on its signed URL shows the page's source. The app shows it the way docs/supabase.md
says, with the example page taken from there: it reads the viewer's text through its signed
URL, opens it on its own origin, and passes the scene's signed URL after `#scene=`; both are
cross-origin requests that only the gateway's CORS headers allow.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from gameview_assets.core.viewer import bundle_path, write_viewer
from gameview_assets.core.web import write_spz
from gameview_assets.resources.supabase_store import SupabaseStore
from gameview_assets_tests.core.splat_transform import missing
from gameview_assets_tests.core.test_viewer import asymmetric_scene, capture_cameras
from gameview_assets_tests.resources.fake_supabase import FakeStorage

DOCS = Path(__file__).resolve().parents[2] / "docs" / "supabase.md"
APP_EXAMPLE = re.compile(r"<!-- studio-app-viewer -->\s*```html\n(.*?)```", re.DOTALL)


def app_example() -> str:
    """The example page of docs/supabase.md, as the studio app's developers read it."""
    found = APP_EXAMPLE.search(DOCS.read_text(encoding="utf-8"))
    assert found, f"no studio-app-viewer example in {DOCS}"
    return found[1]


@pytest.fixture
def published(fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path) -> dict[str, str]:
    """A scene and its viewer published as `bundle` publishes them; their signed URLs."""
    from gameview_assets.core.thumbnail import framed_view

    if not bundle_path().is_file():
        missing("the viewer bundle is not installed: python -m gameview_assets.core.viewer install")
    scene = asymmetric_scene()
    write_spz(scene, tmp_path / "scene.spz")
    view = framed_view(scene.means, capture_cameras(), 200)
    write_viewer(tmp_path / "viewer.html", view, "scene.spz")
    files = {name: tmp_path / name for name in ("scene.spz", "viewer.html")}
    keys = supabase.publish_results("p1", files)
    assert fake.objects[keys["viewer.html"]].content_type.startswith("text/html")
    return {name: supabase.signed_url(key) for name, key in keys.items()}


def test_the_signed_viewer_opened_directly_shows_its_source(published: dict[str, str]) -> None:
    from gameview_assets_tests.core.browser import screenshot

    shows_source = (
        "document.readyState === 'complete' && document.contentType === 'text/plain'"
        " && !window.GameViewViewer && Boolean(document.body)"
        " && document.body.innerText.startsWith('<!doctype html>')"
    )
    shot = screenshot(published["viewer.html"], 320, 200, shows_source)
    assert shot.shape == (200, 320, 3)


def test_the_app_shows_the_scene_from_its_own_origin(
    published: dict[str, str], tmp_path: Path
) -> None:
    from urllib.parse import quote

    from PIL import Image

    from gameview_assets_tests.core.browser import screenshot, serve

    site = tmp_path / "app"
    site.mkdir()
    (site / "scene.html").write_text(app_example(), encoding="utf-8")
    frame_ready = (  # asked from the start: the page may not have its iframe yet
        "(() => { const f = document.querySelector('iframe'), w = f && f.contentWindow;"
        " if (w && w.gameviewError) window.gameviewError = w.gameviewError;"
        " return Boolean(w && w.gameviewReady); })()"
    )
    with serve(site) as app:  # the app's origin: another port than storage's
        urls = f"viewer={quote(published['viewer.html'], safe='')}"
        urls += f"&scene={quote(published['scene.spz'], safe='')}"
        shot = screenshot(f"{app}/scene.html#{urls}", 320, 200, frame_ready)
    Image.fromarray(shot).save(tmp_path / "app.png")
    assert shot.std() > 20, "blank page"
    assert np.count_nonzero(shot.max(axis=2) > 40) > 0.02 * shot.shape[0] * shot.shape[1]
