"""A small TUS 1.0.0 client over httpx, for Supabase Storage's resumable uploads.

The TUS client on PyPI (tuspy 1.1.0) is built on `requests`, `aiohttp` and `tinydb`, so it
cannot share the store's httpx client (its connection pool, timeouts, one per run), and it
would add three dependencies for three requests. The protocol needs only these: POST
creates an upload and answers its `Location`; PATCH sends bytes at `Upload-Offset`; HEAD says
how many bytes the server holds, so an upload resumes where a dropped connection left it.
The file is read from disk one piece at a time: nothing holds it whole in memory.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import httpx

TUS_VERSION = "1.0.0"
CHUNK_BYTES = 6 * 1024 * 1024
"""Supabase requires 6 MiB chunks (the last one may be smaller)."""
READ_BYTES = 1 << 20
RETRY_STATUSES = frozenset({423, 429, 500, 502, 503, 504})


class TusError(OSError):
    """The server refused the upload; `response` is its answer."""

    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(message)
        self.response = response


def encode_metadata(metadata: Mapping[str, str]) -> str:
    """`Upload-Metadata`: comma-separated `name base64(value)` pairs."""
    return ",".join(
        f"{name} {base64.b64encode(value.encode()).decode()}" for name, value in metadata.items()
    )


def file_range(f: BinaryIO, offset: int, length: int) -> Iterator[bytes]:
    """`length` bytes of an open file from `offset`, one read at a time."""
    f.seek(offset)
    remaining = length
    while remaining > 0:
        piece = f.read(min(READ_BYTES, remaining))
        if not piece:
            raise OSError(f"{f.name} shrank while it was being uploaded")
        remaining -= len(piece)
        yield piece


class TusUploader:
    """Uploads one file to a TUS endpoint, resuming after transport errors and 5xx answers.

    `max_retries` consecutive failures (no byte accepted in between) end the upload;
    the wait doubles from `backoff_s` after each.
    """

    def __init__(
        self,
        http: httpx.Client,
        endpoint: str,
        headers: Mapping[str, str],
        *,
        chunk_bytes: int = CHUNK_BYTES,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.endpoint = endpoint
        self.headers = {**headers, "Tus-Resumable": TUS_VERSION}
        self.chunk_bytes = chunk_bytes
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.resumed = 0
        """How many times the upload resumed from the server's offset (for logs and tests)."""

    def upload(self, source: Path, metadata: Mapping[str, str], extra: Mapping[str, str]) -> None:
        size = Path(source).stat().st_size
        location = self._create(size, metadata, extra)
        offset, failures = 0, 0
        with Path(source).open("rb") as f:
            while offset < size or size == 0:
                try:
                    offset = self._patch(location, f, offset, min(self.chunk_bytes, size - offset))
                    failures = 0
                    if size == 0:
                        return
                except (httpx.TransportError, _Retry) as exc:
                    failures += 1
                    if failures > self.max_retries:
                        raise OSError(
                            f"resumable upload of {source} stopped at byte {offset} of {size} "
                            f"after {self.max_retries} retries: {exc}"
                        ) from exc
                    self.sleep(self.backoff_s * 2 ** (failures - 1))
                    offset = self._offset_after_error(location, offset)
                    self.resumed += 1

    def _create(self, size: int, metadata: Mapping[str, str], extra: Mapping[str, str]) -> str:
        headers = {
            **self.headers,
            **extra,
            "Upload-Length": str(size),
            "Upload-Metadata": encode_metadata(metadata),
        }
        for attempt in range(self.max_retries + 1):
            try:
                response = self.http.post(self.endpoint, headers=headers)
            except httpx.TransportError:
                if attempt == self.max_retries:
                    raise
            else:
                if response.status_code == 201 and response.headers.get("Location"):
                    return str(response.url.join(response.headers["Location"]))
                if response.status_code not in RETRY_STATUSES or attempt == self.max_retries:
                    raise TusError(
                        f"creating the upload failed: HTTP {response.status_code} {response.text}",
                        response,
                    )
            self.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def _patch(self, location: str, f: BinaryIO, offset: int, length: int) -> int:
        headers = {
            **self.headers,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(length),
        }
        response = self.http.patch(location, headers=headers, content=file_range(f, offset, length))
        if response.status_code == 204:
            return int(response.headers["Upload-Offset"])
        if response.status_code == 409 or response.status_code in RETRY_STATUSES:
            raise _Retry(f"HTTP {response.status_code}")
        raise TusError(
            f"upload refused at byte {offset}: HTTP {response.status_code} {response.text}",
            response,
        )

    def _offset_after_error(self, location: str, offset: int) -> int:
        """The server's offset (HEAD); the last known one if the server cannot be asked."""
        try:
            response = self.http.head(location, headers=self.headers)
        except httpx.TransportError:
            return offset
        if response.status_code == 200 and "Upload-Offset" in response.headers:
            return int(response.headers["Upload-Offset"])
        if response.status_code in (404, 410):
            raise TusError("the server forgot the upload; start it again", response)
        return offset


class _Retry(Exception):
    """An answer worth retrying after asking the server for its offset."""
