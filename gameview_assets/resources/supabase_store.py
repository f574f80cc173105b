"""The production store on Supabase Storage: supabase-py for listing and signing, httpx for
the byte streams (HEAD, download, upload, resumable upload)."""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from urllib.parse import quote

from gameview_assets.core.production import (
    RESULT_FILES,
    InvalidProductionError,
    ProductionKeys,
    manifest_key,
)
from gameview_assets.resources.store import (
    ResultTooLargeError,
    StorageAccessError,
    StorageUnavailableError,
    content_type_for,
)
from gameview_assets.resources.tus import TusError, TusUploader, file_range

if TYPE_CHECKING:
    import httpx
    from storage3._sync.file_api import SyncBucketProxy

PAGE_SIZE = 1000
MANIFEST_CHECK_WORKERS = 8
RESUMABLE_THRESHOLD = 6 * 1024 * 1024
"""Above this, uploads use the resumable (TUS) endpoint, as Supabase recommends."""
DOWNLOAD_RETRIES = 3
LAST_RESULT = RESULT_FILES["bundle"]
VALID_KEY = re.compile(r"^[A-Za-z0-9_/!\-.*'() &$@=;:+,?]+$")
"""The characters Supabase Storage accepts in a key (its `isValidKey`); others get InvalidKey."""

T = TypeVar("T")


class StorageError(OSError):
    """Supabase Storage answered with an error other than not-found, a refusal of the
    service's key or bucket, or an outage."""


