"""Each step's Kubernetes Job, as dagster-k8s's `k8s_job_executor` builds it from our executor
config and op tags, checked against the Kubernetes schema (no cluster: the Jobs are recorded
where the client would send them)."""

from __future__ import annotations

import json
import os
from typing import Any

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import create_execution_plan
from dagster._core.execution.context.system import PlanData, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import create_context_free_log_manager
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.init import InitExecutorContext
from dagster._core.executor.step_delegating.step_handler.base import StepHandlerContext
from dagster._core.system_config.objects import ResolvedRunConfig
from dagster._core.test_utils import create_run_for_test, instance_for_test
from dagster._grpc.types import ExecuteStepArgs

from gameview_assets.definitions import build_definitions
from gameview_assets.jobs import PARTITION_TAG, PROCESS_JOB_NAME
from gameview_assets.k8s import GPU_RESOURCE
from gameview_assets.settings import Settings
from gameview_assets_tests.deploy.k8s_cluster import (
    KUBECONFIG,
    SECRET_VALUES,
    as_manifest,
    record_step_launches,
    validate,
)

STAGES = ["source_videos", "frames", "sparse_model", "splat", "bundle"]
WORKDIR = "/var/lib/gameview/work"
IMAGE = "registry.example.com/gameview:0.1.0"
ENV = {
    "GAMEVIEW_EXECUTOR": "k8s",
    "GAMEVIEW_WORKDIR": WORKDIR,
    "GAMEVIEW_STORE": "/var/lib/gameview/store",
    "GAMEVIEW_WORKDIR_CLAIM": "gameview-work-test",
    "GAMEVIEW_K8S_SECRET": "gameview-secrets-test",
    "GAMEVIEW_K8S_NAMESPACE": "gameview-test",
    "SUPABASE_URL": "https://project.supabase.example",
    **SECRET_VALUES,
}
PG_SECRET = "gameview-postgresql"


def launcher_config(kubeconfig: str) -> dict[str, Any]:
    """The K8sRunLauncher as the Dagster chart configures it from deploy/helm/values.yaml."""
    return {
        "module": "dagster_k8s",
        "class": "K8sRunLauncher",
        "config": {
            "service_account_name": "gameview",
            "instance_config_map": "gameview-dagster-instance",
            "postgres_password_secret": PG_SECRET,
            "dagster_home": "/opt/dagster/dagster_home",
            "job_namespace": "gameview",
            "image_pull_policy": "IfNotPresent",
            "load_incluster_config": False,
            "kubeconfig_file": kubeconfig,
        },
    }


@pytest.fixture(scope="module")
def step_jobs(tmp_path_factory) -> dict[str, tuple[str, dict[str, Any]]]:
    """step -> (namespace, Job manifest), each launched by the executor's own step handler for
    one run of the production job, the image taken from the code location (as under Helm)."""
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(KUBECONFIG)
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in ENV.items():
            monkeypatch.setenv(name, value)
        batch_api = record_step_launches(monkeypatch)
        job = build_definitions(Settings.from_env(ENV)).resolve_job_def(PROCESS_JOB_NAME)
        repository = ReconstructableRepository.for_module(
            "gameview_assets.definitions", "defs", os.getcwd(), container_image=IMAGE
        )
        recon_job = repository.get_reconstructable_job(PROCESS_JOB_NAME)
        origin = recon_job.get_python_origin()
        overrides = {"run_launcher": launcher_config(str(kubeconfig))}
        with instance_for_test(overrides=overrides) as instance:
            run = create_run_for_test(
                instance,
                job_name=PROCESS_JOB_NAME,
                job_code_origin=origin,
                tags={PARTITION_TAG: "kitchen-2026"},
            )
            resolved = ResolvedRunConfig.build(job, {})
            executor = job.executor_def.executor_creation_fn(
                InitExecutorContext(
                    job=recon_job,
                    executor_def=job.executor_def,
                    executor_config=resolved.execution.execution_engine_config,
                    instance=instance,
                )
            )
            plan = create_execution_plan(recon_job)
            plan_context = PlanOrchestrationContext(
                plan_data=PlanData(
                    job=recon_job,
                    dagster_run=run,
                    instance=instance,
                    execution_plan=plan,
                    raise_on_error=True,
                    retry_mode=RetryMode.DISABLED,
                ),
                log_manager=create_context_free_log_manager(instance, run),
                executor=executor,
                output_capture=None,
            )
            # The executor's step handler: the one object that turns a step into a Job.
            handler = executor._step_handler
            for step in plan.steps:
                args = ExecuteStepArgs(origin, run.run_id, [step.key])
                context = StepHandlerContext(instance, plan_context, plan.steps, args)
                list(handler.launch_step(context))
    jobs = [(namespace, as_manifest(body)) for namespace, body in batch_api.jobs]
    by_step = {}
    for namespace, manifest in jobs:
        labels = manifest["spec"]["template"]["metadata"]["labels"]
        by_step[labels["dagster/op"]] = (namespace, manifest)
    assert sorted(by_step) == sorted(STAGES), "one Job per step"
    return by_step


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def test_every_step_job_is_a_valid_kubernetes_job(step_jobs):
    for step, (namespace, manifest) in step_jobs.items():
        validate(manifest)
        assert manifest["kind"] == "Job", step
        assert namespace == ENV["GAMEVIEW_K8S_NAMESPACE"]
        assert container(manifest)["image"] == IMAGE  # the code location's image
        assert container(manifest)["args"][:3] == ["dagster", "api", "execute_step"]


