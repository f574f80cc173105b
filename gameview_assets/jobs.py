"""The job that materializes every stage of one production's partition, and its run tags."""

import dagster as dg

PROCESS_JOB_NAME = "process_production"
PARTITION_TAG = "dagster/partition"
"""Dagster's own tag for a run's partition key (public name, spelled once here)."""
WILL_RETRY_TAG = "dagster/will_retry"
"""Dagster's tag on a failed run that run retries (deploy/dagster.yaml) will re-execute."""
CODE_LOCATION = "gameview_assets"
"""The code location's name wherever the definitions are served (`gameview serve`, pyproject);
`gameview process` records its runs as this location's (`local_runs.py`)."""
MANIFEST_VERSION_TAG = "gameview/manifest_version"
PRESET_TAG = "gameview/preset"
FRESH_TAG = "gameview/fresh"
"""A run tagged `gameview/fresh: true` redoes every stage instead of reusing unchanged work."""

process_production_job = dg.define_asset_job(
    PROCESS_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="Videos to a published splat scene for one production.",
)
