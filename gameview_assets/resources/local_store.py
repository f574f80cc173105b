"""The embedded default store: a local folder with the bucket's layout."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from stat import S_ISREG

from gameview_assets.core.production import PRODUCTION_ID_PATTERN, ProductionKeys


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

    def list_production_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        with os.scandir(self.root) as entries:
            names = [e.name for e in entries if e.is_dir()]
        return sorted(n for n in names if PRODUCTION_ID_PATTERN.fullmatch(n))

    def manifest_versions(self, production_ids: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        for production_id in production_ids:
            yield production_id, self.manifest_version(production_id)

    def manifest_version(self, production_id: str) -> str | None:
        if not PRODUCTION_ID_PATTERN.fullmatch(production_id):
            return None
        return self.object_version(ProductionKeys(production_id).manifest)

    def object_version(self, key: str) -> str | None:
        try:
            stat = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not S_ISREG(stat.st_mode):
            return None
        return f"{stat.st_mtime_ns}-{stat.st_size}"

    def _object(self, key: str) -> Path:
        """The file of an existing object; `FileNotFoundError` otherwise (a folder too)."""
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"{key} does not exist in {self.root}")
        return path

    def read_text(self, key: str) -> str:
        return self._object(key).read_text(encoding="utf-8")

    def list_files(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return [f"{prefix}/{p.name}" for p in sorted(folder.iterdir()) if p.is_file()]

    def download(self, key: str, dest: Path) -> None:
        source = self._object(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)

    def upload(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)

    def publish_results(
        self,
        production_id: str,
        files: Mapping[str, Path],
        before_commit: Callable[[], None] | None = None,
    ) -> dict[str, str]:
        keys = ProductionKeys(production_id)
        final = self._path(keys.results)
        staging = self._path(keys.staging(uuid.uuid4().hex))
        staging.mkdir(parents=True)
        try:
            for name, source in files.items():
                shutil.copyfile(source, staging / name)
            if before_commit is not None:
                before_commit()
            if final.exists():
                retired = self._path(keys.staging(uuid.uuid4().hex))
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
        return self._object(key).as_uri()

    def exists(self, key: str) -> bool:
        """An object is a file: a folder is not one (as in the bucket)."""
        return self._path(key).is_file()

    def close(self) -> None:
        pass
