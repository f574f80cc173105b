"""The escalation ladder: cheap pose attempts first, costlier ones only when frames are left out.

Each rung names the features it needs (a database per feature set, so matches are reused
when a later rung only adds pairs), how to pair images and which mapper to run.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

VIDEO_FRAME_NAME = re.compile(r"^(?P<stem>.+)_\d{6}\.[A-Za-z]+$")
SMALL_IMAGE_SIDE = 800  # at or below this, even the fast rungs upsample (cheap, far more accurate)


@dataclass(frozen=True)
class FeatureSpec:
    """SIFT settings; `first_octave=-1` doubles the image first: more, finer features, slower."""

    name: str
    max_image_size: int
    max_features: int
    first_octave: int


@dataclass(frozen=True)
class Rung:
    """One attempt: features, pairing ("sequential" or "exhaustive"), mapper and its thresholds."""

    name: str
    features: FeatureSpec
    pairing: str
    mapper: str  # "incremental", "incremental_continue" (grow the best model so far) or "global"
    relaxed: bool = False
    overlap: int = 10


def build_ladder(
    num_images: int,
    image_side: int,
    max_image_size: int,
    max_features: int,
    fast_image_size: int,
    fast_features: int,
    overlap: int,
    exhaustive_max_images: int,
) -> list[Rung]:
    """Sequential matching on light features first, then wider pairing, looser mapping, GLOMAP,
    and finally denser features; exhaustive pairing only where the image count allows.
    `image_side` is the longest side of the input images."""
    fast_side = min(fast_image_size, max_image_size, image_side)
    fast_octave = -1 if fast_side <= SMALL_IMAGE_SIDE else 0
    fast = FeatureSpec("fast", fast_side, fast_features, fast_octave)
    dense = FeatureSpec("dense", max_image_size, max_features, -1)
    wide = "exhaustive" if num_images <= exhaustive_max_images else "sequential"
    wide_overlap = max(overlap * 3, 30)
    return [
        Rung("sequential", fast, "sequential", "incremental", overlap=overlap),
        Rung(f"{wide}", fast, wide, "incremental", overlap=wide_overlap),
        Rung("relaxed", fast, wide, "incremental_continue", relaxed=True, overlap=wide_overlap),
        Rung("global", fast, wide, "global", overlap=wide_overlap),
        Rung("dense_features", dense, wide, "incremental", relaxed=True, overlap=wide_overlap),
        Rung("dense_relaxed", dense, wide, "incremental_continue", relaxed=True,
             overlap=wide_overlap),
    ]


def camera_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """Images per source video (`<stem>_000012.jpg`), so each video gets its own camera."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        match = VIDEO_FRAME_NAME.match(name)
        groups.setdefault(match.group("stem") if match else "", []).append(name)
    return groups


def extract(
    database: Path,
    image_dir: Path,
    names: Sequence[str],
    spec: FeatureSpec,
    camera_model: str,
    num_threads: int,
) -> None:
    """SIFT features into `database`, one shared camera per video (EXIF focal as the prior)."""
    import pycolmap

    options = pycolmap.FeatureExtractionOptions()
    options.max_image_size = spec.max_image_size
    options.num_threads = num_threads
    options.sift.max_num_features = spec.max_features
    options.sift.first_octave = spec.first_octave
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    for group in camera_groups(names).values():
        pycolmap.extract_features(database, image_dir, image_names=group,
                                  camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, extraction_options=options)


def match(database: Path, rung: Rung, num_threads: int) -> None:
    """Match image pairs; pairs already in the database are not matched again."""
    import pycolmap

    options = pycolmap.FeatureMatchingOptions()
    options.num_threads = num_threads
    if rung.pairing == "exhaustive":
        pycolmap.match_exhaustive(database, matching_options=options)
        return
    pairing = pycolmap.SequentialPairingOptions()
    pairing.overlap = rung.overlap
    pairing.quadratic_overlap = True
    pycolmap.match_sequential(database, matching_options=options, pairing_options=pairing)


def map_incremental(
    database: Path,
    image_dir: Path,
    out_dir: Path,
    relaxed: bool,
    seed: int,
    num_threads: int,
    input_model: Path | None = None,
) -> list:
    """Incremental SfM tuned for video: initial pairs may move forward (street walks) and
    images register with fewer inliers than COLMAP's defaults ask for."""
    import pycolmap

    options = pycolmap.IncrementalPipelineOptions()
    options.min_model_size = 3
    options.random_seed = seed
    options.num_threads = num_threads
    options.extract_colors = True
    mapper = options.mapper
    mapper.init_max_forward_motion = 1.0 if relaxed else 0.99
    mapper.init_min_tri_angle = 4.0 if relaxed else 8.0
    mapper.init_min_num_inliers = 30 if relaxed else 50
    mapper.abs_pose_min_num_inliers = 10 if relaxed else 15
    mapper.abs_pose_min_inlier_ratio = 0.1 if relaxed else 0.15
    if relaxed:
        options.min_num_matches = 10
        mapper.abs_pose_max_error = 16.0
        mapper.max_reg_trials = 6
        mapper.init_max_reg_trials = 4
        mapper.filter_min_tri_angle = 1.0
        options.triangulation.min_angle = 1.0
    _fresh_dir(out_dir)
    models = pycolmap.incremental_mapping(database, image_dir, out_dir, options,
                                          input_path=str(input_model) if input_model else "")
    return list(models.values())


def map_global(database: Path, image_dir: Path, out_dir: Path, seed: int,
               num_threads: int) -> list:
    """GLOMAP: rotation averaging and global positioning, robust where incremental drifts."""
    import pycolmap

    options = pycolmap.GlobalPipelineOptions()
    options.random_seed = seed
    options.num_threads = num_threads
    options.min_model_size = 3
    options.mapper.global_positioning.use_gpu = False
    options.mapper.bundle_adjustment.ceres.use_gpu = False
    _fresh_dir(out_dir)
    models = pycolmap.global_mapping(database, image_dir, out_dir, options)
    return list(models.values())


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
