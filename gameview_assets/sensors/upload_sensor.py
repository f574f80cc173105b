"""Start a run for every production whose manifest arrived or changed since the last tick."""

from __future__ import annotations

import json

import dagster as dg

from gameview_assets.core.errors import FailureReason
from gameview_assets.core.production import InvalidProductionError, Manifest, ProductionKeys
from gameview_assets.jobs import (
    MANIFEST_VERSION_TAG,
    PARTITION_TAG,
    PRESET_TAG,
    process_production_job,
)
from gameview_assets.partitions import productions
from gameview_assets.presets import PRESET_NAMES
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import StoreResource
from gameview_assets.resources.store import ManifestRef

INVALID_MANIFEST_CODE = "invalid_manifest"


def parse_cursor(cursor: str | None) -> dict[str, str]:
    """The cursor is `{production_id: manifest_version}` for every manifest seen last tick."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def dump_cursor(seen: dict[str, str]) -> str:
    return json.dumps(seen, separators=(",", ":"), sort_keys=True)


def _callback_url_of(text: str) -> str | None:
    """The callback URL of a manifest that failed validation, if it has a usable one."""
    try:
        url = json.loads(text).get("callback_url")
    except (ValueError, AttributeError):
        return None
    return url if isinstance(url, str) else None


def has_run(instance: dg.DagsterInstance, ref: ManifestRef) -> bool:
    """Whether a run for this manifest version exists already, such as one that
    `gameview process` started in-process (Dagster's run keys only cover the sensor's own)."""
    tags = {PARTITION_TAG: ref.production_id, MANIFEST_VERSION_TAG: ref.version}
    return bool(instance.get_run_records(dg.RunsFilter(tags=tags), limit=1))


@dg.sensor(
    job=process_production_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts a run when a production's manifest arrives or changes",
)
def upload_sensor(
    context: dg.SensorEvaluationContext, store: StoreResource, callbacks: StudioCallbacks
) -> dg.SensorResult:
    """One listing per tick; only new or changed manifests are read.

    The cursor holds only productions whose manifest exists now (deleted ones drop out), and
    the run key `<id>:<version>` makes Dagster refuse a second run for the same manifest.
    A manifest that cannot be read is left out of the cursor so the next tick tries again;
    an invalid one is recorded, so it is reported once, not every tick.
    """
    bucket = store.store
    previous = parse_cursor(context.cursor)
    seen: dict[str, str] = {}
    run_requests: list[dg.RunRequest] = []
    for ref in bucket.list_manifests():
        if previous.get(ref.production_id) == ref.version:
            seen[ref.production_id] = ref.version
            continue
        key = ProductionKeys(ref.production_id).manifest
        try:
            text = bucket.read_text(key)
        except Exception as exc:
            context.log.warning(f"could not read {key}, will retry next tick: {exc}")
            continue
        seen[ref.production_id] = ref.version
        if has_run(context.instance, ref):
            continue
        try:
            manifest = Manifest.from_json(text, PRESET_NAMES)
        except InvalidProductionError as exc:
            context.log.warning(f"skipping {ref.production_id}: {exc.message} ({exc.hint})")
            callbacks.failed(
                production_id=ref.production_id,
                run_id=None,
                error=FailureReason("manifest", INVALID_MANIFEST_CODE, exc.message, exc.hint),
                url=_callback_url_of(text),
            )
            continue
        run_requests.append(
            dg.RunRequest(
                run_key=f"{ref.production_id}:{ref.version}",
                partition_key=ref.production_id,
                tags={MANIFEST_VERSION_TAG: ref.version, PRESET_TAG: manifest.preset},
            )
        )
    known = set(context.instance.get_dynamic_partitions(productions.name))
    new_ids = sorted({r.partition_key for r in run_requests if r.partition_key not in known})
    if run_requests:
        context.log.info(f"{len(run_requests)} run(s) requested, {len(new_ids)} new production(s)")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[productions.build_add_request(new_ids)] if new_ids else [],
        cursor=dump_cursor(seen),
    )
