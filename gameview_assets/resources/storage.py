"""Dagster resources for the store and the work directory; the deployment picks the store."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from gameview_assets.core.workdir import ProductionPaths
from gameview_assets.resources.local_store import LocalStore
from gameview_assets.resources.store import ProductionStore


class StoreResource(dg.ConfigurableResource):
    """The production store. Assets and sensors ask for this type; definitions bind one of
    its implementations (`LocalStoreResource`, `SupabaseStoreResource`) by deployment."""

    @property
    def store(self) -> ProductionStore:
        raise NotImplementedError(f"{type(self).__name__} names no store")


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

    _store: ProductionStore | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from gameview_assets.resources.supabase_store import SupabaseStore

        self._store = SupabaseStore(self.url, self.service_role_key, self.bucket)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def store(self) -> ProductionStore:
        if self._store is None:
            raise RuntimeError(
                "the Supabase store is opened per run: use it inside Dagster or through "
                "dagster.build_resources"
            )
        return self._store


class WorkdirResource(dg.ConfigurableResource):
    """Root of the per-production work directories that stages hand files through."""

    root: str = ".gameview/work"

    def production(self, production_id: str) -> ProductionPaths:
        return ProductionPaths.under(Path(self.root).absolute(), production_id)
