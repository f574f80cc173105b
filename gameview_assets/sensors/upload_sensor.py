"""Start a run for every production whose manifest arrived or changed since the last tick.

With the project's database (`SUPABASE_DB_URL`), a tick asks `storage.objects` for the
manifests written since its cursor (a timestamp and an id), at most `DB_ROWS_PER_TICK`:
its cost follows the new uploads, not the productions ever made (resources/storage_db.py).

Without it, a tick stays inside Dagster's 60 s sensor timeout whatever the number of
productions: it lists the production folders (one paged listing), then checks manifests in
id order from where the last tick stopped. Either way a tick stops after
`MAX_RUNS_PER_TICK` runs or reports, or after `TICK_BUDGET_S`; the next goes on from there.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_right
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

import dagster as dg

from gameview_assets.core.errors import FailureReason
from gameview_assets.core.production import (
    MANIFEST_NAME,
    InvalidProductionError,
    Manifest,
    is_production_id,
    manifest_key,
    validate_production_id,
)
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
from gameview_assets.resources.storage_db import ChangeCursor, StorageDatabase
from gameview_assets.resources.store import (
    ManifestRef,
    ProductionStore,
    misnamed_folders,
    production_ids,
)

INVALID_MANIFEST_CODE = "invalid_manifest"
INVALID_ID_CODE = "invalid_production_id"
REFUSED_URL_CODE = "callback_url_refused"
MAX_RUNS_PER_TICK = 50
"""Runs requested (and invalid manifests reported) per tick, at most."""
TICK_BUDGET_S = 20.0
"""A tick stops checking manifests after this long (a third of the 60 s sensor timeout)."""
DB_ROWS_PER_TICK = 200
"""Manifest rows one database tick asks for, at most."""
FETCH_WORKERS = 8
"""Manifests a database tick reads (and looks up runs for) at once."""
MAX_RETRIES_KEPT = 100
"""Productions whose manifest could not be read, kept in a database cursor to try again;
with more waiting, the cursor stops moving until storage answers again."""
clock = time.monotonic


@dataclass
class UploadCursor:
    """`seen`: `{production_id: manifest_version}` of every manifest handled; `after`: the
    last production checked, where the next tick goes on."""

    seen: dict[str, str] = field(default_factory=dict)
    after: str = ""

    @classmethod
    def parse(cls, cursor: str | None) -> UploadCursor:
        """A garbled cursor starts over; the old plain `{id: version}` form is read too."""
        try:
            data = json.loads(cursor) if cursor else {}
        except json.JSONDecodeError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        seen = data.get("seen") if "seen" in data else data
        after = data.get("after") if "seen" in data else ""
        if not isinstance(seen, dict):
            return cls()
        return cls({str(k): str(v) for k, v in seen.items()}, str(after or ""))

    def dump(self) -> str:
        return json.dumps(
            {"after": self.after, "seen": self.seen}, separators=(",", ":"), sort_keys=True
        )


@dataclass
class DatabaseCursor:
    """`db`: the last manifest row handled; `retry`: productions whose manifest could not be
    read then, tried again first. Bounded: two fields and at most `MAX_RETRIES_KEPT` ids."""

    db: ChangeCursor = field(default_factory=ChangeCursor)
    retry: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, cursor: str | None) -> DatabaseCursor:
        """A listing tick's cursor, or a garbled one, starts from the first manifest."""
        try:
            data = json.loads(cursor) if cursor else {}
        except json.JSONDecodeError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        retry = data.get("retry") if isinstance(data.get("retry"), list) else []
        return cls(ChangeCursor.parse(data.get("db")), [str(name) for name in retry])

    def dump(self) -> str:
        return json.dumps({"db": self.db.as_json(), "retry": self.retry}, separators=(",", ":"))


def in_turn(ids: list[str], after: str) -> list[str]:
    """The sorted ids, starting after `after` and wrapping around."""
    start = bisect_right(ids, after) if after else 0
    return ids[start:] + ids[:start]


