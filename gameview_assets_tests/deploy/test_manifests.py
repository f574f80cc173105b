"""deploy/k8s/ and deploy/helm/values.yaml: valid Kubernetes objects that agree with each other
and with the settings' defaults, secrets only by reference. No cluster or Helm binary here: the
objects the chart builds from our values are assembled as the chart's templates place them."""

from __future__ import annotations

from typing import Any

import pytest

from gameview_assets.settings import Settings
from gameview_assets_tests.deploy.k8s_cluster import SECRET_VALUES, load_documents, validate

SECRET_NAMES = set(SECRET_VALUES)


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    (only,) = load_documents("deploy/helm/values.yaml")
    return only


@pytest.fixture(scope="module")
def code_server(values) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


def by_kind(relative: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in load_documents(relative)}


def test_raw_manifests_are_valid_kubernetes_objects():
    for relative in ("deploy/k8s/workdir-pvc.yaml", "deploy/k8s/secrets.example.yaml"):
        for document in load_documents(relative):
            validate(document)


def test_the_work_directory_claim_is_read_write_many_and_the_default_name():
    claims = by_kind("deploy/k8s/workdir-pvc.yaml")
    claim = claims["PersistentVolumeClaim", Settings.from_env({}).kubernetes.workdir_claim]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_secret_templates_hold_the_secrets_and_no_values():
    secrets = by_kind("deploy/k8s/secrets.example.yaml")
    service = secrets["Secret", Settings.from_env({}).kubernetes.secret]["stringData"]
    assert set(service) == {"SUPABASE_SERVICE_ROLE_KEY", "GAMEVIEW_CALLBACK_SECRET"}
    postgres = secrets["Secret", "gameview-postgresql"]["stringData"]
    assert set(postgres) == {"postgresql-password"}  # the key dagster-k8s and the chart read
    assert not any({**service, **postgres}.values()), "a template, never real values"


def test_the_code_server_pod_the_chart_renders_is_valid(code_server):
    """The user deployment's container and volumes placed in a Pod as the chart's
    deployment-user.yaml template places them."""
    image = code_server["image"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": code_server["name"]},
        "spec": {
            "containers": [
                {
                    "name": code_server["name"],
                    "image": f"{image['repository']}:{image['tag']}",
                    "imagePullPolicy": image["pullPolicy"],
                    "args": ["dagster", "api", "grpc", *code_server["dagsterApiGrpcArgs"]],
                    "ports": [{"containerPort": code_server["port"], "name": "grpc"}],
                    "env": [{"name": k, "value": v} for k, v in code_server["env"].items()],
                    "envFrom": [{"secretRef": ref} for ref in code_server["envSecrets"]],
                    "volumeMounts": code_server["volumeMounts"],
                    "resources": code_server["resources"],
                }
            ],
            "volumes": code_server["volumes"],
        },
    }
    validate(pod)


