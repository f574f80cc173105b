"""Which manifests changed, asked of the Supabase project's own database (`SUPABASE_DB_URL`).

Supabase Storage keeps a row per object in `storage.objects`; the upload sensor reads only
these of its columns, as Supabase's migrations make them (`0002-storage-schema.sql`):
`bucket_id` (text), `name` (text, the object key), `id` (uuid, the primary key) and
`updated_at` (timestamptz: `now()` when the row is inserted, and on every update through
the `update_updated_at_column` trigger, so an overwritten manifest moves forward too).

A tick asks for the manifests (`<id>/production.json`, one level deep) whose
`(updated_at, id)` comes after the cursor's, in that order, at most `limit` rows: its cost
grows with what was uploaded since the last tick, never with the productions ever made.
With the index docs/supabase.md names on `(bucket_id, updated_at, id)` the query reads only
those rows; without it PostgreSQL scans the bucket's rows once per tick. Rows younger than
`SETTLE_S` wait for the next tick: an upload whose transaction began earlier but commits
later carries an older `updated_at`, and would otherwise fall behind a cursor that already
moved past it.

psycopg2 is the driver Dagster's PostgreSQL storage (dagster-postgres) already installs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gameview_assets.core.production import MANIFEST_NAME

SETTLE_S = 10.0
"""Changes younger than this (by the database's clock) wait for the next tick."""
CONNECT_TIMEOUT_S = 10

CHANGED_MANIFESTS = f"""
SELECT name, updated_at, id::text
FROM storage.objects
WHERE bucket_id = %(bucket)s
  AND (updated_at, id) > (%(since)s::timestamptz, %(after_id)s::uuid)
  AND updated_at < now() - make_interval(secs => %(settle_s)s)
  AND name LIKE '%%/{MANIFEST_NAME}' AND name NOT LIKE '%%/%%/%%'
ORDER BY updated_at, id
LIMIT %(limit)s
"""
EPOCH = "1970-01-01T00:00:00+00:00"
NIL_UUID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class ChangeCursor:
    """Where the last tick stopped: the `updated_at` and `id` of the last manifest row it
    handled. Two fields, whatever the number of productions."""

    since: str = EPOCH
    after_id: str = NIL_UUID

    @classmethod
    def parse(cls, data: object) -> ChangeCursor:
        """The cursor's `db` entry; anything else starts from the beginning (every
        manifest is then seen once more, and the runs that exist are not started again)."""
        if isinstance(data, dict) and isinstance(data.get("since"), str):
            return cls(data["since"], str(data.get("after_id") or NIL_UUID))
        return cls()

    def as_json(self) -> dict[str, str]:
        return {"since": self.since, "after_id": self.after_id}


@dataclass(frozen=True)
class ManifestChange:
    """A manifest row written since the cursor; `cursor` is the position just after it."""

    folder: str
    cursor: ChangeCursor


class StorageDatabase:
    """A read-only connection to the project's database, one per sensor tick."""

    def __init__(self, url: str, bucket: str, settle_s: float = SETTLE_S) -> None:
        self.url = url
        self.bucket = bucket
        self.settle_s = settle_s
        self._connection: Any = None

    def _connect(self) -> Any:
        import psycopg2

        if self._connection is None:
            self._connection = psycopg2.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S)
            self._connection.set_session(readonly=True, autocommit=True)
        return self._connection

    def _params(self, cursor: ChangeCursor, limit: int) -> dict[str, Any]:
        return {"bucket": self.bucket, "since": cursor.since, "after_id": cursor.after_id,
                "settle_s": self.settle_s, "limit": limit}  # fmt: skip

    def changed_manifests(self, cursor: ChangeCursor, limit: int) -> list[ManifestChange]:
        """Manifests written after `cursor`, oldest first, at most `limit`."""
        with self._connect().cursor() as rows:
            rows.execute(CHANGED_MANIFESTS, self._params(cursor, limit))
            found = rows.fetchall()
        return [
            ManifestChange(name.split("/", 1)[0], ChangeCursor(_stamp(at), object_id))
            for name, at, object_id in found
        ]

    def explain(self, cursor: ChangeCursor, limit: int) -> int:
        """How many rows the query reads (kept or filtered out), from PostgreSQL's own
        account of running it (`EXPLAIN ANALYZE`): for benchmarks."""
        with self._connect().cursor() as rows:
            query = "EXPLAIN (ANALYZE, FORMAT JSON) " + CHANGED_MANIFESTS
            rows.execute(query, self._params(cursor, limit))
            (plan,) = rows.fetchone()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return _rows_scanned(plan[0]["Plan"])

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _stamp(at: datetime) -> str:
    """A timestamp as the cursor keeps it: ISO 8601 with microseconds, as PostgreSQL has it."""
    return at.isoformat(timespec="microseconds")


def _rows_scanned(node: dict[str, Any]) -> int:
    """Rows the scan nodes of a plan produced or filtered out, summed over loops."""
    own = 0
    if "Scan" in node.get("Node Type", ""):
        loops = node.get("Actual Loops", 1)
        own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
    return own + sum(_rows_scanned(child) for child in node.get("Plans", []))
