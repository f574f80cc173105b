"""Tell the studio app when a production's run ends: completed with results, or why it failed."""

from __future__ import annotations

import json
from typing import Any

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
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

BUNDLE_ASSET = AssetKey("bundle")
PARTITION_TAG = "dagster/partition"
MAX_MESSAGE_CHARS = 1000
INTERNAL_ERROR_CODE = "internal_error"


def manifest_callback_url(store: ProductionStore, production_id: str) -> str | None:
    """The manifest's callback URL; None (the default URL) when it has none or is unreadable."""
    try:
        text = store.read_text(f"{production_id}/{MANIFEST_NAME}")
        return Manifest.from_json(text, PRESET_NAMES).callback_url
    except Exception as exc:  # any backend's read error, or a manifest replaced by a bad one
        get_dagster_logger().warning(f"no callback URL from {production_id}'s manifest: {exc}")
        return None


def _metadata_text(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    value = getattr(value, "value", value)
    return str(value) if value not in (None, "") else None


def _innermost_message(error: Any) -> str:
    """The user's exception message, not Dagster's 'Error occurred while executing' wrapper."""
    while error is not None and error.cause is not None:
        error = error.cause
    return (error.message if error is not None else "").strip()


def failure_reason(instance: DagsterInstance, run_id: str, fallback_message: str) -> CallbackError:
    """The first failed step's `Failure` metadata (stage, code, hint), else an internal error."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = record.dagster_event
        if event is None or event.step_failure_data is None:
            continue
        step = event.step_key or "unknown"
        data = event.step_failure_data
        user = data.user_failure_data
        if user is not None:
            metadata = dict(user.metadata or {})
            code = _metadata_text(metadata, "code")
            if code:
                message = _metadata_text(metadata, "message") or user.description or code
                return CallbackError(
                    stage=_metadata_text(metadata, "stage") or step,
                    code=code,
                    message=message[:MAX_MESSAGE_CHARS],
                    hint=_metadata_text(metadata, "hint") or "",
                )
        message = _innermost_message(data.error) or (user.description if user else "") or ""
        return CallbackError(
            stage=step,
            code=INTERNAL_ERROR_CODE,
            message=(message or fallback_message)[:MAX_MESSAGE_CHARS],
            hint=f"an unexpected error in the pipeline; an operator can see it in Dagster, "
            f"run {run_id}. Retrying may help.",
        )
    return CallbackError(
        stage="run",
        code=INTERNAL_ERROR_CODE,
        message=fallback_message[:MAX_MESSAGE_CHARS],
        hint=f"the run failed before any stage did; an operator can see why in Dagster, "
        f"run {run_id}",
    )


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
    if run.asset_selection is not None and BUNDLE_ASSET not in run.asset_selection:
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
    fallback = (context.dagster_event.message or "the run failed").strip()
    callbacks.failed(
        production_id=production_id,
        run_id=run_id,
        error=failure_reason(context.instance, run_id, fallback),
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
