"""Why a capture failed to register, in words a person filming with a phone can act on."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from gameview_assets.core.video import sharpness, to_grey

BLURRY_SHARPNESS = 40.0  # Laplacian variance of a <=960 px grey frame; sharp phone frames: 200+
DARK_BRIGHTNESS = 40.0  # mean grey level out of 255
MIN_MOVING_FRAMES = 8  # fewer distinct frames than this: the camera hardly moved
MEASURE_SIDE = 960


class FrameLike(Protocol):
    """What diagnosis needs of a frame; `ExtractedFrame` and `FrameStats` both fit."""

    @property
    def name(self) -> str: ...
    @property
    def video(self) -> str: ...
    @property
    def sharpness(self) -> float: ...
    @property
    def brightness(self) -> float: ...


@dataclass(frozen=True)
class FrameStats:
    """Sharpness and brightness of an image given as a file rather than extracted by us."""

    name: str
    video: str
    sharpness: float
    brightness: float


def measure_frames(image_dir: Path, names: Sequence[str]) -> list[FrameStats]:
    """Score image files the way frame extraction does, at most 960 px wide."""
    from gameview_assets.core.sfm.ladder import VIDEO_FRAME_NAME

    stats = []
    for name in names:
        with Image.open(image_dir / name) as image:
            image.draft("RGB", (MEASURE_SIDE, MEASURE_SIDE))
            image = image.convert("RGB")
            image.thumbnail((MEASURE_SIDE, MEASURE_SIDE))
            grey = to_grey(np.asarray(image))
        match = VIDEO_FRAME_NAME.match(name)
        stats.append(FrameStats(name=name, video=match.group("stem") if match else "",
                                sharpness=sharpness(grey), brightness=float(grey.mean())))
    return stats


def diagnose_capture(
    frames: Sequence[FrameLike],
    registered: Collection[str] | None,
) -> tuple[str, str, str]:
    """(code, message, hint) for a capture that did not register well enough.

    `registered` holds the names in the best model, or None when no model was made at all.
    The most specific cause that fits wins; "too_few_registered" is the fallback.
    """
    registered = set(registered or ())
    total = len(frames)
    if total < MIN_MOVING_FRAMES:
        return ("too_little_motion",
                f"only {total} distinct frames: the camera barely moved",
                "Walk slowly around the subject (a full circle if you can) instead of "
                "standing still or only turning the phone.")
    missed = [f for f in frames if f.name not in registered] or list(frames)
    if np.median([f.brightness for f in missed]) < DARK_BRIGHTNESS:
        return ("too_dark",
                f"{len(missed)} of {total} frames are too dark to match",
                "Film in more light, or switch on the lights, and avoid pointing into shadow.")
    if np.median([f.sharpness for f in missed]) < BLURRY_SHARPNESS:
        return ("too_blurry",
                f"{len(missed)} of {total} frames are too blurry to match",
                "Move the phone more slowly and steadily, and film in good light so the "
                "shutter stays fast.")
    videos = {f.video for f in frames}
    registered_videos = {f.video for f in frames if f.name in registered}
    if len(videos) > 1 and len(registered_videos) < len(videos):
        left_out = ", ".join(sorted(videos - registered_videos))
        return ("no_overlap",
                f"the videos {left_out} share no view with the rest",
                "Film the videos so each one shows part of what another shows; overlap "
                "them by a few seconds of the same view.")
    return ("too_few_registered",
            f"camera positions found for only {len(registered)} of {total} frames",
            "Film slowly with lots of overlap between views, keep textured surfaces in view "
            "(avoid blank walls, glass and mirrors), and keep the subject still.")
