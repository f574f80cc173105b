"""The upload sensor on the project's database (`SUPABASE_DB_URL`): `storage.objects` shaped
as Supabase's migrations make it, on the real PostgreSQL server the service tests start,
its rows written as the fake Storage server stores objects, read through the read-only role
docs/supabase.md describes."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context, instance_for_test

from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import SupabaseStoreResource
from gameview_assets.resources.storage_db import ChangeCursor, StorageDatabase
from gameview_assets.resources.store import StorageAccessError
from gameview_assets.sensors.upload_sensor import upload_sensor
from gameview_assets_tests.callback_server import CallbackServer
from gameview_assets_tests.resources.fake_supabase import BUCKET, KEY, FakeStorage
from gameview_assets_tests.service.postgres import PostgresServer
from gameview_assets_tests.service.storage_schema import (
    CHANGES_INDEX,
    MirroredRows,
    create_storage_schema,
    sensor_grants,
)

ROLE = "gameview_sensor"
ROLE_PASSWORD = "sensor-secret"  # checked: the cluster asks for passwords (scram-sha-256)
MANIFEST = b'{"preset": "fast"}'


@dataclass
class Project:
    """A Supabase project in miniature: Storage (the fake), its database, the sensor's URL."""

    fake: FakeStorage
    admin: psycopg2.extensions.connection
    sensor_url: str

    def upload(self, production_id: str, manifest: bytes = MANIFEST) -> None:
        """A production as the studio app uploads it: a video, then the manifest."""
        self.fake.put(f"{production_id}/videos/a.mp4", b"v", "video/mp4")
        self.fake.put(f"{production_id}/production.json", manifest, "application/json")


@pytest.fixture(scope="module")
def sensor_role(postgres: PostgresServer) -> str:
    """The read-only role, once for the cluster (roles are not per database)."""
    connection = admin_connection(postgres, "postgres")
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'")
    connection.close()
    return ROLE


def admin_connection(postgres: PostgresServer, database: str) -> psycopg2.extensions.connection:
    env = postgres.env(database)
    connection = psycopg2.connect(
        host=postgres.host, port=postgres.port, dbname=database,
        user=env["DAGSTER_PG_USER"], password=env["DAGSTER_PG_PASSWORD"],
    )  # fmt: skip
    connection.autocommit = True
    return connection


@pytest.fixture
def project(
    postgres: PostgresServer, pg_env: dict[str, str], sensor_role: str
) -> Iterator[Project]:
    database = pg_env["DAGSTER_PG_DB"]
    admin = admin_connection(postgres, database)
    create_storage_schema(admin)
    with admin.cursor() as cursor:
        for statement in sensor_grants(sensor_role, ROLE_PASSWORD)[1:]:  # the role exists
            cursor.execute(statement)
    url = f"postgresql://{sensor_role}:{ROLE_PASSWORD}@{postgres.host}:{postgres.port}/{database}"
    with FakeStorage() as fake:
        MirroredRows(admin, fake)
        yield Project(fake, admin, url)
    admin.close()


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def app() -> Iterator[CallbackServer]:
    with CallbackServer() as server:
        yield server


