"""The one Definitions object: assets, checks, job, sensors, resources, executor."""

from __future__ import annotations

from dagster import Definitions, EnvVar, multiprocess_executor

from gameview_assets.assets import all_assets
from gameview_assets.jobs import process_production_job
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import StoreResource, WorkdirResource
from gameview_assets.sensors import all_sensors
from gameview_assets.settings import Settings


def build_definitions(settings: Settings) -> Definitions:
    """Definitions wired to the given settings (tests pass their own folders)."""
    return Definitions(
        assets=all_assets,
        jobs=[process_production_job],
        sensors=all_sensors,
        resources={
            "store": StoreResource(
                root=str(settings.store_root),
                supabase_url=settings.supabase_url,
                supabase_key=EnvVar("SUPABASE_SERVICE_ROLE_KEY") if settings.supabase_key else None,
                bucket=settings.bucket,
            ),
            "workdir": WorkdirResource(root=str(settings.workdir)),
            "callbacks": StudioCallbacks.from_settings(settings),
        },
        executor=multiprocess_executor.configured({"max_concurrent": 2}),
    )


defs = build_definitions(Settings.from_env())