def test_the_code_server_runs_steps_on_kubernetes_with_the_shared_volume(code_server):
    settings = Settings.from_env(code_server["env"])
    assert settings.executor == "k8s"
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in code_server["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in code_server["volumeMounts"]}
    assert claims[mounts[str(settings.workdir)]] == settings.kubernetes.workdir_claim
    assert {"name": settings.kubernetes.secret} in code_server["envSecrets"]
    assert code_server["includeConfigInLaunchedRuns"]["enabled"]  # runs inherit env and volume


def test_no_secret_is_inline(values, code_server):
    assert not SECRET_NAMES & set(code_server["env"])
    assert not values["generatePostgresqlPasswordSecret"]
    assert not values["postgresql"]["postgresqlPassword"]
    secret = values["global"]["postgresqlSecretName"]
    assert values["postgresql"]["existingSecret"] == secret
    assert ("Secret", secret) in by_kind("deploy/k8s/secrets.example.yaml")


def test_the_daemon_monitors_runs_and_retries_crashes_only(values):
    daemon = values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    monitoring = daemon["runMonitoring"]
    assert monitoring["enabled"] and monitoring["freeSlotsAfterRunEndSeconds"] > 0
    retries = daemon["runRetries"]
    assert retries["enabled"] and retries["maxRetries"] >= 1
    assert retries["retryOnAssetOrOpFailure"] is False  # a bad capture is not retried
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    pools = values["additionalInstanceConfig"]["concurrency"]["pools"]
    assert pools["default_limit"] >= 1 and pools["granularity"] == "op"


def test_the_run_pods_resources_are_valid(values):
    resources = values["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "run"},
        "spec": {"containers": [{"name": "dagster", "image": "run", "resources": resources}]},
    }
    validate(pod)


def fields(names: str) -> set[str]:
    return set(names.split())


CHART_KEYS: dict[tuple[str | int, ...], set[str]] = {
    # The fields of the chart's values schema (helm/dagster/schema/schema/charts/ in the Dagster
    # repository, from which its values.schema.json is generated), for every section we set.
    (): fields(
        """dagsterWebserver dagster-user-deployments postgresql generatePostgresqlPasswordSecret
        generateCeleryConfigSecret rabbitmq redis flower ingress imagePullSecrets
        computeLogManager scheduler runLauncher pythonLogs dagsterDaemon busybox migrate
        telemetry serviceAccount global retention additionalInstanceConfig"""
    ),
    ("global",): fields(
        "postgresqlSecretName dagsterHome serviceAccountName celeryConfigSecretName"
    ),
    # existingSecret: the bundled PostgreSQL subchart's own value.
    ("postgresql",): fields(
        """image enabled postgresqlHost postgresqlUsername postgresqlPassword postgresqlDatabase
        postgresqlParams postgresqlScheme service existingSecret"""
    ),
    ("dagster-user-deployments",): fields("enabled enableSubchart imagePullSecrets deployments"),
    ("dagster-user-deployments", "deployments", 0): fields(
        """name image dagsterApiGrpcArgs codeServerArgs includeConfigInLaunchedRuns port env
        envConfigMaps envSecrets annotations nodeSelector affinity tolerations podSecurityContext
        securityContext resources livenessProbe readinessProbe startupProbe labels volumeMounts
        volumes schedulerName"""
    ),
    ("runLauncher",): fields("type config"),
    ("runLauncher", "config", "k8sRunLauncher"): fields(
        """image imagePullPolicy jobNamespace loadInclusterConfig kubeconfigFile envConfigMaps
        envSecrets envVars volumeMounts volumes labels failPodOnRunFailure resources
        schedulerName securityContext runK8sConfig"""
    ),
    ("dagsterDaemon",): fields(
        """enabled image runCoordinator heartbeatTolerance env envConfigMaps envSecrets
        deploymentLabels labels nodeSelector affinity tolerations podSecurityContext
        securityContext resources checkDbReadyInitContainer livenessProbe readinessProbe
        startupProbe annotations runMonitoring runRetries sensors schedules backfills
        schedulerName logFormat volumeMounts volumes initContainerResources extraContainers
        extraPrependedInitContainers"""
    ),
    ("dagsterDaemon", "runCoordinator"): fields("enabled type config"),
    ("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator"): fields(
        """maxConcurrentRuns tagConcurrencyLimits dequeueIntervalSeconds dequeueNumWorkers
        dequeueUseThreads blockOpConcurrencyLimitedRuns"""
    ),
    # Free-form in the schema: the keys templates/configmap-instance.yaml renders.
    ("dagsterDaemon", "runMonitoring"): fields(
        """enabled startTimeoutSeconds cancelTimeoutSeconds maxResumeRunAttempts
        pollIntervalSeconds freeSlotsAfterRunEndSeconds"""
    ),
    ("dagsterDaemon", "runRetries"): fields("enabled maxRetries retryOnAssetOrOpFailure"),
}


@pytest.mark.parametrize("path", list(CHART_KEYS), ids=lambda path: ".".join(map(str, path)))
def test_values_use_only_keys_the_chart_knows(values, path):
    section: Any = values
    for step in path:
        section = section[step]
    assert set(section) <= CHART_KEYS[path], set(section) - CHART_KEYS[path]
