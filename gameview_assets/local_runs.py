"""Runs started on this machine outside the UI (`gameview process`), recorded as runs of the
served code location, so the UI lists them everywhere it lists runs launched from it.

The UI's Overview timeline, like re-execution, finds a run's job through the run's remote
origin (code location, repository, job), which only runs launched through a workspace get.
Dagster has no public API to give a run one, nor to execute a run created beforehand, so this
module does what `JobDefinition.execute_in_process` does with the run it creates, and the
private imports below are the least of it: the origin's records, `InMemoryJob` and
`execute_run` (what the public `execute_job` calls once its run exists).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from gameview_assets.jobs import CODE_LOCATION, PARTITION_TAG

DEFINITIONS_MODULE = "gameview_assets.definitions"
REPOSITORY_NAME = "__repository__"
"""The name Dagster gives the one repository of a `Definitions` object."""


def served_origin(job_name: str) -> RemoteJobOrigin:
    """The origin the webserver gives runs it launches from `gameview serve`'s workspace."""
    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=DEFINITIONS_MODULE),
        location_name=CODE_LOCATION,
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, REPOSITORY_NAME), job_name)


def run_production(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    production_id: str,
    run_id: str,
    tags: Mapping[str, str],
    run_config: Mapping[str, object],
) -> dg.DagsterRunStatus:
    """Materialize every asset of the production's partition in this process (one step after
    another, as `execute_in_process` runs them: no step processes whose own log lines would
    reach the terminal), in a run recorded as the served location's; returns how it ended."""
    in_process = job.as_ephemeral_job(resource_defs={}, input_values={})
    run = instance.create_run_for_job(
        in_process,
        run_id=run_id,
        run_config=run_config,
        tags={**job.run_tags, **tags, PARTITION_TAG: production_id},
        remote_job_origin=served_origin(job.name),
    )
    return execute_run(InMemoryJob(in_process), run, instance).dagster_run.status
