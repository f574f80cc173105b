"""`gameview`: process videos end to end through Dagster, recover poses, make a sample, serve."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gameview_assets.core.production import (
    MANIFEST_NAME,
    InvalidProductionError,
    Manifest,
    ProductionKeys,
    validate_production_id,
)
from gameview_assets.presets import PRESET_NAMES, get_preset
from gameview_assets.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance

REPO_INSTANCE_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def prepare_dagster_home(settings: Settings) -> Path:
    """Point Dagster at `$DAGSTER_HOME` (made if missing, with the project's instance config)."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and REPO_INSTANCE_YAML.is_file():
        shutil.copyfile(REPO_INSTANCE_YAML, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def new_production_id(video: Path) -> str:
    """A readable, unique id: the first video's name and the time."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", video.stem).strip("-_")[:48] or "production"
    return f"{stem}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def submit_production(
    settings: Settings, videos: list[Path], preset: str, production_id: str
) -> str | None:
    """Put the videos into the store as a production, the manifest last (as the app does);
    returns the manifest's version, which the upload sensor keys its runs on."""
    import dagster as dg

    from gameview_assets.definitions import store_resource

    keys = ProductionKeys(production_id)
    with dg.build_resources({"store": store_resource(settings)}) as resources:
        store = resources.store.store
        for video in videos:
            store.upload(keys.video(video.name), video)
        manifest = Manifest(
            preset=preset, videos=tuple(keys.relative(keys.video(v.name)) for v in videos)
        )
        staging = settings.workdir / f".{production_id}.{MANIFEST_NAME}"
        staging.parent.mkdir(parents=True, exist_ok=True)
        staging.write_text(manifest.to_json(), encoding="utf-8")
        store.upload(keys.manifest, staging)
        staging.unlink()
        return store.manifest_version(production_id)


def follow_progress(instance: DagsterInstance, run_id: str, done: threading.Event) -> None:
    """Drive a progress bar from the run's progress events until the run ends."""
    from tqdm import tqdm

    from gameview_assets.assets.progress import progress_since

    cursor = None
    with tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {elapsed} {postfix}") as bar:
        while True:
            finished = done.wait(1.0)
            updates, cursor, more = progress_since(instance, run_id, cursor)
            for update in updates:
                bar.update(max(0, round(update.fraction * 100) - bar.n))
                bar.set_postfix_str(f"{update.stage}: {update.status}"[:60])
            if finished and not more:
                return


def process(videos: list[Path], preset: str, production_id: str | None) -> int:
    """Materialize every asset of a new production's partition in the local Dagster instance."""
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        return fail(f"no such video file: {', '.join(missing)}")
    try:
        production_id = validate_production_id(production_id or new_production_id(videos[0]))
    except InvalidProductionError as exc:
        return fail(f"{exc.message}: {exc.hint}")
    settings = Settings.from_env()
    prepare_dagster_home(settings)

    from dagster import DagsterInstance

    from gameview_assets.definitions import build_definitions
    from gameview_assets.jobs import MANIFEST_VERSION_TAG, PRESET_TAG, PROCESS_JOB_NAME
    from gameview_assets.partitions import productions
    from gameview_assets.run_outcome import failure_of_run

    version = submit_production(settings, videos, preset, production_id)
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(productions.name, [production_id])
    defs = build_definitions(settings)
    job = defs.resolve_job_def(PROCESS_JOB_NAME)
    run_id = str(uuid.uuid4())
    print(f"production {production_id} ({preset}), run {run_id}", file=sys.stderr)
    done = threading.Event()
    watcher = threading.Thread(target=follow_progress, args=(instance, run_id, done), daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        result = job.execute_in_process(
            instance=instance,
            partition_key=production_id,
            run_id=run_id,
            raise_on_error=False,
            # The manifest version tells a running upload sensor this one is taken.
            tags={PRESET_TAG: preset, MANIFEST_VERSION_TAG: version or ""},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    finally:
        done.set()
        watcher.join()
    if not result.success:
        error = failure_of_run(instance, run_id)
        return fail(f"{error.stage}: {error.message}. {error.hint}")
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(f"results: {result_location(settings, production_id)}")
    return 0


def result_location(settings: Settings, production_id: str) -> str:
    """Where the results of a production are, for people: a folder or a storage prefix."""
    import dagster as dg

    from gameview_assets.definitions import store_resource

    with dg.build_resources({"store": store_resource(settings)}) as resources:
        return f"{resources.store.store.describe()}/{ProductionKeys(production_id).results}"


def poses(source: Path, out: Path, preset_name: str) -> int:
    """Frame selection and the pose stage only: a COLMAP model in `out`, images as extracted."""
    from gameview_assets.core.errors import CaptureError
    from gameview_assets.core.sfm import PoseOptions, register_images
    from gameview_assets.core.video import FrameSelection, extract_frames

    preset = get_preset(preset_name)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    try:
        if source.is_dir():
            images = source
        elif source.is_file():
            images = out / "images"
            selection = FrameSelection(
                fps=preset.extract_fps, max_size=preset.frame_max_size, max_frames=preset.max_frames
            )
            extract_frames([source], images, selection, cli_progress("frames"))
        else:
            return fail(f"{source} is neither a video file nor a folder of images")
        options = PoseOptions(
            max_image_size=preset.frame_max_size,
            min_registered_fraction=preset.min_registered_fraction,
        )
        result = register_images(images, work, options, cli_progress("poses"))
    except CaptureError as exc:
        return fail(str(exc))
    for name in ("cameras.bin", "images.bin", "points3D.bin"):
        shutil.copyfile(result.model_dir / name, out / name)
    print(
        f"registered {result.num_registered} of {result.num_images} frames, "
        f"{result.num_points} points, rung {result.rung}",
        file=sys.stderr,
    )
    print(f"model: {out}")
    return 0


def cli_progress(label: str):
    """A progress callback drawing a tqdm bar for one stage."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=label, unit="%")

    def update(fraction: float, message: str = "") -> None:
        bar.update(max(0, round(fraction * 100) - bar.n))
        bar.set_postfix_str(message[:50])
        if fraction >= 1.0:
            bar.close()

    return update


def sample(out: Path) -> int:
    """Render a synthetic orbit video with known cameras."""
    from gameview_assets.core.samples import render_orbit_video

    out.parent.mkdir(parents=True, exist_ok=True)
    cameras = render_orbit_video(out)
    print(f"sample: {out} ({len(cameras)} frames)")
    return 0


def serve() -> int:
    """`dagster dev` on these definitions, with the instance at `$DAGSTER_HOME`."""
    prepare_dagster_home(Settings.from_env())
    # Through this interpreter, so it works from `make serve` without an activated venv.
    command = [sys.executable, "-m", "dagster", "dev", "-m", "gameview_assets.definitions"]
    os.execv(sys.executable, command)
    return 0


def fail(reason: str) -> int:
    """Print a one-line reason and return a non-zero exit status."""
    print(f"error: {' '.join(reason.split())}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gameview", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("process", help="process videos end to end into a splat scene")
    run.add_argument("videos", nargs="+", type=Path)
    run.add_argument("--preset", choices=PRESET_NAMES, default="fast")
    run.add_argument("--production", help="production id (default: from the first video name)")
    pose = commands.add_parser("poses", help="camera poses only: a COLMAP model")
    pose.add_argument("input", type=Path, help="a video or a folder of images")
    pose.add_argument("--out", type=Path, required=True)
    pose.add_argument("--preset", choices=PRESET_NAMES, default="fast")
    make = commands.add_parser("sample", help="render a synthetic orbit video")
    make.add_argument("out", type=Path)
    commands.add_parser("serve", help="open the Dagster UI (dagster dev)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "process":
        return process(args.videos, args.preset, args.production)
    if args.command == "poses":
        return poses(args.input, args.out, args.preset)
    if args.command == "sample":
        return sample(args.out)
    return serve()


if __name__ == "__main__":
    sys.exit(main())
