"""`turntable.mp4`: one turn around the subject, rendered from the trained scene.

The orbit starts at the thumbnail's framed view and turns about the viewer's up axis through
the subject (the origin of the exported scene). H.264 in yuv420p with the index at the front
(`faststart`), which every browser plays inline; encoded with PyAV's libx264. At 12 frames a
second and 480 pixels across it stays small (a few hundred kB) and quick to render on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from gameview_assets.core.thumbnail import FramedView, look_at_origin, render_view

SECONDS = 4.0
FPS = 12
WIDTH = 480
CRF = 26  # x264 quality: splat renders are smooth, so this is visually clean and small


def orbit(start: FramedView, frames: int, width: int) -> list[FramedView]:
    """`frames` views evenly around one turn, the first being `start` (resized to `width`,
    rounded to even sizes as yuv420p needs)."""
    from gameview_assets.core.align import VIEWER_UP, rotation_about

    scale = width / start.width
    width = 2 * round(start.width * scale / 2)
    height = 2 * round(start.height * scale / 2)
    K = start.K.copy()
    K[0] *= width / start.width
    K[1] *= height / start.height
    eye = start.camtoworld[:3, 3]
    return [
        replace(
            start,
            camtoworld=look_at_origin(rotation_about(VIEWER_UP, -2 * np.pi * i / frames) @ eye),
            K=K,
            width=width,
            height=height,
        )
        for i in range(frames)
    ]


def write_turntable(
    splats: Mapping[str, object],
    start: FramedView,
    out: Path,
    seconds: float = SECONDS,
    fps: int = FPS,
    width: int = WIDTH,
) -> list[np.ndarray]:
    """Render and encode the turntable; returns the frames (uint8 [H, W, 3])."""
    import av

    views = orbit(start, max(2, round(seconds * fps)), width)
    frames = [render_view(splats, view) for view in views]
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = views[0].width, views[0].height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "medium"}
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


def contact_strip(frames: list[np.ndarray], count: int = 6, height: int = 160) -> np.ndarray:
    """`count` frames evenly through the turn, side by side: the turntable in one image."""
    from PIL import Image

    picked = [frames[round(i * len(frames) / count)] for i in range(count)]
    resized = [
        np.asarray(Image.fromarray(f).resize((round(f.shape[1] * height / f.shape[0]), height)))
        for f in picked
    ]
    return np.concatenate(resized, axis=1)