def tick(
    instance: DagsterInstance, project: Project, app: CallbackServer, cursor: str | None
) -> SensorResult:
    """One tick with the database, changes taken as soon as they are committed."""
    store = SupabaseStoreResource(
        url=project.fake.url, service_role_key=KEY, db_url=project.sensor_url, db_settle_s=0
    )
    callbacks = StudioCallbacks(default_url=f"{app.url}/default")
    with build_sensor_context(
        instance=instance, cursor=cursor, resources={"store": store, "callbacks": callbacks}
    ) as context:
        result = upload_sensor(context)
    assert isinstance(result, SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return result


def started(result: SensorResult) -> list[str]:
    return [request.partition_key for request in result.run_requests]


def test_each_new_or_rewritten_manifest_starts_one_run_and_lists_nothing(
    instance: DagsterInstance, project: Project, app: CallbackServer
) -> None:
    for production_id in ("b", "a", "c"):
        project.upload(production_id)

    first = tick(instance, project, app, None)

    assert started(first) == ["b", "a", "c"]  # in the order they were written
    assert project.fake.calls_to("list") == []  # the database said what changed
    again = tick(instance, project, app, first.cursor)
    assert again.run_requests == []
    project.fake.put("a/production.json", b'{"preset": "high"}')  # the trigger moves updated_at
    rewritten = tick(instance, project, app, again.cursor)
    (request,) = rewritten.run_requests
    assert request.partition_key == "a" and request.tags["gameview/preset"] == "high"
    assert request.run_key != first.run_requests[1].run_key  # a new manifest version
    assert len(rewritten.cursor) < 200  # a timestamp, an id, no list of productions


def test_only_manifests_one_level_deep_count(
    instance: DagsterInstance, project: Project, app: CallbackServer
) -> None:
    project.fake.put("p1/videos/a.mp4", b"v")
    project.fake.put("p1/results/production.json", b"{}")  # not a manifest
    project.fake.put("p1/notes.json", b"{}")
    assert tick(instance, project, app, None).run_requests == []


def test_a_tick_asks_for_a_bounded_number_and_the_next_goes_on(
    instance: DagsterInstance, project: Project, app: CallbackServer, monkeypatch
) -> None:
    # The module: the package exports the sensor under the module's own name.
    module = importlib.import_module("gameview_assets.sensors.upload_sensor")
    monkeypatch.setattr(module, "DB_ROWS_PER_TICK", 4)
    ids = [f"p{n:02d}" for n in range(10)]
    for production_id in ids:
        project.upload(production_id)
    runs, cursor = [], None
    for _ in range(3):
        result = tick(instance, project, app, cursor)
        runs += started(result)
        cursor = result.cursor
    assert runs == ids


def test_an_unreadable_manifest_is_retried_without_holding_back_the_others(
    instance: DagsterInstance, project: Project, app: CallbackServer
) -> None:
    for production_id in ("a", "b", "c"):
        project.upload(production_id)
    project.fake.fault = lambda method, path: (
        "503" if method == "GET" and path.endswith("/b/production.json") else None
    )

    first = tick(instance, project, app, None)

    assert started(first) == ["a", "c"]
    assert json.loads(first.cursor)["retry"] == ["b"]
    project.fake.fault = lambda method, path: None
    second = tick(instance, project, app, first.cursor)
    assert started(second) == ["b"]
    assert json.loads(second.cursor)["retry"] == []


def test_with_the_retries_full_the_cursor_waits_and_the_kept_one_goes_first(
    instance: DagsterInstance, project: Project, app: CallbackServer, monkeypatch
) -> None:
    module = importlib.import_module("gameview_assets.sensors.upload_sensor")
    monkeypatch.setattr(module, "MAX_RETRIES_KEPT", 1)
    project.upload("a")
    failing = {"a"}
    project.fake.fault = lambda method, path: (
        "503" if method == "GET" and path.split("/")[-2] in failing else None
    )
    first = tick(instance, project, app, None)
    assert first.run_requests == [] and json.loads(first.cursor)["retry"] == ["a"]
    project.upload("b")
    waiting = tick(instance, project, app, first.cursor)  # a still unreadable: b waits
    assert waiting.run_requests == []
    assert json.loads(waiting.cursor) == json.loads(first.cursor)
    failing.clear()
    project.fake.put("a/production.json", b'{"preset": "high"}')  # a row of its own too
    after = tick(instance, project, app, waiting.cursor)
    assert sorted(started(after)) == ["a", "b"]  # a once, though kept and written again
    assert json.loads(after.cursor)["retry"] == []


def test_a_misnamed_folder_is_reported_not_run(
    instance: DagsterInstance, project: Project, app: CallbackServer
) -> None:
    project.upload("Kitchen")
    result = tick(instance, project, app, None)
    assert result.run_requests == []
    (report,) = app.wait_for(1)
    assert report.json["error"]["code"] == "invalid_production_id"


def test_a_listing_cursor_is_taken_over_and_runs_are_not_repeated(
    instance: DagsterInstance, project: Project, app: CallbackServer
) -> None:
    project.upload("a")
    listing = json.dumps({"after": "a", "seen": {"a": "v"}})
    result = tick(instance, project, app, listing)
    (request,) = result.run_requests  # the database path starts from the first manifest
    assert request.partition_key == "a"
    assert json.loads(result.cursor)["db"]["since"] != ChangeCursor().since


def test_changes_younger_than_the_settling_time_wait(project: Project) -> None:
    project.upload("a")
    patient = StorageDatabase(project.sensor_url, BUCKET, settle_s=3600)
    eager = StorageDatabase(project.sensor_url, BUCKET, settle_s=0)
    try:
        assert patient.changed_manifests(ChangeCursor(), 10) == []
        assert [c.folder for c in eager.changed_manifests(ChangeCursor(), 10)] == ["a"]
    finally:
        patient.close()
        eager.close()


def test_the_read_only_role_reads_its_bucket_and_nothing_more(project: Project) -> None:
    project.upload("a")
    with project.admin.cursor() as cursor:
        cursor.execute("INSERT INTO storage.buckets (id, name) VALUES ('other', 'other')")
        cursor.execute(
            "INSERT INTO storage.objects (bucket_id, name) VALUES ('other', 'x/production.json')"
        )
    connection = psycopg2.connect(project.sensor_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT bucket_id, name FROM storage.objects ORDER BY name")
            assert cursor.fetchall() == [(BUCKET, "a/production.json"), (BUCKET, "a/videos/a.mp4")]
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute("SELECT metadata FROM storage.objects")
        connection.rollback()
        with connection.cursor() as cursor, pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            cursor.execute("DELETE FROM storage.objects")
    finally:
        connection.close()


def test_with_the_index_a_tick_reads_only_the_new_rows(project: Project) -> None:
    with project.admin.cursor() as cursor:
        cursor.execute(CHANGES_INDEX)
        cursor.execute(
            "INSERT INTO storage.objects (bucket_id, name, updated_at) "
            "SELECT %s, 'p' || n || '/' || f, now() - interval '1 day' + (2 * n + i) * "
            "interval '1 ms' FROM generate_series(1, 5000) AS n, "
            "unnest(ARRAY['videos/a.mp4', 'production.json']) WITH ORDINALITY AS u(f, i)",
            (BUCKET,),
        )
        cursor.execute("ANALYZE storage.objects")
    database = StorageDatabase(project.sensor_url, BUCKET, settle_s=0)
    try:
        caught_up = ChangeCursor()
        while changes := database.changed_manifests(caught_up, 1000):
            caught_up = changes[-1].cursor
        assert database.explain(caught_up, 200) == 0  # nothing written since: nothing read
        for production_id in ("new1", "new2"):
            project.upload(production_id)  # a video and a manifest each
        new = database.changed_manifests(caught_up, 200)
        assert [c.folder for c in new] == ["new1", "new2"]
        assert database.explain(caught_up, 200) == 4  # the rows since, not the 10,000 before
    finally:
        database.close()


def test_storage_refusing_the_key_fails_the_tick_plainly(
    instance: DagsterInstance, project: Project, app: CallbackServer
) -> None:
    store = SupabaseStoreResource(
        url=project.fake.url, service_role_key="rotated", db_url=project.sensor_url
    )
    callbacks = StudioCallbacks(default_url=f"{app.url}/default")
    resources = {"store": store, "callbacks": callbacks}
    with (
        build_sensor_context(instance=instance, resources=resources) as context,
        pytest.raises(StorageAccessError, match="SUPABASE_SERVICE_ROLE_KEY"),
    ):
        upload_sensor(context)
