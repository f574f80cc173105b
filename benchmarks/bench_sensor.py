"""Upload sensor tick time with many productions, against Dagster's 60 s sensor timeout.

    python benchmarks/bench_sensor.py [--sizes 100,1000,10000] [--stores local,supabase]

For each store (the local folder; the fake Supabase Storage of the tests, paging 1,000
entries a request, in this process) and each number of productions, it times:
- the first tick: every production new (it requests `MAX_RUNS_PER_TICK` runs and stops);
- a steady tick: every manifest already in the cursor, so the tick checks them all
  (or stops at `TICK_BUDGET_S`) and requests nothing.
The fake server shares this process (and its GIL) with the sensor, so its figures are
slower than the same code against a real server on another machine would need for CPU, but
they have no network latency.
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
from gameview_assets.resources.storage import LocalStoreResource, StoreResource
from gameview_assets.resources.store import list_manifests
from gameview_assets.resources.supabase_store import SupabaseStore
from gameview_assets.sensors.upload_sensor import MAX_RUNS_PER_TICK, TICK_BUDGET_S, upload_sensor
from gameview_assets_tests.resources.fake_supabase import BUCKET, KEY, FakeStorage

TIMEOUT_S = 60.0
MANIFEST = b'{"preset": "fast"}'


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
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"store": resource, "callbacks": StudioCallbacks()},
    )
    started = time.perf_counter()
    result = upload_sensor(context)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--stores", default="local,supabase")
    args = parser.parse_args()
    stores = {"local": local_store, "supabase": supabase_store}
    print(f"timeout {TIMEOUT_S:.0f} s; at most {MAX_RUNS_PER_TICK} runs and {TICK_BUDGET_S:.0f} s "
          "of manifest checks per tick")  # fmt: skip
    print(f"{'store':<9} {'productions':>11} {'first tick':>11} {'runs':>5} "
          f"{'steady tick':>12} {'checked':>8} {'cursor':>9} {'of timeout':>10}")  # fmt: skip
    for store_name in args.stores.split(","):
        for count in (int(n) for n in args.sizes.split(",")):
            with dg.instance_for_test() as instance, stores[store_name](count) as (res, seen):
                first_s, first = tick(instance, res, None)
                cursor = json.dumps({"after": "", "seen": seen()})
                steady_s, steady = tick(instance, res, cursor)
                checked = ids(count).index(json.loads(steady.cursor)["after"]) + 1
                worst = max(first_s, steady_s)
                runs = len(first.run_requests)
                print(f"{store_name:<9} {count:>11,} {first_s:>10.2f}s {runs:>5} "
                      f"{steady_s:>11.2f}s {checked:>8,} {len(steady.cursor) / 1e3:>7.0f}kB "
                      f"{worst / TIMEOUT_S:>9.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
