"""Failures a person can act on: stage failures and failed quality gates both carry a
`FailureReason` in their metadata, which the `failed` callback passes to the studio app."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dagster as dg

from gameview_assets.core.errors import CaptureError, FailureReason, disk_full
from gameview_assets.core.production import InvalidProductionError
from gameview_assets.core.records import MissingRecordError
from gameview_assets.partitions import productions


def stage_failure(reason: FailureReason, allow_retries: bool = False) -> dg.Failure:
    """A failure with its reason; a step's retry policy (see `retries`) applies only where
    trying again can help (storage unavailable), never to bad input."""
    return dg.Failure(
        description=f"{reason.message}. {reason.hint}",
        metadata=reason.as_metadata(),
        allow_retries=allow_retries,
    )


@contextmanager
def failures_reported(stage: str) -> Iterator[None]:
    """Turn the engine's errors about the input, and a full disk, into a stage failure with
    its reason."""
    try:
        yield
    except CaptureError as exc:
        raise stage_failure(FailureReason.of_capture(stage, exc), exc.retryable) from exc
    except InvalidProductionError as exc:
        reason = FailureReason(stage, "invalid_production", exc.message, exc.hint)
        raise stage_failure(reason) from exc
    except MissingRecordError as exc:
        reason = FailureReason(
            stage,
            "missing_upstream",
            str(exc),
            "materialize the upstream assets of this production first",
        )
        raise stage_failure(reason) from exc
    except OSError as exc:
        full = disk_full(exc)
        if full is None:
            raise
        raise stage_failure(FailureReason.of_capture(stage, full)) from exc


def gate_spec(check_name: str, stage: str) -> dg.AssetCheckSpec:
    """A blocking quality gate, evaluated per production: one production's failed gate then
    shows on its own partition, not as every asset's status. Partitioned checks are a preview
    feature of Dagster 1.13; its warning is expected here and kept off the terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(check_name, asset=stage, blocking=True, partitions_def=productions)


def quality_gate(
    check_name: str,
    description: str,
    metadata: Mapping[str, object],
    failure: FailureReason | None,
) -> dg.AssetCheckResult:
    """A blocking check's result: passed without a reason; failed with the reason in its
    metadata and description, so the run's `failed` callback says what to do."""
    if failure is None:
        return dg.AssetCheckResult(
            check_name=check_name, passed=True, metadata=dict(metadata), description=description
        )
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=False,
        metadata={**metadata, **failure.as_metadata()},
        description=f"{failure.message}. {failure.hint}",
    )