def test_only_splat_asks_for_a_gpu_and_tolerates_gpu_nodes(step_jobs):
    for step, (_, manifest) in step_jobs.items():
        resources = container(manifest).get("resources") or {}
        pod = manifest["spec"]["template"]["spec"]
        tolerations = pod.get("tolerations") or []
        if step == "splat":
            assert resources["limits"][GPU_RESOURCE] == "1"
            assert resources["requests"][GPU_RESOURCE] == "1"
            gpu_nodes = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
            assert gpu_nodes in tolerations
        else:
            assert GPU_RESOURCE not in json.dumps(resources), step
            assert not tolerations, step


def test_sparse_model_asks_for_several_cores(step_jobs):
    requests = container(step_jobs["sparse_model"][1])["resources"]["requests"]
    assert int(requests["cpu"]) >= 4


def test_every_step_mounts_the_shared_work_directory(step_jobs):
    for step, (_, manifest) in step_jobs.items():
        volumes = manifest["spec"]["template"]["spec"]["volumes"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in volumes}
        mounts = {m["mountPath"]: m["name"] for m in container(manifest)["volumeMounts"]}
        assert claims[mounts[WORKDIR]] == ENV["GAMEVIEW_WORKDIR_CLAIM"], step
        env = {e["name"]: e.get("value") for e in container(manifest)["env"]}
        assert env["GAMEVIEW_WORKDIR"] == WORKDIR, step
        assert env["GAMEVIEW_STORE"] == ENV["GAMEVIEW_STORE"], step
        assert env["SUPABASE_URL"] == ENV["SUPABASE_URL"], step


def test_secrets_reach_step_pods_only_by_reference(step_jobs):
    for step, (_, manifest) in step_jobs.items():
        text = json.dumps(manifest)
        for name, value in SECRET_VALUES.items():
            assert value not in text, f"{name} inline in {step}'s Job"
        env = {e["name"]: e for e in container(manifest)["env"]}
        assert "SUPABASE_SERVICE_ROLE_KEY" not in env and "GAMEVIEW_CALLBACK_SECRET" not in env
        assert {"secretRef": {"name": ENV["GAMEVIEW_K8S_SECRET"]}} in container(manifest)["envFrom"]
        password = env["DAGSTER_PG_PASSWORD"]
        assert "value" not in password
        assert password["valueFrom"]["secretKeyRef"]["name"] == PG_SECRET


def executor_config(env: dict[str, str]) -> dict[str, Any]:
    """The k8s executor's resolved config for definitions built from `env` (also the process
    environment, where the resources read their secrets)."""
    job = build_definitions(Settings.from_env(env)).resolve_job_def(PROCESS_JOB_NAME)
    return ResolvedRunConfig.build(job, {}).execution.execution_engine_config


def test_the_image_setting_overrides_the_code_locations(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert "job_image" not in executor_config(ENV)
    assert executor_config({**ENV, "GAMEVIEW_K8S_IMAGE": "gameview:pinned"})["job_image"] == (
        "gameview:pinned"
    )


def test_definitions_load_with_the_k8s_executor(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    from gameview_assets.definitions import defs as load_definitions

    defs = load_definitions()
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def(PROCESS_JOB_NAME)
    assert job.executor_def.name == "gameview_k8s"
    config = executor_config(ENV)
    assert config["job_namespace"] == ENV["GAMEVIEW_K8S_NAMESPACE"]
    assert config["env_secrets"] == [ENV["GAMEVIEW_K8S_SECRET"]]


def test_multiprocess_is_the_default_and_unknown_executors_are_refused():
    job = build_definitions(Settings.from_env({})).resolve_job_def(PROCESS_JOB_NAME)
    assert job.executor_def.name == "multiprocess"
    with pytest.raises(ValueError, match=r"GAMEVIEW_EXECUTOR='celery' is not one of"):
        Settings.from_env({"GAMEVIEW_EXECUTOR": "celery"})