class SupabaseStore:
    """A Supabase Storage bucket with DESIGN.md's layout.

    The server lists without regard to case (`lower(name)`) but fetches by the exact key, so
    a listing alone never decides that an object exists: `exists` and `manifest_version` ask
    for the exact key (`HEAD /object/<bucket>/<key>`), and `list_files` keeps only listed
    names that exist under the exact prefix. Listing uses the v1 endpoint (`POST
    /object/list/<bucket>`), which every Supabase version has, page by page.
    A missing object is `FileNotFoundError` from every call, whether the server answers 404 or
    (as it does) 400 with `"statusCode":"404"` NoSuchKey in the body. A refused key (403) or
    a bucket that is not there (NoSuchBucket, also what a key that does not verify gets on
    reads) is `StorageAccessError`, never a missing object; `check_access` asks up front,
    since a HEAD's bare 400 cannot tell them apart.
    """

    def __init__(self, url: str, key: str, bucket: str, *, timeout_s: float = 60.0) -> None:
        import httpx
        from supabase import ClientOptions, create_client

        self.url = url.rstrip("/")
        self.bucket_name = bucket
        self._key = key
        self._http: httpx.Client = httpx.Client(
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=MANIFEST_CHECK_WORKERS * 2),
        )
        client = create_client(self.url, key, ClientOptions(httpx_client=self._http))
        self._storage = client.storage
        self._bucket: SyncBucketProxy = client.storage.from_(bucket)
        self._bucket_limit: tuple[int | None] | None = None
        """The bucket's file size limit once read (a 1-tuple: None is a valid limit)."""
        self.resumable_threshold = RESUMABLE_THRESHOLD
        self.download_retries = DOWNLOAD_RETRIES
        self.retry_backoff_s = 0.5
        self.tus_options: dict[str, Any] = {}

    def describe(self) -> str:
        return f"supabase://{self.bucket_name}"

    @property
    def _auth(self) -> dict[str, str]:
        return {"apikey": self._key, "Authorization": f"Bearer {self._key}"}

    def _where(self, key: str) -> str:
        return f"{self.describe()}/{key}" if key else self.describe()

    def _refusal(self, status: object, code: object, message: object) -> str | None:
        """Why storage refuses the service itself (its key, its bucket), for people; None
        for any other answer."""
        if code == "NoSuchBucket" or str(message) == "Bucket not found":
            return (
                f"bucket {self.bucket_name!r} was not found, or the key cannot see it (a key "
                "that does not verify reads as the anonymous role, which sees no private bucket)"
            )
        if str(status) == "403" or code in ("AccessDenied", "InvalidJWT"):
            return (
                f"the key (SUPABASE_SERVICE_ROLE_KEY) was refused ({message or code}): it is "
                "wrong, rotated or expired"
            )
        return None

    @contextmanager
    def _mapped_errors(self, key: str) -> Iterator[None]:
        """supabase-py's `StorageApiError` as `StorageAccessError` when the key or bucket is
        refused, `FileNotFoundError` when the object is missing; a connection refused or
        dropped, or a 5xx answer, as `StorageUnavailableError`."""
        import httpx
        from storage3.exceptions import StorageApiError

        try:
            yield
        except StorageApiError as exc:
            refusal = self._refusal(exc.status, exc.code, exc.message)
            if refusal:
                raise StorageAccessError(self._where(key), refusal) from exc
            if _is_not_found(exc.status, exc.code, exc.message):
                raise FileNotFoundError(f"{self._where(key)} does not exist") from exc
            if str(exc.status).startswith("5"):
                raise StorageUnavailableError(self._where(key), exc.message) from exc
            raise
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise StorageUnavailableError(self._where(key), detail) from exc

    def _check(self, response: httpx.Response, key: str) -> None:
        """Raise for an error answer: `StorageAccessError` for a refused key or bucket,
        `FileNotFoundError` for a missing object, `StorageUnavailableError` for a 5xx (a
        gateway or server down)."""
        if response.is_success:
            return
        if response.is_server_error:
            raise StorageUnavailableError(
                self._where(key), f"HTTP {response.status_code} {response.text[:200]}".strip()
            )
        status, code, message = _error_of(response)
        refusal = self._refusal(status, code, message)
        if refusal:
            raise StorageAccessError(self._where(key), refusal)
        if _is_not_found(status, code, message):
            raise FileNotFoundError(f"{self._where(key)} does not exist")
        raise StorageError(
            f"{self._where(key)}: HTTP {response.status_code} {code or ''} {message}".strip()
        )

    def check_access(self) -> None:
        """Ask for the bucket (`GET /bucket/<name>`, a route that verifies the key): raise
        `StorageAccessError` saying what is wrong when the key is refused or the bucket is
        not there, `StorageUnavailableError` when storage does not answer. A misspelled
        bucket otherwise lists as empty (200 `[]`) and the service would wait forever; a
        refused key would make every object look missing. Keeps the bucket's size limit."""
        from storage3.exceptions import StorageApiError

        with self._mapped_errors(""):
            try:
                limit = self._storage.get_bucket(self.bucket_name).file_size_limit
            except StorageApiError as exc:
                if exc.code == "NoSuchBucket" or exc.message == "Bucket not found":
                    raise StorageAccessError(self.describe(), self._missing_bucket()) from exc
                raise
        self._bucket_limit = (int(limit) if limit else None,)

    def _missing_bucket(self) -> str:
        """The bucket is not there: say which are, or that the key sees none at all."""
        try:
            names = sorted(bucket.name for bucket in self._storage.list_buckets())
        except Exception:  # only improves the message
            names = []
        if names:
            return (
                f"there is no bucket {self.bucket_name!r} at {self.url} (its buckets: "
                f"{', '.join(names)}): set GAMEVIEW_BUCKET to one of them"
            )
        return (
            f"no bucket {self.bucket_name!r} at {self.url}, and the key sees no bucket at all: "
            "create the bucket, and check that the key is the service_role key (an anon or "
            "user key sees no private bucket)"
        )

    # listing

    def _list(self, prefix: str, search: str | None = None) -> Iterator[dict[str, Any]]:
        """Every entry directly under `prefix` (folders have `id` None), page by page.
        The server matches `prefix` and `search` without regard to case."""
        offset = 0
        while True:
            options: dict[str, Any] = {
                "limit": PAGE_SIZE,
                "offset": offset,
                "sortBy": {"column": "name", "order": "asc"},
            }
            if search:
                options["search"] = search
            with self._mapped_errors(prefix):
                page = self._bucket.list(prefix, options)
            yield from page
            if len(page) < PAGE_SIZE:
                return
            offset += len(page)

    def list_folders(self) -> list[str]:
        """Folders that differ only in case come back as one (`production_ids` tries each
        name lowercased too)."""
        return sorted(
            entry["name"]
            for entry in self._list("")
            if entry.get("id") is None and isinstance(entry.get("name"), str)
        )

    def manifest_versions(self, folders: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        return _map_in_batches(self.manifest_version, folders, MANIFEST_CHECK_WORKERS)

    def manifest_version(self, folder: str) -> str | None:
        try:
            key = manifest_key(folder)
        except InvalidProductionError:
            return None
        return self.object_version(key)

    def object_version(self, key: str) -> str | None:
        headers = self._head(key)
        if headers is None:
            return None
        basis = "|".join(
            headers.get(name, "") for name in ("etag", "last-modified", "content-length")
        )
        return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]

    def list_files(self, prefix: str) -> list[str]:
        prefix = prefix.rstrip("/")
        names = sorted({e["name"] for e in self._list(prefix) if e.get("id") is not None})
        keys = [f"{prefix}/{name}" for name in names]
        found = _map_in_batches(self.exists, keys, MANIFEST_CHECK_WORKERS)
        return [key for key, exists in found if exists]

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def _head(self, key: str) -> httpx.Headers | None:
        """The exact object's headers, or None when there is no such object."""
        with self._mapped_errors(key):
            response = self._http.head(self._object_url(key), headers=self._auth)
        if response.status_code in (400, 404):  # HEAD has no body to tell them apart
            return None
        self._check(response, key)
        return response.headers

    # bytes

    def _object_url(self, key: str) -> str:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"storage key {key!r} is not a plain relative key")
        if not VALID_KEY.fullmatch(key):
            raise ValueError(
                f"storage key {key!r} has characters Supabase Storage refuses (InvalidKey): "
                "use ASCII letters, digits and - _ . ! * ' ( ) & $ @ = ; : + , ? or space"
            )
        return f"{self.url}/storage/v1/object/{quote(self.bucket_name)}/{quote(key)}"

    def read_text(self, key: str) -> str:
        with self._mapped_errors(key):
            response = self._http.get(self._object_url(key), headers=self._auth)
        self._check(response, key)
        return response.content.decode("utf-8")

    def download(self, key: str, dest: Path) -> None:
        """Stream the object to `dest` (renamed into place when whole). A connection dropped
        mid-transfer resumes from the bytes already written (`Range`), `download_retries`
        times in a row at most, waiting `retry_backoff_s`, doubled each time."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
        url = self._object_url(key)
        try:
            with partial.open("wb") as out:
                failures = 0
                while not self._download_into(out, url, key):
                    failures += 1
                    if failures > self.download_retries:
                        raise StorageUnavailableError(
                            self._where(key),
                            f"the connection failed {failures} times in a row "
                            f"({out.tell():,} bytes had arrived)",
                        )
                    time.sleep(self.retry_backoff_s * 2 ** (failures - 1))
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)

    def _download_into(self, out: BinaryIO, url: str, key: str) -> bool:
        """Append the rest of the object to `out`; False when the connection failed (the
        bytes that arrived are kept), so the caller can go on from there."""
        import httpx

        offset = out.tell()
        headers = {**self._auth, **({"Range": f"bytes={offset}-"} if offset else {})}
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                if not response.is_success:
                    response.read()
                    self._check(response, key)
                if offset and response.status_code != 206:  # the whole object came back
                    out.seek(0)
                    out.truncate()
                for chunk in response.iter_bytes():  # as they arrive: none lost if cut off
                    out.write(chunk)
        except httpx.TransportError:
            out.flush()
            return False
        return True

    def bucket_size_limit(self) -> int | None:
        """The bucket's own file size limit in bytes; None when it has none (only the
        project's, which the API does not report) or the bucket cannot be read."""
        if self._bucket_limit is None:
            try:
                limit = self._storage.get_bucket(self.bucket_name).file_size_limit
            except Exception:  # the limit only improves a check and a message
                limit = None
            self._bucket_limit = (int(limit) if limit else None,)
        return self._bucket_limit[0]

    def upload(self, key: str, source: Path) -> None:
        """Upsert one object from disk, never whole in memory: a streamed POST up to
        `resumable_threshold`, the resumable (TUS) endpoint above it."""
        source = Path(source)
        size = source.stat().st_size
        url = self._object_url(key)
        if size > self.resumable_threshold:
            return self._upload_resumable(key, source, size)
        headers = {
            **self._auth,
            "Content-Type": content_type_for(key),
            "Content-Length": str(size),
            "cache-control": "max-age=60",
            "x-upsert": "true",
        }
        with source.open("rb") as f, self._mapped_errors(key):
            response = self._http.post(url, headers=headers, content=file_range(f, 0, size))
        if _too_large(response):
            raise self._too_large(key, size)
        self._check(response, key)
        return None

    def _upload_resumable(self, key: str, source: Path, size: int) -> None:
        uploader = TusUploader(
            self._http, f"{self.url}/storage/v1/upload/resumable", self._auth, **self.tus_options
        )
        metadata = {
            "bucketName": self.bucket_name,
            "objectName": key,
            "contentType": content_type_for(key),
            "cacheControl": "60",
        }
        try:
            with self._mapped_errors(key):
                uploader.upload(source, metadata, {"x-upsert": "true"})
        except TusError as exc:
            if _too_large(exc.response):
                raise self._too_large(key, size) from exc
            self._check(exc.response, key)
            raise
        except OSError as exc:  # the uploader's retries ran out: storage stayed away
            raise StorageUnavailableError(self._where(key), str(exc)) from exc

    def _too_large(self, key: str, size: int) -> ResultTooLargeError:
        return ResultTooLargeError(key, size, self.bucket_size_limit(), self.describe())

    def publish_results(
        self,
        production_id: str,
        files: Mapping[str, Path],
        before_commit: Callable[[], None] | None = None,
    ) -> dict[str, str]:
        """Upload every file under a staging folder of this publish's own, then make them the
        results: remove the old ones (one request: the server deletes them in one
        transaction) and move each staged file in, `bundle.json` last, as the marker that the
        set is complete. Moves are renames on the server, so the window without a
        `bundle.json` is short, and a failure in it leaves none. Whatever fails, the staging
        folder and any file moved in are removed again (as far as storage answers).

        A file over the bucket's limit is refused before anything is uploaded; one over the
        project's (unlisted) limit fails first, being the largest.
        """
        production = ProductionKeys(production_id)
        sizes = {name: Path(files[name]).stat().st_size for name in files}
        limit = self.bucket_size_limit()
        for name, size in sizes.items():
            if limit is not None and size > limit:
                raise ResultTooLargeError(production.result(name), size, limit, self.describe())
        ordered = sorted(files, key=lambda name: (name == LAST_RESULT, -sizes[name]))
        token = uuid.uuid4().hex
        staged: dict[str, str] = {}
        moved: list[str] = []
        try:
            for name in ordered:
                staged[name] = production.staged_result(token, name)
                self.upload(staged[name], files[name])
            if before_commit is not None:
                before_commit()
            self._remove(self.list_files(production.results))
            for name in ordered:
                self._move(staged[name], production.result(name))
                moved.append(production.result(name))
        except BaseException:
            with suppress(Exception):  # storage may be what failed: its error is the one to see
                self._remove([*moved, *staged.values()])
            raise
        return {name: production.result(name) for name in ordered}

    def _move(self, source: str, destination: str) -> None:
        """A rename on the server (`POST /object/move`); refused if `destination` exists."""
        self._object_url(destination)
        with self._mapped_errors(source):
            self._bucket.move(source, destination)

    def _remove(self, keys: list[str]) -> None:
        """Delete objects in one request; keys that do not exist are skipped by the server."""
        if keys:
            with self._mapped_errors(keys[0]):
                self._bucket.remove(keys)

    def signed_url(self, key: str, expires_in_s: int = 7 * 24 * 3600) -> str:
        self._object_url(key)
        with self._mapped_errors(key):
            signed = self._bucket.create_signed_url(key, expires_in_s)["signedURL"]
        if not signed:
            raise FileNotFoundError(f"{self._where(key)}: no signed URL returned")
        return signed

    def close(self) -> None:
        self._http.close()


