"""Dagster resources for the store and the work directory, chosen by settings."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from gameview_assets.core.workdir import ProductionPaths
from gameview_assets.resources.local_store import LocalStore
from gameview_assets.resources.store import ProductionStore


class StoreResource(ConfigurableResource):
    """The production store: Supabase Storage when `supabase_url` is set, else a local folder."""

    root: str = ".gameview/store"
    supabase_url: str | None = None
    supabase_key: str | None = None
    bucket: str = "productions"

    def open(self) -> ProductionStore:
        if self.supabase_url:
            from gameview_assets.resources.supabase_store import SupabaseStore

            if not self.supabase_key:
                raise ValueError(
                    "SUPABASE_URL is set but SUPABASE_SERVICE_ROLE_KEY is not: set both, "
                    "or unset SUPABASE_URL to use the local store"
                )
            return SupabaseStore(self.supabase_url, self.supabase_key, self.bucket)
        return LocalStore(Path(self.root))


class WorkdirResource(ConfigurableResource):
    """Root of the per-production work directories that stages hand files through."""

    root: str = ".gameview/work"

    def production(self, production_id: str) -> ProductionPaths:
        return ProductionPaths.under(Path(self.root).absolute(), production_id).ensure()
