"""Dagster resources for the store and the work directory; the deployment picks the store."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from gameview_assets.core.workdir import ProductionPaths
from gameview_assets.resources.local_store import LocalStore
from gameview_assets.resources.storage_db import SETTLE_S, StorageDatabase
from gameview_assets.resources.store import (
    ProductionStore,
    StorageAccessError,
    StorageUnavailableError,
)


class StoreResource(dg.ConfigurableResource):
    """The production store. Assets and sensors ask for this type; definitions bind one of
    its implementations (`LocalStoreResource`, `SupabaseStoreResource`) by deployment."""

    @property
    def store(self) -> ProductionStore:
        raise NotImplementedError(f"{type(self).__name__} names no store")

    @property
    def database(self) -> StorageDatabase | None:
        """The store's database, which says what changed since a point in time; None when
        the deployment has none (the sensor lists the store instead)."""
        return None


class LocalStoreResource(StoreResource):
    """The embedded default: a local folder shaped like the bucket (nothing to connect)."""

    root: str = ".gameview/store"

    @property
    def store(self) -> ProductionStore:
        return LocalStore(Path(self.root))


class SupabaseStoreResource(StoreResource):
    """Supabase Storage with the service-role key; one HTTP client per run or sensor tick,
    closed when it ends. Outside Dagster, open it with `dagster.build_resources`."""

    url: str
    service_role_key: str  # bound to EnvVar("SUPABASE_SERVICE_ROLE_KEY"): the UI never shows it
    bucket: str = "productions"
    db_url: str | None = None
    """The project's PostgreSQL URL for a read-only role (docs/supabase.md), bound to
    EnvVar("SUPABASE_DB_URL") when set: the upload sensor then asks `storage.objects` what
    changed instead of listing the bucket."""
    db_settle_s: float = SETTLE_S
    """How old (by the database's clock) a change must be before a tick takes it, so that
    an upload committing late with an earlier timestamp is not passed over."""

    _store: ProductionStore | None = PrivateAttr(default=None)
    _refused: StorageAccessError | None = PrivateAttr(default=None)
    _database: StorageDatabase | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Open the store and check its key and bucket. A refusal is raised where the store
        is first asked for: inside a stage it becomes the run's failure reason for the app
        (`storage_misconfigured`), in a sensor the tick's error. Storage that does not answer
        is left to the calls that need it (their retries, `storage_unavailable`)."""
        from gameview_assets.resources.supabase_store import SupabaseStore

        store = SupabaseStore(self.url, self.service_role_key, self.bucket)
        self._store = store
        if self.db_url:
            self._database = StorageDatabase(self.db_url, self.bucket, self.db_settle_s)
        try:
            store.check_access()
        except StorageAccessError as exc:
            self._refused = exc
        except StorageUnavailableError:
            pass

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._database is not None:
            self._database.close()
            self._database = None

    @property
    def store(self) -> ProductionStore:
        if self._refused is not None:
            raise self._refused
        if self._store is None:
            raise RuntimeError(
                "the Supabase store is opened per run: use it inside Dagster or through "
                "dagster.build_resources"
            )
        return self._store

    @property
    def database(self) -> StorageDatabase | None:
        return self._database


class WorkdirResource(dg.ConfigurableResource):
    """Root of the per-production work directories that stages hand files through."""

    root: str = ".gameview/work"

    def production(self, production_id: str) -> ProductionPaths:
        return ProductionPaths.under(Path(self.root).absolute(), production_id)