def _error_of(response: httpx.Response) -> tuple[str, str | None, str]:
    """(statusCode, error code, message) of a Storage error answer; the HTTP status when the
    body says nothing."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return (
            str(body.get("statusCode") or response.status_code),
            body.get("code") or body.get("error"),
            str(body.get("message") or ""),
        )
    return str(response.status_code), None, response.text


def _too_large(response: httpx.Response) -> bool:
    """The size refusal in each of its forms: HTTP 400 with `"statusCode":"413"`
    EntityTooLarge (REST uploads), or a plain-text HTTP 413 (TUS)."""
    status, code, _ = _error_of(response)
    return status == "413" or code == "EntityTooLarge"


def _is_not_found(status: object, code: object, message: object) -> bool:
    """A missing object (NoSuchKey; the older `not_found`). Callers ask `_refusal` first:
    a missing bucket carries `"statusCode":"404"` too."""
    return (
        str(status) == "404"
        or code in ("not_found", "NoSuchKey")
        or str(message).lower() == "object not found"
    )


def _map_in_batches(
    fn: Callable[[str], T], items: Iterable[str], workers: int
) -> Iterator[tuple[str, T]]:
    """`(item, fn(item))` in order, `workers` at a time, lazily: stopping early stops work."""
    iterator = iter(items)
    with ThreadPoolExecutor(workers) as pool:
        while batch := list(islice(iterator, workers * 4)):
            yield from zip(batch, pool.map(fn, batch), strict=True)
