"""Tell the studio app when a production's run ends: completed with results, or why it failed."""

from __future__ import annotations

import json

from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    get_dagster_logger,
    run_status_sensor,
)

from gameview_assets.core.callback_payload import RESULT_FILES, CallbackError
from gameview_assets.core.production import MANIFEST_NAME, Manifest
from gameview_assets.jobs import process_production_job
from gameview_assets.presets import PRESET_NAMES
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import StoreResource
from gameview_assets.resources.store import RESULTS_DIR, ProductionStore
from gameview_assets.run_outcome import failure_of_run

BUNDLE_ASSET = AssetKey("bundle")
PARTITION_TAG = "dagster/partition"


def manifest_callback_url(store: ProductionStore, production_id: str) -> str | None:
    """The manifest's callback URL; None (the default URL) when it has none or is unreadable."""
    try:
        text = store.read_text(f"{production_id}/{MANIFEST_NAME}")
        return Manifest.from_json(text, PRESET_NAMES).callback_url
    except Exception as exc:  # any backend's read error, or a manifest replaced by a bad one
        get_dagster_logger().warning(f"no callback URL from {production_id}'s manifest: {exc}")
        return None


def _production_id(context: RunStatusSensorContext) -> str | None:
    production_id = context.dagster_run.tags.get(PARTITION_TAG)
    if not production_id:
        context.log.warning(f"run {context.dagster_run.run_id} has no partition; no callback")
    return production_id


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[process_production_job],
    default_status=DefaultSensorStatus.RUNNING,
    description="Sends the `completed` callback with signed result URLs and metrics.",
)
def production_completed_sensor(
    context: RunStatusSensorContext, store: StoreResource, callbacks: StudioCallbacks
) -> None:
    run = context.dagster_run
    production_id = _production_id(context)
    if production_id is None:
        return
    if run.asset_selection and BUNDLE_ASSET not in run.asset_selection:
        context.log.info(f"run {run.run_id} did not publish results; no callback")
        return
    bucket = store.open()
    url = manifest_callback_url(bucket, production_id)
    prefix = f"{production_id}/{RESULTS_DIR}"
    bundle_key = f"{prefix}/{RESULT_FILES['bundle']}"
    try:
        metrics = json.loads(bucket.read_text(bundle_key)).get("metrics") or {}
        results = {}
        for name, file_name in RESULT_FILES.items():
            key = f"{prefix}/{file_name}"
            results[name] = {"key": key, "url": bucket.signed_url(key)}
    except Exception as exc:
        context.log.warning(f"results of {production_id} are incomplete: {exc}")
        callbacks.failed(
            production_id=production_id,
            run_id=run.run_id,
            error=CallbackError(
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
        metrics=metrics,
        url=url,
    )


@run_status_sensor(
    run_status=DagsterRunStatus.FAILURE,
    monitored_jobs=[process_production_job],
    default_status=DefaultSensorStatus.RUNNING,
    description="Sends the `failed` callback with the stage, code, message and hint.",
)
def production_failed_sensor(
    context: RunStatusSensorContext, store: StoreResource, callbacks: StudioCallbacks
) -> None:
    production_id = _production_id(context)
    if production_id is None:
        return
    run_id = context.dagster_run.run_id
    callbacks.failed(
        production_id=production_id,
        run_id=run_id,
        error=failure_of_run(context.instance, run_id),
        url=manifest_callback_url(store.open(), production_id),
    )


@run_status_sensor(
    run_status=DagsterRunStatus.CANCELED,
    monitored_jobs=[process_production_job],
    default_status=DefaultSensorStatus.RUNNING,
    description="Sends the `failed` callback when a run is canceled, so the app stops waiting.",
)
def production_canceled_sensor(
    context: RunStatusSensorContext, store: StoreResource, callbacks: StudioCallbacks
) -> None:
    production_id = _production_id(context)
    if production_id is None:
        return
    callbacks.failed(
        production_id=production_id,
        run_id=context.dagster_run.run_id,
        error=CallbackError(
            "run",
            "canceled",
            "processing was canceled by an operator",
            "upload production.json again to start a new run",
        ),
        url=manifest_callback_url(store.open(), production_id),
    )
