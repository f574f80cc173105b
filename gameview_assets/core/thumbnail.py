"""A thumbnail rendered from the trained scene, seen from one of the capture's own views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from gameview_assets.core.export import ExportCamera


def write_thumbnail(
    splats: Mapping[str, object], cameras: Sequence[ExportCamera], out: Path, width: int = 640
) -> Path:
    """Render from the middle registered view (a typical view of the subject) as a JPEG."""
    from PIL import Image

    from gameview_assets.core.train.trainer import render_image

    camera = cameras[len(cameras) // 2]
    scale = width / camera.width
    height = round(camera.height * scale)
    intrinsics = camera.intrinsics.copy()
    intrinsics[:2] *= scale
    pixels = render_image(splats, camera.camtoworld, intrinsics, width, height)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(out, quality=90)
    return out
