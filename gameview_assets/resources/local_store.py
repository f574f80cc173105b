"""The embedded default store: a local folder with the bucket's layout."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from gameview_assets.core.production import PRODUCTION_ID_PATTERN, ProductionKeys
from gameview_assets.resources.store import ManifestRef


class LocalStore:
    """A folder shaped like the bucket; results appear by one atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"storage key {key!r} is not a plain relative key")
        return self.root.joinpath(*parts)

    def list_manifests(self) -> Iterator[ManifestRef]:
        if not self.root.is_dir():
            return
        for entry in sorted(self.root.iterdir()):
            version = self.manifest_version(entry.name)
            if version is not None:
                yield ManifestRef(entry.name, version)

    def manifest_version(self, production_id: str) -> str | None:
        if not PRODUCTION_ID_PATTERN.fullmatch(production_id):
            return None
        manifest = self._path(ProductionKeys(production_id).manifest)
        if not manifest.is_file():
            return None
        stat = manifest.stat()
        return f"{stat.st_mtime_ns}-{stat.st_size}"

    def read_text(self, key: str) -> str:
        return self._path(key).read_text(encoding="utf-8")

    def list_files(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return [f"{prefix}/{p.name}" for p in sorted(folder.iterdir()) if p.is_file()]

    def download(self, key: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(key), dest)

    def upload(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)

    def publish_results(self, production_id: str, files: Mapping[str, Path]) -> dict[str, str]:
        keys = ProductionKeys(production_id)
        final = self._path(keys.results)
        staging = final.with_name(f".{final.name}.{uuid.uuid4().hex}.partial")
        staging.mkdir(parents=True)
        try:
            for name, source in files.items():
                shutil.copyfile(source, staging / name)
            if final.exists():
                retired = final.with_name(f".{final.name}.{uuid.uuid4().hex}.old")
                final.rename(retired)
                staging.rename(final)
                shutil.rmtree(retired)
            else:
                staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return {name: keys.result(name) for name in files}

    def signed_url(self, key: str, expires_in_s: int = 7 * 24 * 3600) -> str:
        return self._path(key).as_uri()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def close(self) -> None:
        pass
