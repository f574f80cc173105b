"""A local stand-in for Supabase Storage's REST API, with the real server's quirks.

It speaks the endpoints the store uses, as Supabase Storage publishes them (supabase/storage
`src/http/routes/object/*`, `bucket/*`, `tus/*`), and behaves as a real server (file backend,
behind a `/storage/v1` gateway) was seen to behave:

- Listing (`POST /object/list/<bucket>`) compares `lower(name)`: the prefix and `search` match
  whatever the case, and folders that differ only in case come back as one entry. Fetching an
  object (`GET`/`HEAD /object/<bucket>/<key>`, signing) is case-sensitive.
- Errors are the server's `StorageBackendError.render()`: `{"statusCode", "code", "error",
  "message"}` with `error` equal to `code`, sent as HTTP 400 whatever `statusCode` says
  (500 stays 500); HEAD answers a bare 400. A missing object is `"statusCode":"404"`
  NoSuchKey (supabase-py raises `storage3.exceptions.StorageApiError`).
- Keys outside the server's character set (`é`, `#`, `%`, ...) are refused: 400 InvalidKey.
- An object over the bucket's `file_size_limit` (or the project's global limit, which the
  bucket does not report) is refused: HTTP 400 with `"statusCode":"413"` EntityTooLarge.
- A key the server cannot verify (wrong, rotated, expired): the object routes that also
  serve anonymous readers (`GET`/`HEAD /object/<bucket>/<key>`, `allowInvalidJwt`) read as
  the anonymous role, which sees no bucket: 400 `"statusCode":"404"` NoSuchBucket "Bucket not
  found"; every other route answers HTTP 403 AccessDenied.
- An unknown bucket lists as 200 `[]` (the listing is a query that matches nothing); its
  objects answer NoSuchBucket.
- Objects are served with the Cache-Control they were stored with, `no-cache` when none was
  given; HTML is served as `text/plain` (no scripts run on the storage origin).
- CORS is the gateway's (Kong's `cors` plugin with its defaults, as Supabase configures it):
  a request with an `Origin` gets `Access-Control-Allow-Origin: *`, and a preflight
  (`OPTIONS`) is answered 200 with every method and the headers it asked for.
- Resumable (TUS 1.0.0) uploads at `/upload/resumable`: POST creates (Upload-Length,
  Upload-Metadata with bucketName/objectName/contentType/cacheControl, x-upsert) and answers
  a `Location` built from the gateway's `X-Forwarded-Proto`/`X-Forwarded-Host` (else the
  Host header); PATCH appends at Upload-Offset, HEAD reports the offset. TUS refusals are
  plain text, as the TUS server writes them: 413 "Maximum size exceeded", 409
  "Upload-Offset conflict" (with no `Upload-Offset` header). A PATCH interrupted by a
  dropped connection keeps the bytes that arrived, as the file backend does.
- `POST /object/move` and `/object/copy` (`{bucketId, sourceKey, destinationKey}`) refuse an
  existing destination (`"statusCode":"409"` ResourceAlreadyExists: the server creates it
  with `isUpsert: false`) and a missing source (NoSuchKey); an upload without `x-upsert` onto
  an existing key is `"statusCode":"409"` KeyAlreadyExists. `DELETE /object/<bucket>`
  (`{prefixes}`) deletes those exact names at once and answers the objects it deleted.

Downloads honour `Range: bytes=<start>-` (206 Partial Content), as the server does.
Outages: `fault` decides, per request, to answer normally (None), with a gateway's 503
(`"503"`) or by dropping the connection (`"drop"`: a GET sends half of what it asked first).

Objects live in files under a temporary folder, so large bodies never sit in memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

KEY = "service-role-key"
BUCKET = "productions"
API = "/storage/v1"
IO_CHUNK = 1 << 16
TUS_VERSION = "1.0.0"
CORS_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"
"""What Kong's cors plugin allows by default."""
VALID_KEY = re.compile(r"^[A-Za-z0-9_/!\-.*'() &$@=;:+,?]*$")
"""Supabase Storage's `isValidKey`: JS `\\w` (ASCII) and these symbols; nothing else."""


@dataclass
class StoredObject:
    path: Path
    size: int
    content_type: str
    updated_at: datetime
    etag: str
    cache_control: str = "no-cache"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()


