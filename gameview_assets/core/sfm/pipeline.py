"""register_images: climb the ladder until every frame has a pose, keep the best model."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from gameview_assets.core.errors import CaptureError
from gameview_assets.core.sfm import ladder
from gameview_assets.core.sfm.colmap_log import colmap_log_file
from gameview_assets.core.sfm.diagnostics import FrameLike, diagnose_capture, measure_frames

Progress = Callable[[float, str], None]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
COLMAP_LOG = "colmap.log"


@dataclass(frozen=True)
class PoseOptions:
    """How hard to try. The first rungs use light features (`fast_*`); the dense rungs use
    `max_image_size` and `max_features` with upsampled SIFT."""

    max_image_size: int = 1600
    max_features: int = 8192
    min_registered_fraction: float = 0.5
    camera_model: str = "SIMPLE_RADIAL"  # or "OPENCV"; one camera per video
    fast_image_size: int = 1024
    fast_features: int = 4096
    sequential_overlap: int = 10
    exhaustive_max_images: int = 120  # above this, wide pairing stays sequential
    stop_fraction: float = 1.0  # stop climbing once this share of the images is registered
    undistort: bool = True
    num_threads: int = -1
    seed: int = 0


@dataclass(frozen=True)
class PoseResult:
    """The best model found, where it came from, and per-frame diagnostics."""

    model_dir: Path
    undistorted_dir: Path | None
    num_images: int
    num_registered: int
    num_points: int
    mean_reprojection_error: float
    registered: list[str]
    rung: str
    frames: list[dict]
    timings: dict[str, float]
    rungs_tried: list[dict]
    log_file: Path  # COLMAP's own log lines for this registration


class TooFewRegisteredError(CaptureError):
    """Raised with code "too_few_registered"; `cause` is the diagnosed reason
    ("too_blurry", "too_dark", "too_little_motion", "no_overlap" or "too_few_registered")
    and `result` the best attempt, for diagnostics."""

    def __init__(self, message: str, hint: str, cause: str, result: PoseResult) -> None:
        super().__init__("too_few_registered", message, hint)
        self.cause = cause
        self.result = result


@dataclass
class _Best:
    model: object | None = None
    rung: str = ""
    features: str = ""
    path: Path | None = None

    @property
    def score(self) -> tuple[int, int]:
        if self.model is None:
            return (0, 0)
        return (self.model.num_reg_images(), self.model.num_points3D())


def register_images(
    image_dir: Path,
    work_dir: Path,
    options: PoseOptions = PoseOptions(),
    progress: Progress | None = None,
    frames: Sequence[FrameLike] | None = None,
) -> PoseResult:
    """Poses for every image in `image_dir` (work files in `work_dir`); raises
    TooFewRegisteredError below `min_registered_fraction`. `frames` (from extract_frames)
    feed the failure diagnosis; without them the images are measured."""
    image_dir, work_dir = Path(image_dir), Path(work_dir)
    names = sorted(p.name for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise CaptureError("no_frames", f"{image_dir}: no images to register",
                           "Check that frame extraction produced JPEG files.")
    work_dir.mkdir(parents=True, exist_ok=True)
    with colmap_log_file(work_dir / COLMAP_LOG) as log_file:
        best, timings, tried = _climb(image_dir, work_dir, names, options, progress)
        return _finish(best, names, image_dir, work_dir, log_file, options, timings, tried,
                       frames, progress)


def _climb(
    image_dir: Path,
    work_dir: Path,
    names: list[str],
    options: PoseOptions,
    progress: Progress | None,
) -> tuple[_Best, dict[str, float], list[dict]]:
    """Run the rungs in order until one registers enough; the best model, timings, attempts."""
    with Image.open(image_dir / names[0]) as first:
        image_side = max(first.size)
    rungs = ladder.build_ladder(len(names), image_side, options.max_image_size,
                                options.max_features, options.fast_image_size,
                                options.fast_features, options.sequential_overlap,
                                options.exhaustive_max_images)
    timings: dict[str, float] = {}
    tried: list[dict] = []
    best = _Best()
    best_per_features: dict[str, _Best] = {}
    extracted: set[str] = set()
    goal = max(1, round(options.stop_fraction * len(names)))

    def report(step: int, message: str) -> None:
        if progress is not None:
            progress(min(0.95, step / (2 * len(rungs))), message)

    for index, rung in enumerate(rungs):
        start = time.perf_counter()
        database = work_dir / f"{rung.features.name}.db"
        report(2 * index, f"{rung.name}: features and matches")
        if rung.features.name not in extracted:
            database.unlink(missing_ok=True)
            ladder.extract(database, image_dir, names, rung.features, options.camera_model,
                           options.num_threads)
            extracted.add(rung.features.name)
        ladder.match(database, rung, options.num_threads)
        report(2 * index + 1, f"{rung.name}: mapping")
        out_dir = work_dir / "rungs" / rung.name
        seed_model = best_per_features.get(rung.features.name)
        if rung.mapper == "global":
            models = ladder.map_global(database, image_dir, out_dir, options.seed,
                                       options.num_threads)
        elif rung.mapper == "incremental_continue":
            if seed_model is None or seed_model.path is None:
                continue
            models = ladder.map_incremental(database, image_dir, out_dir, rung.relaxed,
                                            options.seed, options.num_threads, seed_model.path)
        else:
            models = ladder.map_incremental(database, image_dir, out_dir, rung.relaxed,
                                            options.seed, options.num_threads)
        timings[rung.name] = round(time.perf_counter() - start, 3)
        candidate = _pick_best(models, rung, out_dir)
        tried.append({"rung": rung.name, "registered": candidate.score[0],
                      "points": candidate.score[1], "models": len(models),
                      "seconds": timings[rung.name]})
        if candidate.score > best_per_features.get(rung.features.name, _Best()).score:
            best_per_features[rung.features.name] = candidate
        if candidate.score > best.score:
            best = candidate
        if best.score[0] >= goal:
            break
    return best, timings, tried


def undistort(model_dir: Path, image_dir: Path, out_dir: Path) -> Path:
    """Pinhole cameras and undistorted images (`images/`, `sparse/`) for training."""
    import pycolmap

    pycolmap.undistort_images(out_dir, model_dir, image_dir)
    return Path(out_dir)


def _pick_best(models: list, rung: ladder.Rung, out_dir: Path) -> _Best:
    """The model with most registered images (then most points), saved on its own."""
    best = _Best()
    for model in models:
        candidate = _Best(model, rung.name, rung.features.name)
        if candidate.score > best.score:
            best = candidate
    if best.model is not None:
        best.path = out_dir / "best"
        best.path.mkdir(parents=True, exist_ok=True)
        best.model.write(best.path)
    return best


def _finish(
    best: _Best,
    names: list[str],
    image_dir: Path,
    work_dir: Path,
    log_file: Path,
    options: PoseOptions,
    timings: dict[str, float],
    tried: list[dict],
    frames: Sequence[FrameLike] | None,
    progress: Progress | None,
) -> PoseResult:
    model_dir = work_dir / "sparse"
    model_dir.mkdir(parents=True, exist_ok=True)
    model = best.model
    registered: dict[str, int] = {}
    if model is not None:
        model.write(model_dir)
        registered = {image.name: image.num_points3D for image in model.images.values()
                      if image.has_pose}
    result = PoseResult(
        model_dir=model_dir,
        undistorted_dir=None,
        num_images=len(names),
        num_registered=len(registered),
        num_points=model.num_points3D() if model is not None else 0,
        mean_reprojection_error=(round(float(model.compute_mean_reprojection_error()), 4)
                                 if model is not None else 0.0),
        registered=sorted(registered),
        rung=best.rung,
        frames=_frame_rows(names, registered, frames),
        timings=timings,
        rungs_tried=tried,
        log_file=log_file,
    )
    if len(registered) < options.min_registered_fraction * len(names):
        stats = frames if frames is not None else measure_frames(image_dir, names)
        cause, message, hint = diagnose_capture(stats, registered)
        raise TooFewRegisteredError(f"{image_dir.name}: {message}", hint, cause, result)
    if options.undistort:
        if progress is not None:
            progress(0.97, "undistorting images")
        start = time.perf_counter()
        undistorted = undistort(model_dir, image_dir, work_dir / "undistorted")
        timings["undistort"] = round(time.perf_counter() - start, 3)
        result = replace(result, undistorted_dir=undistorted)
    if progress is not None:
        progress(1.0, f"registered {len(registered)} of {len(names)} frames")
    return result


def _frame_rows(names: list[str], registered: dict[str, int],
                frames: Sequence[FrameLike] | None) -> list[dict]:
    """Per frame: registered or not, 3D points seen, and sharpness/brightness when known."""
    measured = {frame.name: frame for frame in frames or ()}
    rows = []
    for name in names:
        row: dict = {"name": name, "registered": name in registered,
                     "num_observations": registered.get(name, 0)}
        if name in measured:
            row["sharpness"] = round(measured[name].sharpness, 1)
            row["brightness"] = round(measured[name].brightness, 1)
        rows.append(row)
    return rows
