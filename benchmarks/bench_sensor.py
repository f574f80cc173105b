"""Upload sensor tick time with many productions, against Dagster's 60 s sensor timeout.

    python benchmarks/bench_sensor.py [--stores local,supabase,database] [--sizes 100,1000,10000]
        [--db-sizes 100000,1000000] [--json FILE]

For each store (the local folder; the fake Supabase Storage of the tests, paging 1,000
entries a request, in this process) and each number of productions, it times:
- the first tick: every production new (it requests `MAX_RUNS_PER_TICK` runs and stops);
- a steady tick: every manifest already in the cursor, so the tick checks them all
  (or stops at `TICK_BUDGET_S`) and requests nothing.
The fake server shares this process (and its GIL) with the sensor, so its figures are
slower than the same code against a real server on another machine would need for CPU, but
they have no network latency.

`database` is the fake Storage with `SUPABASE_DB_URL`: `storage.objects` on a real PostgreSQL
server (the tests' `postgres_server`), shaped as Supabase's migrations make it, with a row
per production's video and manifest, written over the past year. It times the first tick
(an empty cursor), an idle tick (cursor at the end) and a tick after `NEW_UPLOADS` new
productions, each with and without the index docs/supabase.md names; rows read are
PostgreSQL's own count (`EXPLAIN ANALYZE` of the tick's query at that cursor).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import (
    LocalStoreResource,
    StoreResource,
    SupabaseStoreResource,
)
from gameview_assets.resources.storage_db import ChangeCursor, StorageDatabase
from gameview_assets.resources.store import list_manifests
from gameview_assets.resources.supabase_store import SupabaseStore
from gameview_assets.sensors.upload_sensor import (
    DB_ROWS_PER_TICK,
    MAX_RUNS_PER_TICK,
    TICK_BUDGET_S,
    DatabaseCursor,
    upload_sensor,
)
from gameview_assets_tests.resources.fake_supabase import BUCKET, KEY, FakeStorage
from gameview_assets_tests.service.postgres import PostgresServer, postgres_server
from gameview_assets_tests.service.storage_schema import (
    CHANGES_INDEX,
    MirroredRows,
    create_storage_schema,
)

TIMEOUT_S = 60.0
MANIFEST = b'{"preset": "fast"}'
NEW_UPLOADS = 50


class OpenStore(StoreResource):
    """An already open store (the fake Supabase one), shared by the ticks."""

    @property
    def store(self):  # type: ignore[override]
        return _opened[0]


_opened: list = []


def versions(store) -> dict[str, str]:
    return {ref.production_id: ref.version for ref in list_manifests(store)}


def ids(count: int) -> list[str]:
    return [f"prod-{i:05d}" for i in range(count)]


@contextmanager
def local_store(count: int) -> Iterator[tuple[StoreResource, Callable[[], dict[str, str]]]]:
    with tempfile.TemporaryDirectory() as root:
        for production_id in ids(count):
            folder = Path(root) / production_id
            (folder / "videos").mkdir(parents=True)
            (folder / "videos" / "a.mp4").write_bytes(b"v")
            (folder / "production.json").write_bytes(MANIFEST)
        resource = LocalStoreResource(root=root)
        yield resource, lambda: versions(resource.store)


@contextmanager
def supabase_store(count: int) -> Iterator[tuple[StoreResource, Callable[[], dict[str, str]]]]:
    with FakeStorage() as fake:
        for production_id in ids(count):
            fake.put(f"{production_id}/production.json", MANIFEST, "application/json")
        store = SupabaseStore(fake.url, KEY, BUCKET)
        _opened[:] = [store]
        try:
            yield OpenStore(), lambda: versions(store)
        finally:
            store.close()


def tick(instance: dg.DagsterInstance, resource: StoreResource, cursor: str | None):
    """One tick, timed with the opening of its resources (a Supabase store checks its key)."""
    started = time.perf_counter()
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"store": resource, "callbacks": StudioCallbacks()},
    ) as context:
        result = upload_sensor(context)
    return time.perf_counter() - started, result


def listing_row(store_name: str, count: int) -> dict[str, object]:
    """The listing path: a first and a steady tick; every folder is listed each tick."""
    stores = {"local": local_store, "supabase": supabase_store}
    with dg.instance_for_test() as instance, stores[store_name](count) as (res, seen):
        first_s, first = tick(instance, res, None)
        cursor = json.dumps({"after": "", "seen": seen()})
        steady_s, steady = tick(instance, res, cursor)
        checked = ids(count).index(json.loads(steady.cursor)["after"]) + 1
    print(f"{store_name:<9} {count:>11,} first {first_s:6.2f}s ({len(first.run_requests)} runs)"
          f"  steady {steady_s:6.2f}s ({checked:,} checked)  cursor "
          f"{len(steady.cursor) / 1e3:.0f} kB")  # fmt: skip
    return {"store": store_name, "productions": count, "worst_tick_s": max(first_s, steady_s),
            "rows_read": count, "cursor_bytes": len(steady.cursor)}  # fmt: skip


def fill_objects(connection, count: int) -> None:  # type: ignore[no-untyped-def]
    """`count` productions written over the past year, oldest first: a video, then its
    manifest, as the app uploads them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO storage.objects (bucket_id, name, created_at, updated_at, metadata) "
            "SELECT %(bucket)s, 'prod-' || lpad(n::text, 7, '0') || '/' || f, t, t, "
            "'{\"size\": 1}'::jsonb FROM generate_series(1, %(count)s) AS n, "
            "unnest(ARRAY['videos/a.mp4', 'production.json']) WITH ORDINALITY AS u(f, i), "
            "LATERAL (SELECT now() - interval '365 days' + "
            "(n * 2 + i) * (interval '365 days' / (2 * %(count)s + 3)) AS t) AS at",
            {"bucket": BUCKET, "count": count},
        )
        cursor.execute("VACUUM ANALYZE storage.objects")


