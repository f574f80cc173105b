"""Kubernetes: the step executor for `GAMEVIEW_EXECUTOR=k8s` and each step's pod resources.

Under dagster-k8s's `k8s_job_executor` every step runs in its own pod. The `dagster-k8s/config`
op tags below say what a step's pod asks for; the multiprocess executor ignores them, so the
assets carry them everywhere. Secrets reach the pods only as a reference to a Kubernetes Secret
(`env_secrets`), never as values in the executor config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from gameview_assets.settings import Settings

K8S_CONFIG_TAG = "dagster-k8s/config"
"""dagster-k8s's op tag for raw pod/container config (public name, spelled once here)."""
GPU_RESOURCE = "nvidia.com/gpu"
"""The NVIDIA device plugin's resource; GPU nodes are commonly tainted with it (NoSchedule)."""
WORKDIR_VOLUME = "gameview-work"  # the volume's name inside each step pod


def _pod_config(
    requests: Mapping[str, str],
    limits: Mapping[str, str],
    tolerations: list[dict[str, str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """A `dagster-k8s/config` tag value: container resources, and tolerations when given."""
    config: dict[str, dict[str, Any]] = {
        "container_config": {"resources": {"requests": dict(requests), "limits": dict(limits)}}
    }
    if tolerations:
        config["pod_spec_config"] = {"tolerations": tolerations}
    return {K8S_CONFIG_TAG: config}


SPLAT_OP_TAGS = _pod_config(
    # No node selector: only nodes whose device plugin advertises nvidia.com/gpu can satisfy
    # the request, whatever labels a cloud puts on them; the toleration lets the pod onto
    # GPU nodes tainted so that nothing else lands there.
    requests={"cpu": "4", "memory": "24Gi", GPU_RESOURCE: "1"},
    limits={"memory": "48Gi", GPU_RESOURCE: "1"},
    tolerations=[{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
)
"""`splat` trains on one GPU (with the `gpu` pool limiting how many train at once)."""

SPARSE_MODEL_OP_TAGS = _pod_config(
    requests={"cpu": "8", "memory": "16Gi"},
    limits={"memory": "32Gi"},
)
"""`sparse_model` runs COLMAP's feature extraction, matching and mapping on every core it gets."""


def k8s_executor(settings: Settings) -> dg.ExecutorDefinition:
    """dagster-k8s's `k8s_job_executor`, one pod per step, configured from the settings.

    Every step pod mounts the ReadWriteMany claim at the work directory (the stages hand
    files to each other there), gets the code location's settings minus the secrets, and takes
    the secrets from the Secret by reference.
    """
    from dagster_k8s import k8s_job_executor

    k8s = settings.kubernetes
    workdir = str(settings.workdir)
    config: dict[str, Any] = {
        "job_namespace": k8s.namespace,
        "env_secrets": [k8s.secret],
        "env_vars": [f"{name}={value}" for name, value in settings.public_env().items()],
        "volumes": [
            {
                "name": WORKDIR_VOLUME,
                "persistentVolumeClaim": {"claimName": k8s.workdir_claim},
            }
        ],
        "volume_mounts": [{"name": WORKDIR_VOLUME, "mountPath": workdir}],
    }
    if k8s.image:
        config["job_image"] = k8s.image
    return k8s_job_executor.configured(config, name="gameview_k8s")
