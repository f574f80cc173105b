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
from gameview_assets.presets import PRESET_NAMES, describe_presets, get_preset
from gameview_assets.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance

INSTANCE_YAML = Path(__file__).resolve().parent / "instance.yaml"
MANAGED_MARK = "# gameview:"


def prepare_dagster_home(settings: Settings) -> Path:
    """Point Dagster at `$DAGSTER_HOME`, with the project's instance config (`instance.yaml`)
    written there whenever it changed, so edits to it take effect. A `dagster.yaml` there
    that a person wrote (without our first line) is theirs: it is left alone, and said so."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    wanted = INSTANCE_YAML.read_text(encoding="utf-8")
    current = target.read_text(encoding="utf-8") if target.is_file() else None
    if current is None or (current != wanted and current.startswith(MANAGED_MARK)):
        target.write_text(wanted, encoding="utf-8")
    elif current != wanted:
        print(f"note: using your own {target} (not gameview's instance.yaml)", file=sys.stderr)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def new_production_id(video: Path) -> str:
    """A readable, unique id: the first video's name and the time."""
    stem = re.sub(r"[^a-z0-9_-]+", "-", video.stem.lower()).strip("-_")[:48] or "production"
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


def process(videos: list[Path], preset: str | None, production_id: str | None) -> int:
    """Materialize every asset of a new production's partition in the local Dagster instance.

    The videos are checked here first, as `source_videos` would check them, so input that
    would be refused leaves nothing behind: no production in the store, no partition.
    """
    problem = refused_input(videos)
    if problem:
        return fail(problem)
    try:
        production_id = validate_production_id(production_id or new_production_id(videos[0]))
    except InvalidProductionError as exc:
        return fail(f"{exc.message}: {exc.hint}")
    preset = preset or default_preset()
    settings = Settings.from_env()
    prepare_dagster_home(settings)

    from dagster import DagsterInstance, DagsterRunStatus

    from gameview_assets.definitions import build_definitions
    from gameview_assets.jobs import MANIFEST_VERSION_TAG, PRESET_TAG, PROCESS_JOB_NAME
    from gameview_assets.local_runs import run_production
    from gameview_assets.partitions import productions
    from gameview_assets.run_outcome import failure_of_run

    version = submit_production(settings, videos, preset, production_id)
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(productions.name, [production_id])
    job = build_definitions(settings).resolve_job_def(PROCESS_JOB_NAME)
    run_id = str(uuid.uuid4())
    print(f"production {production_id} ({preset}), run {run_id}", file=sys.stderr)
    done = threading.Event()
    watcher = threading.Thread(target=follow_progress, args=(instance, run_id, done), daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        status = run_production(
            instance,
            job,
            production_id,
            run_id,
            # The manifest version tells a running upload sensor this one is taken.
            tags={PRESET_TAG: preset, MANIFEST_VERSION_TAG: version or ""},
            # Failures come back as one line below; their traces stay in the run's logs.
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
    finally:
        done.set()
        watcher.join()
    if status != DagsterRunStatus.SUCCESS:
        error = failure_of_run(instance, run_id)
        print(f"details: run {run_id} (gameview serve, then Runs)", file=sys.stderr)
        return fail(f"{error.stage}: {error.message}. {error.hint}")
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(f"results: {result_location(settings, production_id)}")
    return 0


def refused_input(videos: list[Path]) -> str | None:
    """Why these files cannot be processed (missing, a folder, not a usable video), or None."""
    from gameview_assets.core.errors import CaptureError
    from gameview_assets.core.video import probe_video

    for video in videos:
        if video.is_dir():
            return (
                f"{video} is a folder, not a video: `gameview process` takes video files; "
                f"for a folder of images use `gameview poses {video} --out DIR`"
            )
        if not video.is_file():
            return f"no such video file: {video}"
        try:
            probe_video(video)
        except CaptureError as exc:
            return f"{exc.message}. {exc.hint}"
    return None


def default_preset() -> str:
    """`fast` where a CUDA GPU trains; `preview` on a CPU, where `fast` takes hours."""
    from gameview_assets.core.train.cpu import prepare_cpu_training

    prepare_cpu_training()  # torch loads next: see its docstring
    import torch

    return "fast" if torch.cuda.is_available() else "preview"


def result_location(settings: Settings, production_id: str) -> str:
    """Where the results of a production are, for people: a folder or a storage prefix."""
    import dagster as dg

    from gameview_assets.definitions import store_resource

    with dg.build_resources({"store": store_resource(settings)}) as resources:
        return f"{resources.store.store.describe()}/{ProductionKeys(production_id).results}"


def poses(source: Path, out: Path, preset_name: str) -> int:
    """Frame selection and the pose stage only: a COLMAP model in `out`, images as extracted,
    and in `out/views` the undistorted training views at the preset's training size, which
    `data.read_views` (and `benchmarks/gpu_check.py` on a machine without pycolmap) reads."""
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
    if result.undistorted_dir is not None:
        from gameview_assets.core.train.data import load_views, save_views

        undistorted = result.undistorted_dir
        views = load_views(undistorted / "sparse", undistorted / "images", preset.train_max_size)
        save_views(views, out / "views")
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


def serve(port: int) -> int:
    """`dagster dev` on these definitions, with the instance at `$DAGSTER_HOME`."""
    settings = Settings.from_env()
    problem = storage_problem(settings)
    if problem:
        return fail(problem)
    home = prepare_dagster_home(settings)
    # Through this interpreter, so it works from `make serve` without an activated venv.
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(write_workspace(home)),
               "-p", str(port)]  # fmt: skip
    default_stop_signals()
    os.execv(sys.executable, command)
    return 0


def default_stop_signals() -> None:
    """SIGINT and SIGTERM back to their defaults, for a process about to exec Dagster.

    A script's `command &` (and `setsid`, nohup, some supervisors) starts it with SIGINT
    ignored; an ignored signal stays ignored across exec, and Dagster then copies SIGINT's
    disposition onto SIGTERM (`setup_interrupt_handlers`), so nothing would stop it but
    SIGKILL, which leaves its own processes behind. With the defaults, Python turns SIGINT
    into KeyboardInterrupt, Dagster maps SIGTERM onto it, and it shuts its processes down."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def storage_problem(settings: Settings) -> str | None:
    """Why the Supabase store cannot serve (a refused key, a missing bucket), in one line;
    None for the local store or one that answers. Storage that does not answer yet is only
    a warning: the service's calls wait for it and retry."""
    if not settings.supabase_url:
        return None
    if not settings.supabase_key:
        return "SUPABASE_URL is set but SUPABASE_SERVICE_ROLE_KEY is not: set both"
    from gameview_assets.resources.store import StorageAccessError, StorageUnavailableError
    from gameview_assets.resources.supabase_store import SupabaseStore

    store = SupabaseStore(settings.supabase_url, settings.supabase_key, settings.bucket)
    try:
        store.check_access()
    except StorageAccessError as exc:
        return str(exc)
    except StorageUnavailableError as exc:
        print(f"warning: {exc.message}; starting anyway", file=sys.stderr)
    finally:
        store.close()
    return None


def serve_production(port: int) -> int:
    """The code server, daemon and webserver as separate processes on the PostgreSQL
    instance at `$DAGSTER_HOME` (deploy/dagster.yaml), until Ctrl-C or SIGTERM stops them."""
    from gameview_assets.service import (
        CODE_SERVER_DEFAULTS,
        Service,
        production_problem,
        run_service,
    )

    settings = Settings.from_env()
    home = settings.dagster_home
    problem = production_problem(home) or storage_problem(settings)
    if problem:
        return fail(problem)
    os.environ["DAGSTER_HOME"] = str(home)
    for name, default in CODE_SERVER_DEFAULTS.items():
        os.environ.setdefault(name, default)
    host, code_port = (os.environ[name] for name in CODE_SERVER_DEFAULTS)
    return run_service(Service(home, host, int(code_port), web_port=port))


def write_workspace(home: Path) -> Path:
    """The workspace `gameview serve` loads: these definitions under the code location name
    that `gameview process` tags its runs with."""
    from gameview_assets.jobs import CODE_LOCATION

    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: gameview_assets.definitions\n"
        f"      location_name: {CODE_LOCATION}\n",
        encoding="utf-8",
    )
    return workspace


