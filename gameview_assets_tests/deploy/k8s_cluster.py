"""What the deploy tests share: the Kubernetes schema version, manifests read from the repo, and
the step Jobs dagster-k8s's own step handler would create, captured instead of sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.33.0"
"""The Kubernetes release whose schema (shipped by kubernetes-validate) manifests are checked
against: a release current managed clusters run."""

SECRET_VALUES = {
    "SUPABASE_SERVICE_ROLE_KEY": "service-role-key-that-must-stay-in-the-secret",
    "GAMEVIEW_CALLBACK_SECRET": "callback-secret-that-must-stay-in-the-secret",
    "DAGSTER_PG_PASSWORD": "pg-password-that-must-stay-in-the-secret",
}
"""Secrets set in the code location's environment: none may appear in a manifest."""


def validate(manifest: dict[str, Any]) -> None:
    """Raise kubernetes_validate.ValidationError unless the manifest fits the schema (strict:
    no unknown fields)."""
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def load_documents(relative: str) -> list[dict[str, Any]]:
    """Every YAML document in a repository file (empty documents left out)."""
    text = (REPO / relative).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def as_manifest(model: object) -> dict[str, Any]:
    """A kubernetes client model as the JSON the API server would receive."""
    return kubernetes.client.ApiClient().sanitize_for_serialization(model)


class RecordingBatchApi:
    """Kubernetes' BatchV1Api as far as dagster-k8s uses it to launch a step: records the Job."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, object]] = []

    def create_namespaced_job(self, body: object, namespace: str, **_: object) -> object:
        self.jobs.append((namespace, body))
        return body


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: nobody, user: {token: unused}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody, namespace: gameview}}]
current-context: nowhere
"""
"""A kubeconfig the client loads but never contacts (the batch API is the recorder)."""


def record_step_launches(monkeypatch) -> RecordingBatchApi:
    """dagster-k8s's Kubernetes client from now on, with its batch API a recorder."""
    from dagster_k8s.client import DagsterKubernetesClient

    batch_api = RecordingBatchApi()
    production_client = DagsterKubernetesClient.production_client
    monkeypatch.setattr(
        DagsterKubernetesClient,
        "production_client",
        staticmethod(lambda **_: production_client(batch_api_override=batch_api)),
    )
    return batch_api
