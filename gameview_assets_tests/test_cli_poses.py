"""`gameview poses`: a folder of images or a video in, a COLMAP model out."""

import pycolmap
import pytest

from gameview_assets.cli import main
from gameview_assets.core.samples import render_orbit_images, render_orbit_video
from gameview_assets.core.train.data import read_views


def test_poses_from_a_folder_of_images(tmp_path, capsys):
    cameras = render_orbit_images(tmp_path / "images", count=16, size=(320, 240))
    status = main(["poses", str(tmp_path / "images"), "--out", str(tmp_path / "model")])
    assert status == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"model: {tmp_path / 'model'}"
    model = pycolmap.Reconstruction(str(tmp_path / "model"))
    assert sorted(image.name for image in model.images.values()) == sorted(
        camera.name for camera in cameras
    )
    assert model.num_points3D() > 100


def test_poses_from_a_video_names_images_as_extracted(tmp_path):
    render_orbit_video(tmp_path / "orbit.mp4", seconds=4.0, fps=5, size=(320, 240))
    assert main(["poses", str(tmp_path / "orbit.mp4"), "--out", str(tmp_path / "model")]) == 0
    extracted = sorted(p.name for p in (tmp_path / "model" / "images").iterdir())
    model = pycolmap.Reconstruction(str(tmp_path / "model"))
    assert len(extracted) >= 15
    assert sorted(image.name for image in model.images.values()) == extracted
    # The training views, readable without pycolmap (what the GPU check carries).
    views = read_views(tmp_path / "model" / "views")
    assert views.names == sorted(image.name for image in model.images.values())
    assert len(views.points) == model.num_points3D()
    assert (views.widths[0], views.heights[0]) == views.images[0].shape[1::-1]
    assert float(views.Ks[0, 0, 2]) == pytest.approx(views.widths[0] / 2, rel=0.1)


def test_poses_of_nothing_is_a_clear_error(tmp_path, capsys):
    assert main(["poses", str(tmp_path / "missing"), "--out", str(tmp_path / "model")]) == 1
    assert "neither a video file nor a folder of images" in capsys.readouterr().err
