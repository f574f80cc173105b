"""Pose stage against plain pycolmap defaults on the real captures, in one run.

    python benchmarks/bench_poses.py [--datasets DIR] [--sets kitchen,lund,kitchen_video]

Plain defaults (SIFT, one OPENCV camera, exhaustive matching, incremental mapping) get the
images at the widths the datasets README measured (kitchen 780 px, Lund 1024 px); our
register_images gets the original files (kitchen video: its extracted frames) and chooses
its own sizes. Wall time for plain counts extraction + matching + mapping, not resizing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from gameview_assets.core.sfm import PoseOptions, register_images
from gameview_assets.core.video import FrameSelection, extract_frames

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = Path(os.environ.get("GAMEVIEW_DATASETS", REPO.parent / "shared" / "datasets"))
PLAIN_WIDTH = {"kitchen": 780, "lund": 1024, "kitchen_video": 780}


@dataclass(frozen=True)
class Outcome:
    method: str
    registered: int
    total: int
    points: int
    seconds: float
    detail: str = ""


def plain_pycolmap(image_dir: Path, work: Path) -> Outcome:
    """COLMAP's defaults, as a user of pycolmap would call them."""
    import pycolmap

    database = work / "database.db"
    start = time.perf_counter()
    pycolmap.extract_features(database, image_dir, camera_mode=pycolmap.CameraMode.SINGLE,
                              reader_options=pycolmap.ImageReaderOptions(camera_model="OPENCV"))
    extracted = time.perf_counter()
    pycolmap.match_exhaustive(database)
    matched = time.perf_counter()
    (work / "sparse").mkdir()
    models = pycolmap.incremental_mapping(database, image_dir, work / "sparse")
    mapped = time.perf_counter()
    best = max(models.values(), key=lambda m: (m.num_reg_images(), m.num_points3D()),
               default=None)
    total = len(list(image_dir.iterdir()))
    return Outcome("plain pycolmap", best.num_reg_images() if best else 0, total,
                   best.num_points3D() if best else 0, mapped - start,
                   f"extract {extracted - start:.1f} + match {matched - extracted:.1f} + "
                   f"map {mapped - matched:.1f} s")


def ours(image_dir: Path, work: Path) -> Outcome:
    start = time.perf_counter()
    result = register_images(image_dir, work, PoseOptions(undistort=False))
    seconds = time.perf_counter() - start
    rungs = ", ".join(f"{r['rung']} {r['registered']}" for r in result.rungs_tried)
    return Outcome("register_images", result.num_registered, result.num_images,
                   result.num_points, seconds,
                   f"rung {result.rung}; tried: {rungs}; "
                   f"reproj {result.mean_reprojection_error:.2f} px")


def resized_copy(image_dir: Path, out_dir: Path, width: int) -> Path:
    out_dir.mkdir(parents=True)
    for path in sorted(image_dir.iterdir()):
        with Image.open(path) as image:
            height = round(image.height * width / image.width)
            image.resize((width, height), Image.Resampling.LANCZOS).save(out_dir / path.name,
                                                                          quality=95)
    return out_dir


def prepare(name: str, datasets: Path, scratch: Path) -> Path:
    """The image folder our pipeline gets for a benchmark set."""
    if name == "kitchen_video":
        frames = scratch / "video_frames"
        extract_frames([datasets / "kitchen" / "kitchen.mp4"], frames,
                       FrameSelection(fps=5, max_size=1600, max_frames=300))
        return frames
    return datasets / name / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--sets", default="kitchen,lund,kitchen_video")
    args = parser.parse_args()
    rows: list[tuple[str, Outcome, Outcome]] = []
    for name in args.sets.split(","):
        scratch = Path(tempfile.mkdtemp(prefix=f"bench_{name}_"))
        try:
            images = prepare(name, args.datasets, scratch)
            small = resized_copy(images, scratch / "plain_images", PLAIN_WIDTH[name])
            (scratch / "plain").mkdir()
            plain = plain_pycolmap(small, scratch / "plain")
            mine = ours(images, scratch / "ours")
            rows.append((name, plain, mine))
            print(f"done {name}", flush=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{'set':<14} {'method':<16} {'registered':>10} {'points':>7} {'wall s':>7}  detail")
    for name, plain, mine in rows:
        for outcome in (plain, mine):
            print(f"{name:<14} {outcome.method:<16} {outcome.registered:>4} of {outcome.total:<3}"
                  f" {outcome.points:>7} {outcome.seconds:>7.1f}  {outcome.detail}")
        print(f"{name:<14} time ratio ours / plain = {mine.seconds / plain.seconds:.2f}")


if __name__ == "__main__":
    main()
