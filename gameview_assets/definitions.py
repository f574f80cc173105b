"""The one Definitions object: assets, checks, job, sensors, resources, executor.

`defs` is loaded lazily (`@dg.definitions`), so importing this module reads no environment;
tests build their own with `build_definitions(settings)`.
"""

from __future__ import annotations

import dagster as dg

from gameview_assets.assets import all_assets
from gameview_assets.jobs import process_production_job
from gameview_assets.k8s import k8s_executor
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import (
    LocalStoreResource,
    StoreResource,
    SupabaseStoreResource,
    WorkdirResource,
)
from gameview_assets.resources.web_budget import WebBudgetResource
from gameview_assets.sensors import all_sensors
from gameview_assets.settings import Settings


def store_resource(settings: Settings) -> StoreResource:
    """Supabase Storage when `SUPABASE_URL` is set, else the local folder (the default)."""
    if not settings.supabase_url:
        return LocalStoreResource(root=str(settings.store_root))
    if not settings.supabase_key:
        raise ValueError(
            "SUPABASE_URL is set but SUPABASE_SERVICE_ROLE_KEY is not: set both, "
            "or unset SUPABASE_URL to use the local store"
        )
    return SupabaseStoreResource(
        url=settings.supabase_url,
        service_role_key=dg.EnvVar("SUPABASE_SERVICE_ROLE_KEY"),
        bucket=settings.bucket,
        db_url=dg.EnvVar("SUPABASE_DB_URL") if settings.supabase_db_url else None,
    )


def step_executor(settings: Settings) -> dg.ExecutorDefinition:
    """Steps as processes on this machine (the default), or as pods on Kubernetes."""
    if settings.executor == "k8s":
        return k8s_executor(settings)
    return dg.multiprocess_executor.configured({"max_concurrent": 2})


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions wired to the given settings (tests pass their own folders)."""
    return dg.Definitions(
        assets=all_assets,
        jobs=[process_production_job],
        sensors=all_sensors,
        resources={
            "store": store_resource(settings),
            "workdir": WorkdirResource(root=str(settings.workdir)),
            "callbacks": StudioCallbacks.from_settings(settings),
            "web_budget": WebBudgetResource(max_splats=settings.web_max_splats),
        },
        executor=step_executor(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
