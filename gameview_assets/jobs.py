"""The job that materializes every stage of one production's partition."""

from dagster import AssetSelection, define_asset_job

PROCESS_JOB_NAME = "process_production"
MANIFEST_VERSION_TAG = "gameview/manifest_version"
PRESET_TAG = "gameview/preset"

process_production_job = define_asset_job(
    PROCESS_JOB_NAME,
    selection=AssetSelection.all(),
    description="Videos to a published splat scene for one production.",
)
