"""Stage progress as structured events: an `AssetObservation` per step of progress (the UI
lists them, `gameview process` draws its bar from them) and `processing` callbacks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import dagster as dg

from gameview_assets.core.workdir import ProductionPaths
from gameview_assets.resources.callbacks import StudioCallbacks

STAGE_SPANS: dict[str, tuple[float, float]] = {
    "source_videos": (0.0, 0.01),
    "frames": (0.01, 0.03),
    "sparse_model": (0.03, 0.15),
    "splat": (0.15, 0.99),
    "bundle": (0.99, 1.0),
}
"""The share of the whole run each stage covers: its share of the wall time measured by
`benchmarks/bench_pipeline.py` (preview preset: 0.5, 2, 14, 110 and 1 s), so the bar moves
at a steady pace; training dominates every preset more."""
PROGRESS = "progress"
"""Metadata key of a progress observation: the whole run's fraction done, 0..1."""
EVENT_STEP = 0.05
"""A stage records an observation each time its own progress moves this much."""

@dataclass
class StageReporter:
    """Turns a stage's own 0..1 progress into progress observations and `processing`
    callbacks; `finish` records the stage's wall time with the production's timings."""

    context: dg.AssetExecutionContext
    callbacks: StudioCallbacks
    stage: str
    callback_url: str | None
    started: float = field(default_factory=time.perf_counter)
    _last_recorded: float = -1.0

    def __call__(self, fraction: float, message: str = "") -> None:
        start, end = STAGE_SPANS[self.stage]
        fraction = min(max(fraction, 0.0), 1.0)
        overall = start + (end - start) * fraction
        if fraction >= 1.0 or fraction - self._last_recorded >= EVENT_STEP:
            self._last_recorded = fraction
            self.context.log_event(
                dg.AssetObservation(
                    asset_key=self.context.asset_key,
                    partition=self.context.partition_key,
                    metadata={
                        PROGRESS: round(overall, 4),
                        "stage_progress": round(fraction, 4),
                        "status": message or f"{fraction:.0%}",
                    },
                )
            )
        self.callbacks.processing(
            production_id=self.context.partition_key,
            run_id=self.context.run.run_id,
            stage=self.stage,
            progress=overall,
            url=self.callback_url,
        )

    def finish(self, paths: ProductionPaths) -> dict[str, float]:
        """Record this stage's wall time with the run's timings and return them all."""
        self(1.0, "done")
        timings = paths.timings.read() if paths.timings.exists() else {}
        timings[self.stage] = round(time.perf_counter() - self.started, 3)
        paths.timings.write(timings)
        return timings


@dataclass(frozen=True)
class ProgressUpdate:
    """One progress observation read back: the whole run's fraction, its stage and status."""

    fraction: float
    stage: str
    status: str


def progress_since(
    instance: dg.DagsterInstance, run_id: str, cursor: str | None
) -> tuple[list[ProgressUpdate], str, bool]:
    """The run's progress observations after `cursor` (None: from the start), the cursor to
    pass next time, and whether more are waiting; a poll fetches only new events."""
    page = instance.get_records_for_run(
        run_id, cursor=cursor, of_type=dg.DagsterEventType.ASSET_OBSERVATION
    )
    updates = []
    for record in page.records:
        observation = record.event_log_entry.asset_observation
        if observation is None or PROGRESS not in observation.metadata:
            continue
        metadata = observation.metadata
        updates.append(
            ProgressUpdate(
                fraction=float(metadata[PROGRESS].value),
                stage=observation.asset_key.to_user_string(),
                status=str(metadata["status"].value),
            )
        )
    return updates, page.cursor, page.has_more
