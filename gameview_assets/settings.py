"""Settings read from the environment (DESIGN.md, "Settings")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Executor = Literal["multiprocess", "k8s"]
EXECUTORS: tuple[Executor, ...] = ("multiprocess", "k8s")


@dataclass(frozen=True)
class KubernetesSettings:
    """Where step pods run under `GAMEVIEW_EXECUTOR=k8s` (docs/deploy.md)."""

    namespace: str
    image: str | None  # None: the code location's own image (the Helm user deployment's)
    secret: str  # the Secret whose keys become every step pod's environment
    workdir_claim: str  # the ReadWriteMany PersistentVolumeClaim mounted at the work directory

    @classmethod
    def from_env(cls, env: dict[str, str]) -> KubernetesSettings:
        return cls(
            namespace=env.get("GAMEVIEW_K8S_NAMESPACE", "gameview"),
            image=env.get("GAMEVIEW_K8S_IMAGE") or None,
            secret=env.get("GAMEVIEW_K8S_SECRET", "gameview-secrets"),
            workdir_claim=env.get("GAMEVIEW_WORKDIR_CLAIM", "gameview-work"),
        )


@dataclass(frozen=True)
class Settings:
    """Where things live and whom to call; Supabase is used when `supabase_url` is set."""

    store_root: Path
    workdir: Path
    dagster_home: Path
    supabase_url: str | None
    supabase_key: str | None
    supabase_db_url: str | None  # the project's database, read-only (the upload sensor's)
    bucket: str
    callback_url: str | None
    callback_secret: str | None
    callback_allowed_hosts: tuple[str, ...]
    web_max_splats: int  # 0: each preset's own budget for the web files
    executor: Executor  # how a run executes its steps: processes here, or pods on Kubernetes
    kubernetes: KubernetesSettings

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        hosts = env.get("GAMEVIEW_CALLBACK_ALLOWED_HOSTS", "")
        return cls(
            store_root=Path(env.get("GAMEVIEW_STORE", ".gameview/store")).absolute(),
            workdir=Path(env.get("GAMEVIEW_WORKDIR", ".gameview/work")).absolute(),
            dagster_home=Path(env.get("DAGSTER_HOME", ".gameview/dagster")).absolute(),
            supabase_url=env.get("SUPABASE_URL") or None,
            supabase_key=env.get("SUPABASE_SERVICE_ROLE_KEY") or None,
            supabase_db_url=env.get("SUPABASE_DB_URL") or None,
            bucket=env.get("GAMEVIEW_BUCKET", "productions"),
            callback_url=env.get("GAMEVIEW_CALLBACK_URL") or None,
            callback_secret=env.get("GAMEVIEW_CALLBACK_SECRET") or None,
            callback_allowed_hosts=tuple(h.strip().lower() for h in hosts.split(",") if h.strip()),
            web_max_splats=_count(env, "GAMEVIEW_WEB_MAX_SPLATS"),
            executor=_executor(env),
            kubernetes=KubernetesSettings.from_env(env),
        )

    def public_env(self) -> dict[str, str]:
        """The settings a step needs, minus the secrets, as environment for processes started
        elsewhere (Kubernetes step pods take the secrets from a Secret instead)."""
        env = {
            "GAMEVIEW_STORE": str(self.store_root),
            "GAMEVIEW_WORKDIR": str(self.workdir),
            "GAMEVIEW_BUCKET": self.bucket,
            "GAMEVIEW_CALLBACK_ALLOWED_HOSTS": ",".join(self.callback_allowed_hosts),
            "GAMEVIEW_WEB_MAX_SPLATS": str(self.web_max_splats),
        }
        if self.supabase_url:
            env["SUPABASE_URL"] = self.supabase_url
        if self.callback_url:
            env["GAMEVIEW_CALLBACK_URL"] = self.callback_url
        return env


def _executor(env: dict[str, str]) -> Executor:
    """`GAMEVIEW_EXECUTOR`, `multiprocess` when unset, or a clear error."""
    value = env.get("GAMEVIEW_EXECUTOR", "").strip().lower() or "multiprocess"
    for known in EXECUTORS:
        if value == known:
            return known
    raise ValueError(
        f"GAMEVIEW_EXECUTOR={env['GAMEVIEW_EXECUTOR']!r} is not one of {', '.join(EXECUTORS)}"
    )


def _count(env: dict[str, str], name: str) -> int:
    """A non-negative whole number from the environment (0 when unset), or a clear error."""
    text = env.get(name, "").strip().replace("_", "")
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"{name}={env[name]!r} is not a whole number of splats, e.g. 1500000")
    return int(text)
