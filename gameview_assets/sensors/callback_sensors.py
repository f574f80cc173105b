"""Tell the studio app when a production's run ends: completed with results, or why it failed.

The callback URL is the one the run resolved (`run.json`, written by `source_videos`), not
the live manifest's: a manifest rewritten since must not redirect this run's callback.
"""

import json

import dagster as dg

from gameview_assets.core.errors import FailureReason
from gameview_assets.core.production import RESULT_FILES, ProductionKeys
from gameview_assets.jobs import PARTITION_TAG, WILL_RETRY_TAG, process_production_job
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import StoreResource, WorkdirResource
from gameview_assets.run_outcome import failure_of_run

BUNDLE_ASSET = dg.AssetKey("bundle")


def run_callback_url(workdir: WorkdirResource, production_id: str) -> str | None:
    """The run's callback URL; None (the default URL) when the run never resolved its
    manifest (it failed first) or its record cannot be read."""
    try:
        return workdir.production(production_id).run.read().callback_url
    except Exception as exc:  # a missing, half-written or foreign record: use the default
        dg.get_dagster_logger().warning(f"no callback URL recorded for {production_id}: {exc}")
        return None


def _production_id(context: dg.RunStatusSensorContext) -> str | None:
    production_id = context.dagster_run.tags.get(PARTITION_TAG)
    if not production_id:
        context.log.warning(f"run {context.dagster_run.run_id} has no partition; no callback")
    return production_id


def _send_failed(
    context: dg.RunStatusSensorContext,
    workdir: WorkdirResource,
    callbacks: StudioCallbacks,
    error: FailureReason,
) -> None:
    production_id = _production_id(context)
    if production_id is not None:
        callbacks.failed(
            production_id=production_id,
            run_id=context.dagster_run.run_id,
            error=error,
            url=run_callback_url(workdir, production_id),
        )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[process_production_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends the `completed` callback with signed result URLs and metrics.",
)
def production_completed_sensor(
    context: dg.RunStatusSensorContext,
    store: StoreResource,
    workdir: WorkdirResource,
    callbacks: StudioCallbacks,
) -> None:
    run = context.dagster_run
    production_id = _production_id(context)
    if production_id is None:
        return
    if run.asset_selection and BUNDLE_ASSET not in run.asset_selection:
        context.log.info(f"run {run.run_id} did not publish results; no callback")
        return
    bucket = store.store
    url = run_callback_url(workdir, production_id)
    keys = ProductionKeys(production_id)
    try:
        metrics = json.loads(bucket.read_text(keys.result(RESULT_FILES["bundle"])))
        results = {}
        for name, file_name in RESULT_FILES.items():
            key = keys.result(file_name)
            results[name] = {"key": key, "url": bucket.signed_url(key)}
    except Exception as exc:
        context.log.warning(f"results of {production_id} are incomplete: {exc}")
        callbacks.failed(
            production_id=production_id,
            run_id=run.run_id,
            error=FailureReason(
                "bundle",
                "results_missing",
                f"the run succeeded but its results could not be read ({exc})",
                "run the production again; if it persists, an operator should check storage",
            ),
            url=url,
        )
        return
    callbacks.completed(
        production_id=production_id,
        run_id=run.run_id,
        results=results,
        metrics=metrics.get("metrics") or {},
        url=url,
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.FAILURE,
    monitored_jobs=[process_production_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends the `failed` callback with the stage, code, message and hint.",
)
def production_failed_sensor(
    context: dg.RunStatusSensorContext, workdir: WorkdirResource, callbacks: StudioCallbacks
) -> None:
    """A run that run retries will re-execute (its worker died) is not the production's
    outcome: its retry's is, so the app hears nothing of it."""
    run = context.dagster_run
    if run.tags.get(WILL_RETRY_TAG) == "true":
        context.log.info(f"run {run.run_id} failed and will be retried; no callback")
        return
    error = failure_of_run(context.instance, run.run_id)
    _send_failed(context, workdir, callbacks, error)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    monitored_jobs=[process_production_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends the `failed` callback when a run is canceled, so the app stops waiting.",
)
def production_canceled_sensor(
    context: dg.RunStatusSensorContext, workdir: WorkdirResource, callbacks: StudioCallbacks
) -> None:
    error = FailureReason(
        "run",
        "canceled",
        "processing was canceled by an operator",
        "upload production.json again to start a new run",
    )
    _send_failed(context, workdir, callbacks, error)


OUTBOX_BUDGET_S = 20.0


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends the completed/failed callbacks the app could not take at once.",
)
def callback_outbox_sensor(
    context: dg.SensorEvaluationContext, callbacks: StudioCallbacks
) -> dg.SkipReason:
    counts = callbacks.flush_outbox(budget_s=OUTBOX_BUDGET_S)
    summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "empty"
    if counts["kept"] or counts["refused"]:
        context.log.warning(f"callback outbox: {summary}")
    return dg.SkipReason(f"callback outbox: {summary}")
