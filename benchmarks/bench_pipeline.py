"""Per-stage wall time and peak memory of the whole pipeline on the kitchen video (preview).

Each stage is materialized on its own (in order, in one Dagster test instance) while a
sampler thread records the process's peak resident memory during that stage.

    python benchmarks/bench_pipeline.py [--preset preview] [--video PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
STAGES = ["source_videos", "frames", "sparse_model", "splat", "bundle"]


class PeakMemory:
    """Samples this process's RSS every 50 ms; `peak_mb` is the maximum since `start`."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        while not self.stop_event.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self.peak = self.process.memory_info().rss
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    datasets = Path(os.environ.get("GAMEVIEW_DATASETS", REPO.parent / "shared" / "datasets"))
    parser.add_argument("--video", type=Path, default=datasets / "kitchen" / "kitchen.mp4")
    parser.add_argument("--preset", default="preview")
    args = parser.parse_args()
    if not args.video.is_file():
        print(f"no video at {args.video}; set GAMEVIEW_DATASETS or pass --video", file=sys.stderr)
        return 1

    root = Path(tempfile.mkdtemp(prefix="gameview-bench-"))
    os.environ.update(
        GAMEVIEW_STORE=str(root / "store"),
        GAMEVIEW_WORKDIR=str(root / "work"),
        DAGSTER_HOME=str(root / "dagster"),
    )
    from dagster import AssetKey, DagsterInstance

    from gameview_assets.cli import prepare_dagster_home, submit_production
    from gameview_assets.definitions import build_definitions
    from gameview_assets.jobs import PROCESS_JOB_NAME
    from gameview_assets.partitions import productions
    from gameview_assets.settings import Settings

    settings = Settings.from_env()
    prepare_dagster_home(settings)
    submit_production(settings, [args.video], args.preset, "bench")
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(productions.name, ["bench"])
    job = build_definitions(settings).resolve_job_def(PROCESS_JOB_NAME)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    print(f"{args.video.name}, preset {args.preset}, {os.cpu_count()} cores")
    print(f"{'stage':<14}{'wall s':>9}{'peak MB':>10}")
    total = 0.0
    for stage in STAGES:
        started = time.perf_counter()
        with PeakMemory() as memory:
            result = job.execute_in_process(
                instance=instance,
                partition_key="bench",
                asset_selection=[AssetKey(stage)],
                run_config=quiet,
                raise_on_error=False,
            )
        seconds = time.perf_counter() - started
        total += seconds
        print(f"{stage:<14}{seconds:>9.1f}{memory.peak_mb:>10.0f}", flush=True)
        if not result.success:
            print(f"{stage} failed; see {settings.dagster_home}", file=sys.stderr)
            return 1
    print(f"{'total':<14}{total:>9.1f}")
    metrics = (settings.store_root / "bench" / "results" / "bundle.json").read_text()
    print(f"bundle.json: {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