@dataclass
class TusUpload:
    key: str
    length: int
    content_type: str
    cache_control: str
    upsert: bool
    path: Path
    offset: int = 0


class FakeStorage:
    """An on-disk bucket behind the Supabase Storage REST API, on 127.0.0.1."""

    def __init__(
        self,
        *,
        file_size_limit: int | None = None,
        global_file_size_limit: int | None = None,
    ) -> None:
        self.file_size_limit = file_size_limit
        self.global_file_size_limit = global_file_size_limit
        self.objects: dict[str, StoredObject] = {}
        self.uploads: dict[str, TusUpload] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.drop_patches_after: list[int] = []
        """Byte counts: each of the next PATCHes stores that many bytes, then drops the
        connection without answering."""
        self.fault: Callable[[str, str], str | None] = lambda method, path: None
        """(method, path) → None, "503" or "drop", asked before each request is served."""
        self.on_change: Callable[[str, bool], None] = lambda key, present: None
        """Told (key, True) when an object is written, (key, False) when it goes: where the
        real server writes its `storage.objects` row (tests mirror it into PostgreSQL)."""
        self.lock = threading.Lock()
        self.dir = Path(tempfile.mkdtemp(prefix="fake-supabase-"))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def limit(self) -> int | None:
        """The size above which an object is refused (the smaller of both limits)."""
        limits = [x for x in (self.file_size_limit, self.global_file_size_limit) if x]
        return min(limits) if limits else None

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self.dir / uuid.uuid4().hex
        path.write_bytes(data)
        self._store(key, path, content_type)

    def _store(
        self, key: str, path: Path, content_type: str, cache_control: str = "no-cache"
    ) -> None:
        digest = hashlib.md5()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        with self.lock:
            old = self.objects.get(key)
            self.objects[key] = StoredObject(
                path, path.stat().st_size, content_type, datetime.now(UTC),
                f'"{digest.hexdigest()}"', cache_control,
            )  # fmt: skip
        if old is not None:
            old.path.unlink(missing_ok=True)
        self.on_change(key, True)

    def calls_to(self, route: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [c for c in self.calls if c[1] == route]

    def list_entries(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The v1 search: `lower(name) LIKE lower(prefix || search) || '%'`, one level deep;
        folders (grouped without regard to case) first, then objects, then limit/offset."""
        prefix = body.get("prefix") or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        level = prefix.count("/")
        pattern = (prefix + (body.get("search") or "")).lower()
        folders: dict[str, str] = {}
        files: list[dict[str, Any]] = []
        for key in sorted(self.objects):
            if not key.lower().startswith(pattern):
                continue
            tokens = key.split("/")
            if len(tokens) > level + 1:
                folders.setdefault(tokens[level].lower(), tokens[level])
            else:
                files.append(object_entry(tokens[level], self.objects[key]))
        ordered = [folder_entry(name) for name in sorted(folders.values())]
        ordered += sorted(files, key=lambda e: e["name"])
        if body.get("sortBy", {}).get("order") == "desc":
            ordered.reverse()
        offset, limit = int(body.get("offset", 0)), int(body.get("limit", 100))
        return ordered[offset : offset + limit]

    def bucket_info(self) -> dict[str, Any]:
        return {
            "id": BUCKET,
            "name": BUCKET,
            "owner": "",
            "public": False,
            "file_size_limit": self.file_size_limit,
            "allowed_mime_types": None,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }

    def __enter__(self) -> FakeStorage:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def end_headers(self) -> None:
                if self.headers.get("Origin"):
                    self.send_header("Access-Control-Allow-Origin", "*")
                    self.send_header("Vary", "Origin")
                super().end_headers()

            def do_OPTIONS(self) -> None:
                """The gateway's answer to a preflight; the server never sees one."""
                asked = self.headers.get("Access-Control-Request-Headers", "")
                self.send_response(200)
                self.send_header("Access-Control-Allow-Methods", CORS_METHODS)
                if asked:
                    self.send_header("Access-Control-Allow-Headers", asked)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def reply(
                self,
                status: int,
                body: bytes = b"",
                content_type: str = "application/json",
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def reply_json(self, status: int, payload: Any, **kwargs: Any) -> None:
                self.reply(status, json.dumps(payload).encode(), **kwargs)

            def error(self, status_code: str, code: str, message: str, http_status: int = 0
                      ) -> None:  # fmt: skip
                """Storage's rendered error: HTTP 400 (500 for a 500) unless told otherwise,
                whatever `statusCode` the body carries."""
                payload = {"statusCode": status_code, "code": code, "error": code,
                           "message": message}  # fmt: skip
                self.reply_json(http_status or (500 if status_code == "500" else 400), payload)

            def not_found(self) -> None:
                self.error("404", "NoSuchKey", "Object not found")

            def no_bucket(self) -> None:
                self.error("404", "NoSuchBucket", "Bucket not found")

            def too_large(self) -> None:
                self.error("413", "EntityTooLarge", "The object exceeded the maximum allowed size")

            def tus_refusal(self, status: int, text: str) -> None:
                """The TUS server's own refusals: plain text, no JSON."""
                self.reply(status, f"{text}\n".encode(), "text/plain",
                           headers={"Tus-Resumable": TUS_VERSION})  # fmt: skip

            def discard_body(self) -> None:
                remaining = int(self.headers.get("Content-Length", 0))
                while remaining > 0:
                    remaining -= len(self.rfile.read(min(IO_CHUNK, remaining)))

            def body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def body_to_file(self, path: Path, mode: str = "wb", stop_after: int | None = None
                             ) -> int:  # fmt: skip
                """Copy the request body into `path` in small pieces; the bytes copied."""
                remaining = int(self.headers.get("Content-Length", 0))
                if stop_after is not None:
                    remaining = min(remaining, stop_after)
                copied = 0
                with path.open(mode) as out:
                    while remaining > 0:
                        chunk = self.rfile.read(min(IO_CHUNK, remaining))
                        if not chunk:
                            break
                        out.write(chunk)
                        copied += len(chunk)
                        remaining -= len(chunk)
                return copied

            def stream_file(self, obj: StoredObject, cut_off: bool = False) -> None:
                """The object, or from `Range: bytes=<start>-` on (206); `cut_off` sends half
                of it and stops, as a dropped connection does."""
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                start = min(int(match[1]), obj.size) if match else 0
                self.send_response(206 if match else 200)
                self.object_headers(obj)
                self.send_header("Content-Length", str(obj.size - start))
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{obj.size - 1}/{obj.size}")
                self.end_headers()
                remaining = (obj.size - start) // 2 if cut_off else obj.size - start
                with obj.path.open("rb") as f:
                    f.seek(start)
                    while remaining > 0 and (chunk := f.read(min(IO_CHUNK, remaining))):
                        self.wfile.write(chunk)
                        remaining -= len(chunk)
                self.wfile.flush()

            def outage(self) -> bool:
                """Serve the fault `fake.fault` names for this request, if any."""
                fault = fake.fault(self.command, urlsplit(self.path).path)
                if fault is None:
                    return False
                asked = {"fault": fault, "path": self.path, "range": self.headers.get("Range")}
                fake.calls.append((self.command, "outage", asked))
                if fault == "503":
                    self.discard_body()
                    self.reply_json(503, {"message": "Service Unavailable"})
                    return True
                key = unquote(urlsplit(self.path).path).rpartition(f"/{BUCKET}/")[2]
                obj = fake.objects.get(key)
                if self.command == "GET" and obj is not None:
                    self.stream_file(obj, cut_off=True)
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return True

            def route(self) -> tuple[str, str, str] | None:
                """(route, bucket, key) from /storage/v1/object/[list|sign/]<bucket>/<key>."""
                path = unquote(urlsplit(self.path).path)
                if path == f"{API}/bucket" or path.startswith(f"{API}/bucket/"):
                    return "bucket", path[len(f"{API}/bucket/") :], ""
                if path.startswith(f"{API}/upload/resumable"):
                    return "tus", BUCKET, path[len(f"{API}/upload/resumable") :].strip("/")
                if not path.startswith(f"{API}/object/"):
                    return None
                rest = path[len(f"{API}/object/") :]
                if rest in ("move", "copy"):
                    return rest, "", ""
                route = ""
                for name in ("list", "sign"):
                    if rest.startswith(f"{name}/"):
                        route, rest = name, rest[len(name) + 1 :]
                bucket, _, key = rest.partition("/")
                return route, bucket, key

            def key_valid(self) -> bool:
                return (
                    self.headers.get("apikey") == KEY
                    and self.headers.get("Authorization") == f"Bearer {KEY}"
                )

            def authorized(self) -> bool:
                """Whether the key verifies; if not, answer as the JWT check does (403)."""
                if self.key_valid():
                    return True
                self.discard_body()
                self.error("403", "AccessDenied", "invalid signature", http_status=403)
                return False

            def valid_key(self, key: str) -> bool:
                if VALID_KEY.fullmatch(key):
                    return True
                self.discard_body()
                self.error("400", "InvalidKey", f"Invalid key: {key}")
                return False

            def do_HEAD(self) -> None:
                if self.outage():
                    return None
                parsed = self.route()
                if parsed is None:
                    return self.reply(404)
                route, bucket, key = parsed
                if route == "tus":
                    return self.tus_head(key) if self.authorized() else None
                fake.calls.append(("HEAD", "object", {"key": key}))
                obj = self.readable(bucket, key)
                if obj is None:
                    return self.reply(400)
                self.send_response(200)
                self.object_headers(obj)
                self.send_header("Content-Length", str(obj.size))
                self.end_headers()
                return None

            def readable(self, bucket: str, key: str) -> StoredObject | None:
                """The object a GET/HEAD may read: with a key that does not verify, the
                anonymous role sees no (private) bucket."""
                if bucket != BUCKET or not self.key_valid():
                    return None
                return fake.objects.get(key)

            def object_headers(self, obj: StoredObject) -> None:
                """HTML as text/plain, as the server serves it, and the stored Cache-Control."""
                served = "text/plain" if obj.content_type.startswith("text/html") else None
                self.send_header("Content-Type", served or obj.content_type)
                self.send_header("ETag", obj.etag)
                self.send_header("Last-Modified", format_datetime(obj.updated_at, usegmt=True))
                self.send_header("Cache-Control", obj.cache_control)

            def do_GET(self) -> None:
                if self.outage():
                    return None
                parsed = self.route()
                if parsed is None:
                    return self.error("404", "NotFound", "no such route", http_status=404)
                route, bucket, key = parsed
                if route == "sign":
                    token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
                    if token != f"token-for-{key}":
                        return self.error("400", "InvalidJWT", "invalid signature")
                    obj = fake.objects.get(key) if bucket == BUCKET else None
                elif route == "bucket":
                    if not self.authorized():
                        return None
                    if not bucket:
                        return self.reply_json(200, [fake.bucket_info()])
                    if bucket != BUCKET:
                        return self.no_bucket()
                    return self.reply_json(200, fake.bucket_info())
                else:
                    obj = self.readable(bucket, key)
                    if obj is None and (bucket != BUCKET or not self.key_valid()):
                        return self.no_bucket()
                fake.calls.append(("GET", route or "object",
                                   {"key": key, "range": self.headers.get("Range")}))  # fmt: skip
                if obj is None:
                    return self.not_found()
                return self.stream_file(obj)

            def do_POST(self) -> None:
                parsed = self.served_route()
                if parsed is None:
                    return None
                route, bucket, key = parsed
                if route == "tus":
                    return self.tus_create()
                if route in ("move", "copy"):
                    return self.move_or_copy(route, json.loads(self.body()))
                if route == "list":
                    request = json.loads(self.body())
                    fake.calls.append(("POST", "list", request))
                    found = fake.list_entries(request) if bucket == BUCKET else []
                    return self.reply_json(200, found)
                if bucket != BUCKET:
                    self.discard_body()
                    return self.no_bucket()
                if not self.valid_key(key):
                    return None
                if route == "sign":
                    request = json.loads(self.body())
                    fake.calls.append(("POST", "sign", {"key": key, **request}))
                    if key not in fake.objects:
                        return self.not_found()
                    signed = f"/object/sign/{bucket}/{key}?token=token-for-{key}"
                    return self.reply_json(200, {"signedURL": signed})
                return self.upload(bucket, key)

            def served_route(self) -> tuple[str, str, str] | None:
                """The route of a request with a body, or None once it has been answered
                (an outage, an unknown route, no authorization)."""
                if self.outage():
                    return None
                parsed = self.route()
                if parsed is None or not self.authorized():
                    if parsed is None:
                        self.discard_body()
                        self.error("404", "NotFound", "no such route", http_status=404)
                    return None
                return parsed

            def do_PATCH(self) -> None:
                if self.outage():
                    return None
                parsed = self.route()
                if parsed is None or parsed[0] != "tus" or not self.authorized():
                    if parsed is None or parsed[0] != "tus":
                        self.discard_body()
                        self.reply(404)
                    return None
                return self.tus_patch(parsed[2])

            def do_DELETE(self) -> None:
                parsed = self.served_route()
                if parsed is None:
                    return None
                route, bucket, key = parsed
                if route or key or bucket != BUCKET:
                    self.discard_body()
                    return self.no_bucket()
                prefixes = json.loads(self.body())["prefixes"]
                fake.calls.append(("DELETE", "remove", {"keys": list(prefixes)}))
                deleted = []
                with fake.lock:
                    for name in prefixes:
                        obj = fake.objects.pop(name, None)
                        if obj is not None:
                            obj.path.unlink(missing_ok=True)
                            deleted.append({**object_entry(name, obj), "bucket_id": BUCKET})
                            fake.on_change(name, False)
                return self.reply_json(200, deleted)

            def move_or_copy(self, route: str, request: dict[str, Any]) -> None:
                source, destination = request["sourceKey"], request["destinationKey"]
                fake.calls.append(("POST", route, {"from": source, "to": destination}))
                if request.get("bucketId") != BUCKET:
                    return self.no_bucket()
                if not VALID_KEY.fullmatch(destination):
                    return self.error("400", "InvalidKey", f"Invalid key: {destination}")
                with fake.lock:
                    obj = fake.objects.get(source)
                    if obj is None:
                        return self.not_found()
                    if destination in fake.objects:
                        return self.error("409", "ResourceAlreadyExists",
                                          "The resource already exists")  # fmt: skip
                    if route == "move":
                        fake.objects[destination] = fake.objects.pop(source)
                        fake.on_change(source, False)
                        fake.on_change(destination, True)
                        return self.reply_json(200, {"message": "Successfully moved"})
                    copy = fake.dir / uuid.uuid4().hex
                    shutil.copyfile(obj.path, copy)
                    fake.objects[destination] = StoredObject(
                        copy, obj.size, obj.content_type, datetime.now(UTC), obj.etag,
                        obj.cache_control,
                    )  # fmt: skip
                    fake.on_change(destination, True)
                return self.reply_json(200, {"Key": f"{BUCKET}/{destination}"})

            def upload(self, bucket: str, key: str) -> None:
                upsert = self.headers.get("x-upsert") == "true"
                size = int(self.headers.get("Content-Length", 0))
                content_type = self.headers.get("Content-Type", "application/octet-stream")
                multipart_body = content_type.startswith("multipart/form-data")
                fake.calls.append(("POST", "upload", {"key": key, "upsert": upsert,
                                                      "multipart": multipart_body}))  # fmt: skip
                if key in fake.objects and not upsert:
                    self.discard_body()
                    return self.error("409", "KeyAlreadyExists", "The resource already exists")
                limit = fake.limit
                if limit is not None and size > limit:
                    self.discard_body()
                    return self.too_large()
                path = fake.dir / uuid.uuid4().hex
                if multipart_body:
                    data, content_type = multipart(content_type, self.body())["file"]
                    path.write_bytes(data)
                else:
                    self.body_to_file(path)
                cache_control = self.headers.get("cache-control") or "no-cache"
                fake._store(key, path, content_type, cache_control)
                return self.reply_json(200, {"Key": f"{bucket}/{key}", "Id": fake.objects[key].id})

            def tus_headers(self, upload: TusUpload) -> dict[str, str]:
                return {
                    "Tus-Resumable": TUS_VERSION,
                    "Upload-Offset": str(upload.offset),
                    "Upload-Length": str(upload.length),
                    "Cache-Control": "no-store",
                }

            def tus_create(self) -> None:
                self.discard_body()
                metadata = {}
                for item in (self.headers.get("Upload-Metadata") or "").split(","):
                    name, _, value = item.strip().partition(" ")
                    metadata[name] = base64.b64decode(value).decode() if value else ""
                key = metadata.get("objectName", "")
                length = int(self.headers.get("Upload-Length", -1))
                upsert = self.headers.get("x-upsert") == "true"
                fake.calls.append(("POST", "tus-create", {"key": key, "length": length,
                                                          "upsert": upsert}))  # fmt: skip
                if self.headers.get("Tus-Resumable") != TUS_VERSION:
                    return self.reply(412, headers={"Tus-Version": TUS_VERSION})
                if metadata.get("bucketName") != BUCKET:
                    return self.no_bucket()
                if not self.valid_key(key):
                    return None
                if length < 0:
                    return self.tus_refusal(400, "Upload-Length or Upload-Defer-Length required")
                if fake.limit is not None and length > fake.limit:
                    return self.tus_refusal(413, "Maximum size exceeded")
                if key in fake.objects and not upsert:
                    return self.error("409", "KeyAlreadyExists", "The resource already exists")
                upload_id = base64.urlsafe_b64encode(
                    f"{BUCKET}/{key}/{uuid.uuid4()}".encode()
                ).decode()
                cache_seconds = metadata.get("cacheControl")
                fake.uploads[upload_id] = TusUpload(
                    key, length, metadata.get("contentType") or "application/octet-stream",
                    f"max-age={cache_seconds}" if cache_seconds else "no-cache",
                    upsert, fake.dir / f"tus-{uuid.uuid4().hex}",
                )  # fmt: skip
                fake.uploads[upload_id].path.touch()
                proto = self.headers.get("X-Forwarded-Proto") or "http"
                host = self.headers.get("X-Forwarded-Host") or self.headers["Host"]
                location = f"{proto}://{host}{API}/upload/resumable/{upload_id}"
                return self.reply(201, headers={"Location": location, "Tus-Resumable": TUS_VERSION})

            def tus_head(self, upload_id: str) -> None:
                fake.calls.append(("HEAD", "tus-head", {"id": upload_id}))
                upload = fake.uploads.get(upload_id)
                if upload is None:
                    return self.reply(404, headers={"Tus-Resumable": TUS_VERSION})
                return self.reply(200, headers=self.tus_headers(upload))

            def tus_patch(self, upload_id: str) -> None:
                upload = fake.uploads.get(upload_id)
                offset = int(self.headers.get("Upload-Offset", -1))
                fake.calls.append(("PATCH", "tus-patch", {"id": upload_id, "offset": offset}))
                if upload is None:
                    self.discard_body()
                    return self.reply(404, headers={"Tus-Resumable": TUS_VERSION})
                if self.headers.get("Content-Type") != "application/offset+octet-stream":
                    self.discard_body()
                    return self.reply(415, headers={"Tus-Resumable": TUS_VERSION})
                if offset != upload.offset:
                    self.discard_body()
                    return self.tus_refusal(409, "Upload-Offset conflict")
                size = int(self.headers.get("Content-Length", 0))
                if upload.offset + size > upload.length:
                    self.discard_body()
                    return self.tus_refusal(413, "Maximum size exceeded")
                drop = fake.drop_patches_after.pop(0) if fake.drop_patches_after else None
                upload.offset += self.body_to_file(upload.path, "ab", stop_after=drop)
                if drop is not None:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if upload.offset == upload.length:
                    fake._store(upload.key, upload.path, upload.content_type, upload.cache_control)
                return self.reply(204, headers=self.tus_headers(upload))

        return Handler


def multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str]]:
    """Form fields of a multipart/form-data body: name → (bytes, content type)."""
    boundary = content_type.split("boundary=")[1].strip('"').encode()
    fields = {}
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line)
        name = headers["Content-Disposition"].split('name="')[1].split('"')[0]
        fields[name] = (data.removesuffix(b"\r\n"), headers.get("Content-Type", "text/plain"))
    return fields


def folder_entry(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "id": None,
        "updated_at": None,
        "created_at": None,
        "last_accessed_at": None,
        "metadata": None,
    }


def object_entry(name: str, obj: StoredObject) -> dict[str, Any]:
    stamp = obj.updated_at.isoformat()
    return {
        "name": name,
        "id": obj.id,
        "updated_at": stamp,
        "created_at": stamp,
        "last_accessed_at": stamp,
        "metadata": {
            "eTag": obj.etag,
            "size": obj.size,
            "mimetype": obj.content_type,
            "cacheControl": obj.cache_control,
            "lastModified": stamp,
            "contentLength": obj.size,
            "httpStatusCode": 200,
        },
    }
