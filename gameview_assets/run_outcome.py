"""Why a production's run failed, read back from its events in words a person can act on."""

from __future__ import annotations

import os

import dagster as dg

from gameview_assets.core.errors import DISK_FULL_ERRNOS, CaptureError, FailureReason, disk_full


def failure_of_run(instance: dg.DagsterInstance, run_id: str) -> FailureReason:
    """The first failed quality gate or stage failure of the run, else a generic internal error.

    Stages raise `Failure` with a `FailureReason` as metadata; quality gates are blocking
    asset checks carrying the same fields, which fail the step with a generic error of their own.
    """
    generic: FailureReason | None = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            reason = FailureReason.from_metadata(evaluation.metadata)
            if not evaluation.passed and reason is not None:
                return reason
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            metadata = data.user_failure_data.metadata if data.user_failure_data else {}
            reason = FailureReason.from_metadata(metadata)
            if reason is not None:
                return reason
            if generic is None:
                error = data.error
                while error is not None and error.cause is not None:
                    error = error.cause
                message = error.message.strip().splitlines()[-1] if error else "failed"
                stage = event.step_key or "unknown"
                full = _disk_full(message)
                generic = FailureReason.of_capture(stage, full) if full else FailureReason(
                    stage=stage,
                    code="internal_error",
                    message=message,
                    hint="this is a processing fault, not the capture's: retry the production, "
                    "and report it if it fails again",
                )
    return generic or FailureReason(
        "unknown", "internal_error", "the run failed before any stage ran", "retry the production"
    )


def _disk_full(message: str) -> CaptureError | None:
    """A full disk wherever a stage wrote outside `failures_reported` (COLMAP's files, the
    exports): the error's text is all that is left of it here (`OSError: [Errno 28] ...`)."""
    for number in DISK_FULL_ERRNOS:
        if f"[Errno {number}]" in message:
            return disk_full(OSError(number, os.strerror(number)))
    return None
