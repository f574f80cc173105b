"""Settings read from the environment (DESIGN.md, "Settings")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where things live and whom to call; Supabase is used when `supabase_url` is set."""

    store_root: Path
    workdir: Path
    dagster_home: Path
    supabase_url: str | None
    supabase_key: str | None
    bucket: str
    callback_url: str | None
    callback_secret: str | None
    callback_allowed_hosts: tuple[str, ...]
    web_max_splats: int  # 0: each preset's own budget for the web files

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
            bucket=env.get("GAMEVIEW_BUCKET", "productions"),
            callback_url=env.get("GAMEVIEW_CALLBACK_URL") or None,
            callback_secret=env.get("GAMEVIEW_CALLBACK_SECRET") or None,
            callback_allowed_hosts=tuple(h.strip().lower() for h in hosts.split(",") if h.strip()),
            web_max_splats=_count(env, "GAMEVIEW_WEB_MAX_SPLATS"),
        )


def _count(env: dict[str, str], name: str) -> int:
    """A non-negative whole number from the environment (0 when unset), or a clear error."""
    text = env.get(name, "").strip().replace("_", "")
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"{name}={env[name]!r} is not a whole number of splats, e.g. 1500000")
    return int(text)
