"""Stages that skip unchanged work: the Dagster side of `core.stage_cache`.

A stage builds its `StageWork` (what it reads, what it makes) and returns
`reuse_or_begin(...)` when that is not None; else it does its work and returns
`finished(...)` once every output is written. A reused stage re-emits what it reported when
it did the work (metadata and its passed quality gates), with `cached: true`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg

from gameview_assets.assets.progress import StageReporter
from gameview_assets.core.stage_cache import StageWork, inputs_digest
from gameview_assets.core.workdir import ProductionPaths
from gameview_assets.jobs import FRESH_TAG


def stage_work(
    context: dg.AssetExecutionContext,
    paths: ProductionPaths,
    settings: object,
    *,
    records: Sequence[Path] = (),
    outputs: Sequence[Path],
) -> StageWork:
    """The running stage's work: `settings` and `records` are what it reads besides its
    upstream stages' outputs (the asset's deps, covered by their own digests); `outputs`
    what must still exist for it to be reused."""
    stage = context.asset_key.to_user_string()
    deps = context.assets_def.asset_deps[context.asset_key]
    upstream = [paths.stage_done(key.to_user_string()) for key in sorted(deps)]
    digest = inputs_digest(stage, settings, records, upstream)
    return StageWork(stage, paths.stage_done(stage), digest, tuple(outputs))


def reuse_or_begin(
    work: StageWork,
    paths: ProductionPaths,
    report: StageReporter,
    now: Mapping[str, object] | None = None,
) -> dg.MaterializeResult | None:
    """What the stage reported when it last did this same work, marked `cached` (`now`:
    metadata about this run that replaces the stored). None when it must run (inputs
    changed, an output is gone, or the run is tagged fresh): its work has then begun, and
    nothing is reusable until `finished`."""
    context = report.context
    done = None if context.run.tags.get(FRESH_TAG, "").lower() == "true" else work.reusable()
    if done is None:
        work.begin()
        return None
    stored = dg.deserialize_value(done.report, dict)
    context.log.info(f"{work.stage}: inputs unchanged since run {done.run_id}; reusing its work")
    report.finish(paths)
    return dg.MaterializeResult(
        metadata={
            **stored["metadata"],
            **(now or {}),
            "cached": True,
            "reused": work.describe_outputs(paths.root),
            "reused_from_run": done.run_id,
        },
        check_results=[dg.AssetCheckResult(**check) for check in stored["checks"]],
    )


def finished(
    context: dg.AssetExecutionContext,
    work: StageWork,
    metadata: Mapping[str, object],
    check_results: Sequence[dg.AssetCheckResult] = (),
) -> dg.MaterializeResult:
    """Record the stage's work as done (its outputs are all written) and report it, `cached:
    false`. Work whose quality gate failed is not recorded: a retry redoes it (the gate's
    hint may be a processing fault's, which a second attempt can fix)."""
    checks = [
        {
            "check_name": check.check_name,
            "passed": check.passed,
            "metadata": dict(check.metadata),
            "description": check.description,
        }
        for check in check_results
    ]
    if all(check.passed for check in check_results):
        stored = dg.serialize_value({"metadata": dict(metadata), "checks": checks})
        work.finish(context.run.run_id, stored)
    return dg.MaterializeResult(
        metadata={**metadata, "cached": False}, check_results=list(check_results)
    )
