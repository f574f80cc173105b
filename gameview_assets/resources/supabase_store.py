"""The production store on Supabase Storage, through supabase-py with the service-role key."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gameview_assets.core.production import (
    MANIFEST_NAME,
    PRODUCTION_ID_PATTERN,
    RESULT_FILES,
    ProductionKeys,
)
from gameview_assets.resources.store import ManifestRef, content_type_for

if TYPE_CHECKING:
    import httpx
    from storage3._sync.file_api import SyncBucketProxy

PAGE_SIZE = 1000
MANIFEST_CHECK_WORKERS = 8
CHUNK_BYTES = 1 << 20
LAST_RESULT = RESULT_FILES["bundle"]


class SupabaseStore:
    """A Supabase Storage bucket with DESIGN.md's layout.

    Listing uses the v1 list endpoint (`POST /object/list/<bucket>`), which every Supabase
    version has: page through the top-level folders, then ask each folder for its
    `production.json` (a `search`-filtered list of one folder, several folders at a time).
    Downloads stream from `GET /object/<bucket>/<key>` because supabase-py's `download`
    returns the whole object as bytes.
    """

    def __init__(self, url: str, key: str, bucket: str, *, timeout_s: float = 60.0) -> None:
        import httpx
        from supabase import ClientOptions, create_client

        self.url = url.rstrip("/")
        self.bucket_name = bucket
        self._key = key
        self._http: httpx.Client = httpx.Client(timeout=timeout_s)
        client = create_client(self.url, key, ClientOptions(httpx_client=self._http))
        self._bucket: SyncBucketProxy = client.storage.from_(bucket)

    def describe(self) -> str:
        return f"supabase://{self.bucket_name}"

    def _list(self, prefix: str, search: str | None = None) -> Iterator[dict[str, Any]]:
        """Every entry directly under `prefix` (folders have `id` None), page by page."""
        offset = 0
        while True:
            options: dict[str, Any] = {
                "limit": PAGE_SIZE,
                "offset": offset,
                "sortBy": {"column": "name", "order": "asc"},
            }
            if search:
                options["search"] = search
            page = self._bucket.list(prefix, options)
            yield from page
            if len(page) < PAGE_SIZE:
                return
            offset += len(page)

    def manifest_version(self, production_id: str) -> str | None:
        for entry in self._list(production_id, search=MANIFEST_NAME):
            if entry.get("name") == MANIFEST_NAME and entry.get("id") is not None:
                return _version(entry)
        return None

    def list_manifests(self) -> Iterator[ManifestRef]:
        folders = [
            entry["name"]
            for entry in self._list("")
            if entry.get("id") is None and PRODUCTION_ID_PATTERN.fullmatch(entry.get("name", ""))
        ]
        with ThreadPoolExecutor(MANIFEST_CHECK_WORKERS) as pool:
            versions = list(pool.map(self.manifest_version, folders))
        for production_id, version in zip(folders, versions, strict=True):
            if version is not None:
                yield ManifestRef(production_id, version)

    def read_text(self, key: str) -> str:
        return self._bucket.download(key).decode("utf-8")

    def list_files(self, prefix: str) -> list[str]:
        prefix = prefix.rstrip("/")
        return [f"{prefix}/{e['name']}" for e in self._list(prefix) if e.get("id") is not None]

    def _object_url(self, key: str) -> str:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"storage key {key!r} is not a plain relative key")
        return f"{self.url}/storage/v1/object/{quote(self.bucket_name)}/{quote(key)}"

    def download(self, key: str, dest: Path) -> None:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
        headers = {"apikey": self._key, "Authorization": f"Bearer {self._key}"}
        try:
            with self._http.stream("GET", self._object_url(key), headers=headers) as response:
                if response.status_code != 200:
                    response.read()
                    problem = (
                        f"{self.describe()}/{key}: HTTP {response.status_code} {response.text}"
                    )
                    # Older Storage versions answer a missing object with 400, newer with 404.
                    if response.status_code in (400, 404):
                        raise FileNotFoundError(problem)
                    raise OSError(problem)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        out.write(chunk)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)

    def upload(self, key: str, source: Path) -> None:
        self._bucket.upload(
            key,
            Path(source),
            {"content-type": content_type_for(key), "upsert": "true", "cache-control": "60"},
        )

    def publish_results(self, production_id: str, files: Mapping[str, Path]) -> dict[str, str]:
        """Upload every file, `bundle.json` last.

        Storage has no multi-object transaction, so completeness is signalled by order: a
        consumer that sees a new bundle.json (or gets the `completed` callback) sees all files.
        """
        production = ProductionKeys(production_id)
        ordered = sorted(files, key=lambda name: name == LAST_RESULT)
        keys = {}
        for name in ordered:
            keys[name] = production.result(name)
            self.upload(keys[name], files[name])
        return keys

    def signed_url(self, key: str, expires_in_s: int = 7 * 24 * 3600) -> str:
        signed = self._bucket.create_signed_url(key, expires_in_s)["signedURL"]
        if not signed:
            raise FileNotFoundError(f"{self.describe()}/{key}: no signed URL returned")
        return signed

    def exists(self, key: str) -> bool:
        folder, _, name = key.rpartition("/")
        return any(
            entry.get("name") == name and entry.get("id") is not None
            for entry in self._list(folder, search=name)
        )

    def close(self) -> None:
        self._http.close()


def _version(entry: Mapping[str, Any]) -> str:
    """A short digest of what changes when the object is rewritten (time, ETag, size)."""
    metadata = entry.get("metadata") or {}
    basis = "|".join(
        str(v)
        for v in (
            entry.get("updated_at"),
            entry.get("id"),
            metadata.get("eTag"),
            metadata.get("size"),
        )
    )
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]
