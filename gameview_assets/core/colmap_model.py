"""Reading registered pinhole cameras out of a COLMAP model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gameview_assets.core.export import ExportCamera


def read_cameras(model_dir: Path) -> list[ExportCamera]:
    """Registered views of an (undistorted, pinhole) model, in image-name order."""
    import pycolmap

    reconstruction = pycolmap.Reconstruction(str(model_dir))
    cameras = []
    for image in sorted(reconstruction.images.values(), key=lambda im: im.name):
        if not image.has_pose:
            continue
        camera = reconstruction.cameras[image.camera_id]
        pose = image.cam_from_world
        world_to_cam = np.eye(4)
        world_to_cam[:3, :] = (pose() if callable(pose) else pose).matrix()
        cameras.append(
            ExportCamera(
                name=image.name,
                width=int(camera.width),
                height=int(camera.height),
                fx=float(camera.focal_length_x),
                fy=float(camera.focal_length_y),
                cx=float(camera.principal_point_x),
                cy=float(camera.principal_point_y),
                camtoworld=np.linalg.inv(world_to_cam),
            )
        )
    return cameras