def database_rows(postgres: PostgresServer, count: int) -> list[dict[str, object]]:
    """The database path at `count` productions, without then with the changes index."""
    import psycopg2

    env = postgres.create_database(f"bench_sensor_{count}")
    url = (f"postgresql://{env['DAGSTER_PG_USER']}:{env['DAGSTER_PG_PASSWORD']}@"
           f"{postgres.host}:{postgres.port}/{env['DAGSTER_PG_DB']}")  # fmt: skip
    admin = psycopg2.connect(url)
    admin.autocommit = True
    rows = []
    try:
        create_storage_schema(admin)
        started = time.perf_counter()
        fill_objects(admin, count)
        print(f"  ({2 * count:,} rows written in {time.perf_counter() - started:.0f} s)")
        for indexed in (False, True):
            if indexed:
                admin.cursor().execute(CHANGES_INDEX)
                admin.cursor().execute("ANALYZE storage.objects")
            rows.append(database_ticks(admin, url, count, indexed))
    finally:
        admin.close()
    return rows


def last_manifest(admin) -> ChangeCursor:  # type: ignore[no-untyped-def]
    """The cursor just after the newest manifest row: where a caught-up sensor stands."""
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT updated_at, id::text FROM storage.objects WHERE bucket_id = %s "
            "AND name LIKE '%%/production.json' ORDER BY updated_at DESC, id DESC LIMIT 1",
            (BUCKET,),
        )
        at, object_id = cursor.fetchone()
    return ChangeCursor(at.isoformat(timespec="microseconds"), object_id)


def database_ticks(admin, url: str, count: int, indexed: bool) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """First, idle and new-uploads ticks through the sensor; the worst of each figure."""
    database = StorageDatabase(url, BUCKET, settle_s=0)
    with FakeStorage() as fake, dg.instance_for_test() as instance:
        for n in range(1, NEW_UPLOADS + 1):  # the first tick's manifests, to read
            fake.put(f"prod-{n:07d}/production.json", MANIFEST, "application/json")
        resource = SupabaseStoreResource(
            url=fake.url, service_role_key=KEY, db_url=url, db_settle_s=0
        )
        first_s, first = tick(instance, resource, None)
        end = last_manifest(admin)
        idle = DatabaseCursor(end).dump()
        idle_s, _ = tick(instance, resource, idle)
        MirroredRows(admin, fake)
        for n in range(NEW_UPLOADS):
            fake.put(f"new-{indexed:d}-{n:03d}/videos/a.mp4", b"v", "video/mp4")
            fake.put(f"new-{indexed:d}-{n:03d}/production.json", MANIFEST, "application/json")
        new_s, new = tick(instance, resource, idle)
        rows_read = max(database.explain(cursor, DB_ROWS_PER_TICK)
                        for cursor in (ChangeCursor(), end))  # fmt: skip
        assert len(new.run_requests) == NEW_UPLOADS, new.run_requests
    database.close()
    cursor_bytes = max(len(result.cursor) for result in (first, new))
    label = "database" if indexed else "database (no index)"
    print(f"{label:<20} {count:>9,} first {first_s:5.2f}s ({len(first.run_requests)} runs) "
          f"idle {idle_s:5.2f}s  {NEW_UPLOADS} new {new_s:5.2f}s  rows read {rows_read:,}  "
          f"cursor {cursor_bytes} B")  # fmt: skip
    return {"store": "database", "index": indexed, "productions": count,
            "worst_tick_s": max(first_s, idle_s, new_s), "rows_read": rows_read,
            "cursor_bytes": cursor_bytes}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="local,supabase,database")
    parser.add_argument("--sizes", default="100,1000,10000", help="for local and supabase")
    parser.add_argument("--db-sizes", default="100000,1000000", help="for database")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    db_sizes = [int(n) for n in args.db_sizes.split(",")]
    print(f"timeout {TIMEOUT_S:.0f} s; at most {MAX_RUNS_PER_TICK} runs and {TICK_BUDGET_S:.0f} s "
          "of manifest checks per tick")  # fmt: skip
    rows: list[dict[str, object]] = []
    for store_name in args.stores.split(","):
        if store_name == "database":
            with postgres_server() as postgres:
                for count in db_sizes:
                    rows += database_rows(postgres, count)
        else:
            rows += [listing_row(store_name, count) for count in sizes]
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
