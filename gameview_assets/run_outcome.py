"""Why a production's run failed, read back from its events in words a person can act on."""

from __future__ import annotations

from dagster import DagsterEventType, DagsterInstance

from gameview_assets.core.callback_payload import CallbackError

ERROR_FIELDS = ("stage", "code", "message", "hint")


def _text(value: object) -> str:
    return str(getattr(value, "value", value))


def failure_of_run(instance: DagsterInstance, run_id: str) -> CallbackError:
    """The first failed quality gate or stage failure of the run, else a generic internal error.

    Stages raise `Failure` with stage/code/message/hint metadata; quality gates are blocking
    asset checks carrying the same fields, which fail the step with a generic error of their own.
    """
    generic: CallbackError | None = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            metadata = evaluation.metadata
            if not evaluation.passed and all(key in metadata for key in ERROR_FIELDS):
                return CallbackError(*(_text(metadata[key]) for key in ERROR_FIELDS))
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            metadata = data.user_failure_data.metadata if data.user_failure_data else {}
            if all(key in metadata for key in ERROR_FIELDS):
                return CallbackError(*(_text(metadata[key]) for key in ERROR_FIELDS))
            if generic is None:
                error = data.error
                while error is not None and error.cause is not None:
                    error = error.cause
                message = error.message.strip().splitlines()[-1] if error else "failed"
                generic = CallbackError(
                    stage=event.step_key or "unknown",
                    code="internal_error",
                    message=message,
                    hint="this is a processing fault, not the capture's: retry the production, "
                    "and report it if it fails again",
                )
    return generic or CallbackError(
        "unknown", "internal_error", "the run failed before any stage ran", "retry the production"
    )
