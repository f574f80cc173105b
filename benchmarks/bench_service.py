"""The production service under load: N smoke productions dropped at once into the local
store, against the same productions run one after another, on the same service.

    PYTHONPATH=. python benchmarks/bench_service.py [--count 20]

It starts its own PostgreSQL server and `gameview serve --production` (deploy/dagster.yaml:
at most 4 runs at once, the `gpu` pool limited to 1), as tests/service do. Baseline: each
production dropped alone, the next once its run has ended; its figure is the sum of the
runs' own wall times (start to end), so the upload sensor's pickup delay (up to 30 s per
production) does not count against it. Then all N are dropped at once: wall time from the
drop to the last run's end, the most runs queued and in progress at once, the most `splat`
steps training at once (never above the pool's limit), and whether anything was lost (each
production: one successful run, complete results, one `completed` callback).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dagster as dg

from gameview_assets.core.samples import render_orbit_video
from gameview_assets_tests.callback_server import CallbackServer
from gameview_assets_tests.service.harness import (
    CALLBACK_SECRET,
    ServiceSetup,
    assert_results_match_bundle,
    callback_statuses,
    drop_production,
    overlaps,
    runs_of,
    service_setup,
    start_serve,
    step_span,
    stop,
    wait_until,
)
from gameview_assets_tests.service.postgres import postgres_server

TIMEOUT_S = 3600.0
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def finished_runs(instance: dg.DagsterInstance, ids: list[str]) -> list[dg.RunRecord]:
    records = []
    for production_id in ids:
        for run in runs_of(instance, production_id):
            if run.status in FINISHED:
                records.append(instance.get_run_record_by_id(run.run_id))
    return records


def sequential(setup: ServiceSetup, instance, video: Path, url: str, count: int) -> float:
    """Each production alone; the sum of its run's wall time."""
    total = 0.0
    for i in range(count):
        production_id = f"alone-{i:03d}"
        drop_production(setup.store, production_id, video, url)
        [record] = wait_until(lambda p=production_id: finished_runs(instance, [p]), TIMEOUT_S,
                              f"{production_id} finished", setup)  # fmt: skip
        total += record.end_time - record.start_time
        print(f"  {production_id}: {record.end_time - record.start_time:.1f} s", flush=True)
    return total


def concurrent(setup: ServiceSetup, instance, video: Path, url: str, count: int) -> dict:
    """All at once; wall time and what the queue and the pool did."""
    ids = [f"batch-{i:03d}" for i in range(count)]
    started = time.time()
    for production_id in ids:
        drop_production(setup.store, production_id, video, url)
    most_queued = most_running = 0
    while len(finished_runs(instance, ids)) < count:
        if time.time() - started > TIMEOUT_S:
            raise TimeoutError(setup.log_tails())
        statuses = [run.status for p in ids for run in runs_of(instance, p)]
        most_queued = max(most_queued, statuses.count(dg.DagsterRunStatus.QUEUED))
        most_running = max(most_running, statuses.count(dg.DagsterRunStatus.STARTED))
        time.sleep(1.0)
    records = finished_runs(instance, ids)
    spans = [step_span(instance, r.dagster_run.run_id, "splat") for r in records]
    return {
        "ids": ids,
        "wall": max(r.end_time for r in records) - started,
        "most_queued": most_queued,
        "most_running": most_running,
        "succeeded": sum(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records),
        "runs": len(records),
        "gpu_most": overlaps([s for s in spans if s is not None]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="productions (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as pg:
        root = Path(tmp)
        video = root / "orbit.mp4"
        render_orbit_video(video)
        setup = service_setup(root / "service", pg.create_database("bench_service"))
        with CallbackServer(secret=CALLBACK_SECRET) as app:
            serve = start_serve(setup)
            try:
                with setup.instance() as instance:
                    print(f"{args.count} smoke productions, one after another:", flush=True)
                    alone = sequential(setup, instance, video, app.url, args.count)
                    print(f"{args.count} smoke productions dropped at once ...", flush=True)
                    batch = concurrent(setup, instance, video, app.url, args.count)
                    ids = batch["ids"]
                    wait_until(
                        lambda: all("completed" in callback_statuses(app.received, p) for p in ids),
                        300, "every completed callback", setup,
                    )  # fmt: skip
            finally:
                stop(serve)
            completed = [callback_statuses(app.received, p).count("completed") for p in ids]
        for production_id in ids:
            assert_results_match_bundle(setup.store / production_id / "results")
    print(f"one after another (sum of run times): {alone:8.1f} s")
    print(f"dropped at once (drop to last end):  {batch['wall']:8.1f} s "
          f"({batch['wall'] / alone:.2f}x)")  # fmt: skip
    print(f"runs: {batch['runs']} finished, {batch['succeeded']} succeeded; at most "
          f"{batch['most_queued']} queued and {batch['most_running']} in progress at once")
    print(f"splat steps training at once, at most: {batch['gpu_most']} (gpu pool limit 1)")
    print(f"completed callbacks per production: {sorted(set(completed))}; results complete: all")


if __name__ == "__main__":
    main()