def _report_url(callbacks: StudioCallbacks, text: str) -> str | None:
    """Where to report a manifest that cannot run: its own callback URL if it has one that
    may receive callbacks, else None (the default URL)."""
    try:
        url = json.loads(text).get("callback_url")
    except (ValueError, AttributeError):
        return None
    return url if isinstance(url, str) and callbacks.refusal(url) is None else None


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
    """One listing per tick; only new or changed manifests are read, a bounded number.

    The cursor holds only productions whose manifest exists (deleted ones drop out), and
    the run key `<id>:<version>` makes Dagster refuse a second run for the same manifest.
    A manifest that cannot be read is left out of the cursor so a later tick tries again;
    an invalid one (or one in a folder whose name cannot be an id) is recorded, so it is
    reported once per version, not every tick. Reports never wait: a callback that cannot
    be delivered at once is kept in the outbox and sent later.
    """
    bucket = store.store
    database = store.database
    if database is not None:
        return _database_tick(context, bucket, database, callbacks)
    cursor = UploadCursor.parse(context.cursor)
    folders = bucket.list_folders()
    misnamed = set(misnamed_folders(folders))
    names = sorted({*production_ids(folders), *misnamed})
    present = set(names)
    seen = {k: v for k, v in cursor.seen.items() if k in present}
    deadline = clock() + TICK_BUDGET_S
    run_requests: list[dg.RunRequest] = []
    handled = 0
    after = cursor.after
    for name, version in bucket.manifest_versions(in_turn(names, cursor.after)):
        after = name
        if version is None:
            seen.pop(name, None)
        elif seen.get(name) != version:
            ref = ManifestRef(name, version)
            fetched = _fetch(context, bucket, ref)
            request, acted = _handle_folder(context, callbacks, ref, seen, fetched)
            handled += acted
            if request is not None:
                run_requests.append(request)
        if handled >= MAX_RUNS_PER_TICK or clock() >= deadline:
            break
    return _result(context, run_requests, UploadCursor(seen, after).dump())


def _database_tick(
    context: dg.SensorEvaluationContext,
    bucket: ProductionStore,
    database: StorageDatabase,
    callbacks: StudioCallbacks,
) -> dg.SensorResult:
    """The manifests written since the cursor, from the database, oldest first; each is then
    checked by its exact key in storage (its version, its text) as the listing path does.
    The cursor moves past each row handled; a manifest that cannot be read is kept to retry
    rather than holding back the ones after it."""
    cursor = DatabaseCursor.parse(context.cursor)
    deadline = clock() + TICK_BUDGET_S
    run_requests: list[dg.RunRequest] = []
    handled = 0
    changes = database.changed_manifests(cursor.db, DB_ROWS_PER_TICK)
    rows: list[tuple[str, ChangeCursor | None]] = [(c.folder, c.cursor) for c in changes]
    written = {folder for folder, _ in rows}
    retry = [name for name in cursor.retry if name not in written]  # its row checks it again
    folders = [(name, None) for name in retry] + rows
    position = cursor.db
    for folder, after, ref, fetched in _fetched_ahead(context, bucket, folders):
        if handled >= MAX_RUNS_PER_TICK or clock() >= deadline:
            break
        if after is not None and len(retry) >= MAX_RETRIES_KEPT:
            break  # the cursor waits until storage lets the ones kept be read
        if folder in retry:
            retry.remove(folder)
        if ref is not None and fetched is not None:
            read: dict[str, str] = {}
            request, acted = _handle_folder(context, callbacks, ref, read, fetched)
            handled += acted
            if request is not None:
                run_requests.append(request)
            if folder not in read:
                retry.append(folder)
        if after is not None:
            position = after
    return _result(context, run_requests, DatabaseCursor(position, retry).dump())


@dataclass(frozen=True)
class Fetched:
    """What handling a manifest needs from storage and the instance."""

    text: str | None
    """The manifest's text; None when it could not be read now (a later tick retries)."""
    ran: bool
    """Whether a run for this manifest version exists already."""


def _fetch(
    context: dg.SensorEvaluationContext, bucket: ProductionStore, ref: ManifestRef
) -> Fetched:
    text = _read_manifest(context, bucket, manifest_key(ref.production_id))
    valid = text is not None and is_production_id(ref.production_id)
    return Fetched(text, valid and has_run(context.instance, ref))


def _fetched_ahead(
    context: dg.SensorEvaluationContext,
    bucket: ProductionStore,
    folders: list[tuple[str, ChangeCursor | None]],
) -> Iterator[tuple[str, ChangeCursor | None, ManifestRef | None, Fetched | None]]:
    """`(folder, cursor after it, ref, fetched)` in order, the version, text and runs of
    `FETCH_WORKERS` manifests asked at once (each is a round trip), lazily: a tick that
    stops early asks for little more than it used. No ref for a manifest that is gone."""
    versions = zip(folders, bucket.manifest_versions(f for f, _ in folders), strict=True)
    with ThreadPoolExecutor(FETCH_WORKERS) as pool:
        while chunk := list(islice(versions, FETCH_WORKERS)):
            refs = [ManifestRef(folder, version) if version else None
                    for (folder, _), (_, version) in chunk]  # fmt: skip
            fetched = pool.map(lambda ref: ref and _fetch(context, bucket, ref), refs)
            for ((folder, after), _), ref, got in zip(chunk, refs, fetched, strict=True):
                yield folder, after, ref, got