def fail(reason: str) -> int:
    """Print a one-line reason and return a non-zero exit status."""
    print(f"error: {' '.join(reason.split())}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gameview", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "process",
        help="process videos end to end into a splat scene",
        description="Put the videos into the store as one production and process it end to "
        "end; prints `results: <where>` last.",
        epilog=f"presets (a 6 s orbit video):\n{describe_presets()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "videos", nargs="+", type=Path, help="video files of one place or object (MP4, MOV, …)"
    )
    run.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default=None,
        help="quality preset (default: fast with a CUDA GPU, preview without one)",
    )
    run.add_argument("--production", help="production id (default: from the first video name)")
    pose = commands.add_parser("poses", help="camera poses only: a COLMAP model")
    pose.add_argument("input", type=Path, help="a video or a folder of images")
    pose.add_argument("--out", type=Path, required=True, help="folder for the COLMAP model")
    pose.add_argument(
        "--preset", choices=PRESET_NAMES, default="fast", help="frame rate and size to use"
    )
    make = commands.add_parser("sample", help="render a synthetic orbit video")
    make.add_argument("out", type=Path, help="the .mp4 file to write")
    web = commands.add_parser(
        "serve",
        help="open the Dagster UI (dagster dev)",
        description="Runs until Ctrl-C or SIGTERM, which stop every process it started, "
        "however it was started (a terminal, a script's `&`, setsid, systemd). With Supabase "
        "(SUPABASE_URL), the key and bucket are checked first.",
    )
    web.add_argument(
        "--production",
        action="store_true",
        help="code server, daemon and webserver as separate processes on the PostgreSQL "
        "instance at $DAGSTER_HOME (README: Running in production)",
    )
    web.add_argument("--port", type=int, default=3000, help="webserver port")
    return parser


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gameview-assets")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "process":
        return process(args.videos, args.preset, args.production)
    if args.command == "poses":
        return poses(args.input, args.out, args.preset)
    if args.command == "sample":
        return sample(args.out)
    if args.production:
        return serve_production(args.port)
    return serve(args.port)


if __name__ == "__main__":
    sys.exit(main())
