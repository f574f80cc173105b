"""Camera poses for the extracted frames with pycolmap, escalating until the capture registers."""

from gameview_assets.core.sfm.diagnostics import FrameStats, diagnose_capture, measure_frames
from gameview_assets.core.sfm.pipeline import (
    PoseOptions,
    PoseResult,
    TooFewRegisteredError,
    register_images,
    undistort,
)

__all__ = [
    "FrameStats",
    "PoseOptions",
    "PoseResult",
    "TooFewRegisteredError",
    "diagnose_capture",
    "measure_frames",
    "register_images",
    "undistort",
]
