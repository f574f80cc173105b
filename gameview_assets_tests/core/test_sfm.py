"""Pose recovery against known synthetic cameras, failure diagnosis, and real captures."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import get_args, get_type_hints

import numpy as np
import pytest
from PIL import Image

from gameview_assets.core.samples import render_orbit_images, scene_extent
from gameview_assets.core.sfm import (
    FrameStats,
    PoseOptions,
    PoseResult,
    TooFewRegisteredError,
    diagnose_capture,
    register_images,
)
from gameview_assets.core.sfm.ladder import build_ladder, camera_groups

DATASETS = Path(
    os.environ.get(
        "GAMEVIEW_DATASETS", Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    )
)
GLOG_LINE = re.compile(r"^[IWEF]\d{8} \d\d:\d\d:\d\d\.\d+ ", re.MULTILINE)


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation, translation minimising |s R source + t - target|."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    a, b = source - mu_s, target - mu_t
    u, singular, vt = np.linalg.svd(b.T @ a / len(source))
    sign = np.eye(3)
    sign[2, 2] = np.sign(np.linalg.det(u @ vt))
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / a.var(0).sum()
    return scale, rotation, mu_t - scale * rotation @ mu_s


def recovered_centres(model_dir: Path) -> dict[str, np.ndarray]:
    import pycolmap

    model = pycolmap.Reconstruction(str(model_dir))
    return {
        image.name: image.projection_center() for image in model.images.values() if image.has_pose
    }


@pytest.fixture(scope="module")
def orbit_images(tmp_path_factory: pytest.TempPathFactory):
    images = tmp_path_factory.mktemp("orbit") / "images"
    return images, render_orbit_images(images, count=24, size=(320, 240))


@pytest.fixture(scope="module")
def orbit(orbit_images):
    images, cameras = orbit_images
    result = register_images(images, images.parent / "work", PoseOptions())
    return cameras, result


def test_synthetic_orbit_registers_every_image(orbit) -> None:
    cameras, result = orbit
    assert result.num_registered == result.num_images == len(cameras)
    assert sorted(result.registered) == sorted(c.name for c in cameras)
    assert result.num_points > 200 and result.mean_reprojection_error < 1.5
    assert all(frame["registered"] and frame["num_observations"] > 0 for frame in result.frames)
    assert result.rung and result.rungs_tried[-1]["rung"] == result.rung


def test_synthetic_orbit_poses_match_the_truth(orbit) -> None:
    cameras, result = orbit
    found = recovered_centres(result.model_dir)
    truth = np.array([c.centre for c in cameras])
    estimate = np.array([found[c.name] for c in cameras])
    scale, rotation, translation = umeyama(estimate, truth)
    aligned = scale * estimate @ rotation.T + translation
    error = np.linalg.norm(aligned - truth, axis=1)
    assert error.max() < 0.01 * scene_extent(), error.max()


def test_undistorted_model_is_pinhole(orbit) -> None:
    import pycolmap

    _, result = orbit
    assert result.undistorted_dir is not None
    model = pycolmap.Reconstruction(str(result.undistorted_dir / "sparse"))
    assert {camera.model.name for camera in model.cameras.values()} == {"PINHOLE"}
    assert len(list((result.undistorted_dir / "images").iterdir())) == result.num_registered


def test_colmap_logs_to_a_file_not_the_terminal(orbit_images, tmp_path: Path, capfd) -> None:
    import pycolmap

    terminal_flags = (pycolmap.logging.alsologtostderr, pycolmap.logging.stderrthreshold)
    result = register_images(orbit_images[0], tmp_path, PoseOptions(undistort=False))
    out, err = capfd.readouterr()
    assert not GLOG_LINE.search(out + err), (out + err)[:500]
    assert result.log_file == tmp_path / "colmap.log"
    assert "Feature extraction" in result.log_file.read_text()
    assert len(GLOG_LINE.findall(result.log_file.read_text())) > 100
    assert [p.name for p in tmp_path.glob("colmap.log*")] == ["colmap.log"]
    assert (pycolmap.logging.alsologtostderr, pycolmap.logging.stderrthreshold) == terminal_flags


def test_pose_result_round_trips_through_json(orbit) -> None:
    """Fields are JSON values or Paths, so poses.json reads back into the same record."""
    _, result = orbit
    data = json.loads(json.dumps(asdict(result), default=str))
    hints = get_type_hints(PoseResult)
    paths = {name for name, hint in hints.items() if Path in (hint, *get_args(hint))}
    restored = {k: Path(v) if k in paths and v is not None else v for k, v in data.items()}
    assert PoseResult(**restored) == result


def test_featureless_dark_frames_fail_with_a_reason(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(10):
        dark = rng.integers(0, 12, size=(120, 160, 3), dtype=np.uint8)
        Image.fromarray(dark).save(images / f"night_{i:06d}.jpg")
    with pytest.raises(TooFewRegisteredError) as error:
        register_images(images, tmp_path / "work", PoseOptions(undistort=False))
    assert error.value.code == "too_few_registered"
    assert error.value.cause == "too_dark"
    assert "images" in error.value.message and error.value.hint
    assert error.value.result.num_registered == 0
    assert GLOG_LINE.search(error.value.result.log_file.read_text())


def frame(name: str, sharp: float = 500.0, bright: float = 120.0, video: str = "a") -> FrameStats:
    return FrameStats(name=name, video=video, sharpness=sharp, brightness=bright)


def test_diagnosis_names_the_cause() -> None:
    few = [frame(f"a_{i:06d}.jpg") for i in range(4)]
    assert diagnose_capture(few, None)[0] == "too_little_motion"
    blurry = [frame(f"a_{i:06d}.jpg", sharp=5.0 if i > 3 else 500.0) for i in range(20)]
    assert diagnose_capture(blurry, {f.name for f in blurry[:4]})[0] == "too_blurry"
    dark = [frame(f"a_{i:06d}.jpg", bright=10.0) for i in range(20)]
    assert diagnose_capture(dark, None)[0] == "too_dark"
    two = [frame(f"{v}_{i:06d}.jpg", video=v) for v in "ab" for i in range(10)]
    code, message, hint = diagnose_capture(two, {f.name for f in two[:10]})
    assert code == "no_overlap" and "b" in message and hint
    fine = [frame(f"a_{i:06d}.jpg") for i in range(20)]
    assert diagnose_capture(fine, {"a_000000.jpg"})[0] == "too_few_registered"


def test_each_video_gets_its_own_camera_and_ladder_escalates() -> None:
    groups = camera_groups(["b_000001.jpg", "a_000000.jpg", "b_000000.jpg", "x.jpg"])
    assert groups == {"a": ["a_000000.jpg"], "b": ["b_000000.jpg", "b_000001.jpg"], "": ["x.jpg"]}
    small = build_ladder(50, 1920, 1600, 8192, 1024, 4096, 10, 120)
    assert [r.pairing for r in small[:2]] == ["sequential", "exhaustive"]
    assert small[-1].features.max_features == 8192
    assert small[0].features.first_octave == 0
    assert build_ladder(50, 640, 1600, 8192, 1024, 4096, 10, 120)[0].features.first_octave == -1
    assert all(
        r.pairing == "sequential" for r in build_ladder(500, 1920, 1600, 8192, 1024, 4096, 10, 120)
    )


def dataset(name: str) -> Path:
    images = DATASETS / name / "images"
    if not images.is_dir():
        pytest.skip(f"real data not found at {images}; set GAMEVIEW_DATASETS")
    return images


@pytest.mark.realdata
def test_kitchen_orbit_registers_every_frame(tmp_path: Path) -> None:
    result = register_images(dataset("kitchen"), tmp_path, PoseOptions(undistort=False))
    assert result.num_registered >= 24
    assert result.num_images == 25


@pytest.mark.realdata
def test_lund_street_walk_registers(tmp_path: Path) -> None:
    result = register_images(dataset("lund"), tmp_path, PoseOptions(undistort=False))
    assert result.num_registered >= 27
