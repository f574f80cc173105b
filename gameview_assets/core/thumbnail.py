"""A thumbnail rendered from the trained scene, from a view that frames the whole subject.

The scene is exported upright and centred (core/align.py): the subject sits at the origin
and up is VIEWER_UP. The view starts from the capture camera whose direction is nearest the
cameras' average viewing direction (a typical view, not a close-up from one end of the
orbit), turned to look at the origin and pulled back until a sphere holding the subject's
splats fits in the picture. The turntable and the viewer page start from the same view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gameview_assets.core.export import ExportCamera, PinholeView

SUBJECT_PERCENTILE = 90  # of the distances to the origin of the splats inside the cameras
FRAME_MARGIN = 1.1  # the subject's sphere fills 1/1.1 of the narrower field of view


@dataclass(frozen=True)
class FramedView(PinholeView):
    """A view of the subject, and how far the subject reaches from the origin."""

    subject_radius: float = 0.0

    def to_json(self) -> dict:
        """For bundle.json: the view's pose (OpenCV axes, exported frame) and intrinsics."""
        return {
            "camtoworld": [[round(float(v), 6) for v in row] for row in self.camtoworld],
            "fx": round(float(self.K[0, 0]), 3),
            "fy": round(float(self.K[1, 1]), 3),
            "width": self.width,
            "height": self.height,
            "subject_radius": round(self.subject_radius, 6),
        }


def subject_radius(means: np.ndarray, camera_distances: np.ndarray) -> float:
    """How far from the origin the subject reaches: a high percentile of the distances of the
    splats closer than the nearest half of the cameras (the far background is left out)."""
    distances = np.linalg.norm(means, axis=1)
    inside = distances[distances < np.median(camera_distances)]
    if len(inside) == 0:
        return float(0.5 * np.median(camera_distances))
    return float(np.percentile(inside, SUBJECT_PERCENTILE))


def look_at_origin(eye: np.ndarray) -> np.ndarray:
    """Camera-to-world (OpenCV axes) at `eye` looking at the origin, level with the viewer's
    horizon (its up is VIEWER_UP)."""
    from gameview_assets.core.align import VIEWER_UP
    from gameview_assets.core.samples import look_at

    return look_at(eye, up=VIEWER_UP)


def framed_view(means: np.ndarray, cameras: Sequence[ExportCamera], width: int) -> FramedView:
    """The view that frames the subject, `width` pixels across (see the module docstring)."""
    positions = np.stack([c.camtoworld[:3, 3] for c in cameras])
    forwards = np.stack([c.camtoworld[:3, 2] for c in cameras])
    chosen = cameras[int(np.argmax(forwards @ forwards.mean(axis=0)))]
    radius = subject_radius(means, np.linalg.norm(positions, axis=1))
    scale = width / chosen.width
    height = round(chosen.height * scale)
    fx, fy = chosen.fx * scale, chosen.fy * scale
    half_fov = min(np.arctan(width / (2 * fx)), np.arctan(height / (2 * fy)))
    needed = FRAME_MARGIN * radius / np.sin(half_fov)
    eye = chosen.camtoworld[:3, 3]
    if np.linalg.norm(eye) < 1e-9:
        eye = -chosen.camtoworld[:3, 2]
    eye = eye / np.linalg.norm(eye) * max(float(np.linalg.norm(eye)), needed)
    K = np.array([[fx, 0, width / 2], [0, fy, height / 2], [0, 0, 1.0]])
    return FramedView(look_at_origin(eye), K, width, height, radius)


def render_view(splats: Mapping[str, object], view: FramedView) -> np.ndarray:
    """uint8 [H, W, 3] of `splats` (training's tensors) from `view`, on CUDA when there."""
    import torch

    from gameview_assets.core.train.trainer import render_image

    device = "cuda" if torch.cuda.is_available() else "cpu"
    on_device = {k: torch.as_tensor(v).to(device) for k, v in splats.items()}
    return render_image(on_device, view.camtoworld, view.K, view.width, view.height)


def write_thumbnail(
    splats: Mapping[str, object], cameras: Sequence[ExportCamera], out: Path, width: int = 640
) -> FramedView:
    """Render the framed view of the subject as a JPEG; returns the view."""
    from PIL import Image

    means = np.asarray(splats["means"], dtype=np.float64)
    view = framed_view(means, cameras, width)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_view(splats, view)).save(out, quality=90)
    return view