def _handle_folder(
    context: dg.SensorEvaluationContext,
    callbacks: StudioCallbacks,
    ref: ManifestRef,
    seen: dict[str, str],
    fetched: Fetched,
) -> tuple[dg.RunRequest | None, int]:
    """A new or changed manifest in a production's folder, whatever the folder's name: a
    run request, or a report if it is invalid or its folder's name cannot be an id; and
    whether it counts against the tick's bound (1) or not (0: read failed, or a run
    exists). `seen` gets the manifest's version once it has been read."""
    text = fetched.text
    if text is None:
        return None, 0
    seen[ref.production_id] = ref.version
    if not is_production_id(ref.production_id):
        _report_misnamed(context, callbacks, ref, text)
        return None, 1
    if fetched.ran:
        return None, 0
    try:
        manifest = Manifest.from_json(text, PRESET_NAMES)
    except InvalidProductionError as exc:
        _refuse(context, callbacks, ref.production_id, INVALID_MANIFEST_CODE, exc, text)
        return None, 1
    refusal = manifest.callback_url and callbacks.refusal(manifest.callback_url)
    if refusal:
        error = InvalidProductionError(
            f"callback_url {manifest.callback_url[:200]!r} may not receive callbacks: {refusal}",
            "give an http(s) URL on the studio app's own host (an operator lists the hosts "
            "in GAMEVIEW_CALLBACK_ALLOWED_HOSTS), or leave callback_url out, then upload "
            f"{MANIFEST_NAME} again",
        )
        _refuse(context, callbacks, ref.production_id, REFUSED_URL_CODE, error, "")
        return None, 1
    request = dg.RunRequest(
        run_key=f"{ref.production_id}:{ref.version}",
        partition_key=ref.production_id,
        tags={MANIFEST_VERSION_TAG: ref.version, PRESET_TAG: manifest.preset},
    )
    return request, 1


def _result(
    context: dg.SensorEvaluationContext, run_requests: list[dg.RunRequest], cursor: str
) -> dg.SensorResult:
    """The tick's runs, with the dynamic partitions of productions seen for the first time."""
    known = set(context.instance.get_dynamic_partitions(productions.name))
    new_ids = sorted({r.partition_key for r in run_requests if r.partition_key not in known})
    if run_requests:
        context.log.info(f"{len(run_requests)} run(s) requested, {len(new_ids)} new production(s)")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[productions.build_add_request(new_ids)] if new_ids else [],
        cursor=cursor,
    )


def _read_manifest(
    context: dg.SensorEvaluationContext, bucket: ProductionStore, key: str
) -> str | None:
    """The manifest's text, or None (logged) when it cannot be read now: a later tick retries."""
    try:
        return bucket.read_text(key)
    except Exception as exc:
        context.log.warning(f"could not read {key}, will retry next tick: {exc}")
        return None


def _refuse(
    context: dg.SensorEvaluationContext,
    callbacks: StudioCallbacks,
    name: str,
    code: str,
    error: InvalidProductionError,
    text: str,
) -> None:
    """Report a manifest that will not run, to its own callback URL where that may receive
    callbacks, else to the default one; no run starts."""
    context.log.warning(f"skipping {name}: {error.message} ({error.hint})")
    callbacks.failed(
        production_id=name,
        run_id=None,
        error=FailureReason("manifest", code, error.message, error.hint),
        url=_report_url(callbacks, text),
    )


def _report_misnamed(
    context: dg.SensorEvaluationContext,
    callbacks: StudioCallbacks,
    ref: ManifestRef,
    text: str,
) -> None:
    """A manifest in a folder whose name cannot be a production id (upper case, accents, too
    long): tell the app why (once per manifest version: the caller records it) and start
    nothing."""
    try:
        validate_production_id(ref.production_id)
    except InvalidProductionError as exc:
        _refuse(context, callbacks, ref.production_id, INVALID_ID_CODE, exc, text)
