"""SupabaseStore through the real supabase-py client, against a local Storage REST server.

The server speaks the endpoints the store uses, as Supabase Storage publishes them
(supabase/storage `src/http/routes/object/*`): `POST /object/list/<bucket>` (prefix as a
folder, limit/offset/sortBy/search; folders come back with `id: null`), `GET
/object/<bucket>/<key>`, multipart `POST /object/<bucket>/<key>` honouring `x-upsert`,
`POST /object/sign/<bucket>/<key>` answering `{"signedURL": "/object/sign/...?token=..."}`,
and requires the service-role key as `apikey` and `Authorization: Bearer`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import dagster as dg
import httpx
import pytest

from gameview_assets.resources import supabase_store
from gameview_assets.resources.storage import SupabaseStoreResource
from gameview_assets.resources.supabase_store import SupabaseStore

KEY = "service-role-key"
BUCKET = "productions"
API = "/storage/v1"


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    updated_at: str
    etag: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


class FakeStorage:
    """An in-memory bucket behind the Supabase Storage REST API, on 127.0.0.1."""

    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        now = datetime.now(UTC).isoformat()
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        self.objects[key] = StoredObject(data, content_type, now, etag)

    def calls_to(self, route: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [c for c in self.calls if c[1] == route]

    def list_entries(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        prefix = body["prefix"]
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        search = (body.get("search") or "").lower()
        entries: dict[str, dict[str, Any]] = {}
        for key, obj in self.objects.items():
            if not key.startswith(prefix):
                continue
            name, slash, _ = key[len(prefix) :].partition("/")
            if not name.lower().startswith(search):
                continue
            if slash:
                entries.setdefault(name, folder_entry(name))
            else:
                entries[name] = object_entry(name, obj)
        ordered = sorted(entries.values(), key=lambda e: e["name"])
        if body.get("sortBy", {}).get("order") == "desc":
            ordered.reverse()
        offset, limit = body.get("offset", 0), body.get("limit", 100)
        return ordered[offset : offset + limit]

    def __enter__(self) -> FakeStorage:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                view = memoryview(body)
                for start in range(0, len(view), 1 << 16):
                    self.wfile.write(view[start : start + (1 << 16)])

            def reply_json(self, status: int, payload: Any) -> None:
                self.reply(status, json.dumps(payload).encode(), "application/json")

            def error(self, status: int, code: str, message: str) -> None:
                self.reply_json(
                    status, {"statusCode": str(status), "error": code, "message": message}
                )

            def body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    chunks = []
                    while size := int(self.rfile.readline().strip(), 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def route(self) -> tuple[str, str, str] | None:
                """(route, bucket, key) from /storage/v1/object/[list|sign/]<bucket>/<key>."""
                path = unquote(urlsplit(self.path).path)
                if not path.startswith(f"{API}/object/"):
                    return None
                rest = path[len(f"{API}/object/") :]
                route = ""
                for name in ("list", "sign"):
                    if rest.startswith(f"{name}/"):
                        route, rest = name, rest[len(name) + 1 :]
                bucket, _, key = rest.partition("/")
                return route, bucket, key

            def authorized(self) -> bool:
                if (
                    self.headers.get("apikey") == KEY
                    and self.headers.get("Authorization") == f"Bearer {KEY}"
                ):
                    return True
                self.error(403, "Unauthorized", "invalid JWT")
                return False

            def do_GET(self) -> None:
                parsed = self.route()
                if parsed is None:
                    return self.error(404, "not_found", "no such route")
                route, bucket, key = parsed
                if route == "sign":
                    token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
                    if token != f"token-for-{key}":
                        return self.error(400, "InvalidJWT", "bad token")
                elif not self.authorized():
                    return None
                fake.calls.append(("GET", route or "object", {"key": key}))
                obj = fake.objects.get(key) if bucket == BUCKET else None
                if obj is None:
                    return self.error(404, "not_found", "Object not found")
                return self.reply(200, obj.data, obj.content_type)

            def do_POST(self) -> None:
                parsed = self.route()
                if parsed is None or not self.authorized():
                    return None if parsed else self.error(404, "not_found", "no such route")
                route, bucket, key = parsed
                if bucket != BUCKET:
                    self.body()
                    return self.error(404, "not_found", "Bucket not found")
                if route == "list":
                    request = json.loads(self.body())
                    fake.calls.append(("POST", "list", request))
                    return self.reply_json(200, fake.list_entries(request))
                if route == "sign":
                    request = json.loads(self.body())
                    fake.calls.append(("POST", "sign", {"key": key, **request}))
                    if key not in fake.objects:
                        return self.error(404, "not_found", "Object not found")
                    signed = f"/object/sign/{bucket}/{key}?token=token-for-{key}"
                    return self.reply_json(200, {"signedURL": signed})
                return self.upload(bucket, key)

            def upload(self, bucket: str, key: str) -> None:
                upsert = self.headers.get("x-upsert") == "true"
                parts = multipart(self.headers["Content-Type"], self.body())
                fake.calls.append(("POST", "upload", {"key": key, "upsert": upsert}))
                with fake.lock:
                    if key in fake.objects and not upsert:
                        return self.error(400, "Duplicate", "The resource already exists")
                    data, content_type = parts["file"]
                    fake.put(key, data, content_type)
                return self.reply_json(200, {"Key": f"{bucket}/{key}", "Id": fake.objects[key].id})

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
    return {
        "name": name,
        "id": obj.id,
        "updated_at": obj.updated_at,
        "created_at": obj.updated_at,
        "last_accessed_at": obj.updated_at,
        "metadata": {
            "eTag": obj.etag,
            "size": len(obj.data),
            "mimetype": obj.content_type,
            "cacheControl": "max-age=3600",
            "lastModified": obj.updated_at,
            "contentLength": len(obj.data),
            "httpStatusCode": 200,
        },
    }


@pytest.fixture
def fake() -> Iterator[FakeStorage]:
    with FakeStorage() as fake:
        yield fake


@pytest.fixture
def store(fake: FakeStorage) -> SupabaseStore:
    return SupabaseStore(fake.url, KEY, BUCKET)


def test_the_resource_opens_a_supabase_store(
    fake: FakeStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SUPABASE_KEY", KEY)
    resource = SupabaseStoreResource(
        url=fake.url, service_role_key=dg.EnvVar("TEST_SUPABASE_KEY"), bucket=BUCKET
    )
    with dg.build_resources({"store": resource}) as resources:
        opened = resources.store.store
        assert isinstance(opened, SupabaseStore)
        assert opened.describe() == "supabase://productions"
        fake.put("p1/production.json", b"{}")
        assert opened.exists("p1/production.json")  # the key came from the environment
    assert opened._http.is_closed  # one client per run, closed when it ends


def test_list_manifests_pages_through_every_production(
    fake: FakeStorage, store: SupabaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supabase_store, "PAGE_SIZE", 4)
    ready = [f"p{i:02d}" for i in range(11)]
    for production_id in ready:
        fake.put(f"{production_id}/videos/a.mp4", b"v")
        fake.put(f"{production_id}/production.json", b"{}")
    fake.put("uploading/videos/a.mp4", b"v")  # half-uploaded: no manifest yet
    fake.put("decoy/production.json.tmp", b"{}")
    fake.put("deep/sub/production.json", b"{}")
    fake.put("bad.name/production.json", b"{}")  # not a production id
    fake.put("production.json", b"{}")  # a stray top-level file

    refs = list(store.list_manifests())

    assert [r.production_id for r in refs] == ready
    assert all(len(r.version) == 16 for r in refs)
    top_level = [c[2] for c in fake.calls_to("list") if c[2]["prefix"] == ""]
    assert [c["offset"] for c in top_level] == [0, 4, 8, 12, 16]  # 16 entries: 4 full pages
    assert all(c["limit"] == 4 for c in top_level)


def test_manifest_version_changes_when_the_manifest_is_rewritten(
    fake: FakeStorage, store: SupabaseStore
) -> None:
    fake.put("p1/production.json", b'{"preset": "fast"}')
    (before,) = store.list_manifests()
    assert list(store.list_manifests()) == [before]
    fake.put("p1/production.json", b'{"preset": "high"}')
    (after,) = store.list_manifests()
    assert after.production_id == "p1"
    assert after.version != before.version


def test_read_list_and_exists(fake: FakeStorage, store: SupabaseStore) -> None:
    fake.put("p1/production.json", b'{"preset": "fast"}', "application/json")
    fake.put("p1/videos/b.mp4", b"b")
    fake.put("p1/videos/a.mp4", b"a")
    fake.put("p1/videos/raw/c.mp4", b"c")

    assert store.read_text("p1/production.json") == '{"preset": "fast"}'
    assert store.list_files("p1/videos") == ["p1/videos/a.mp4", "p1/videos/b.mp4"]
    assert store.list_files("p2/videos") == []
    assert store.exists("p1/production.json")
    assert not store.exists("p1/production.jso")
    assert not store.exists("p1/videos")  # a folder, not an object
    assert not store.exists("p2/production.json")


def test_download_streams_to_disk(fake: FakeStorage, store: SupabaseStore, tmp_path: Path) -> None:
    video = bytes(range(256)) * (96 * 1024)  # 24 MiB
    fake.put("p1/videos/a.mp4", video, "video/mp4")
    dest = tmp_path / "work" / "videos" / "a.mp4"

    tracemalloc.start()
    try:
        store.download("p1/videos/a.mp4", dest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert dest.read_bytes() == video
    assert peak < len(video) / 3  # a few chunks in flight, never the whole video
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.mp4"]


def test_download_of_a_missing_object_leaves_nothing(store: SupabaseStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="404"):
        store.download("p1/videos/missing.mp4", tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


def test_upload_upserts_with_the_content_type(
    fake: FakeStorage, store: SupabaseStore, tmp_path: Path
) -> None:
    source = tmp_path / "cameras.json"
    source.write_text("[1]")
    store.upload("p1/results/cameras.json", source)
    source.write_text("[2]")
    store.upload("p1/results/cameras.json", source)

    stored = fake.objects["p1/results/cameras.json"]
    assert stored.data == b"[2]"
    assert stored.content_type == "application/json"
    assert all(c[2]["upsert"] for c in fake.calls_to("upload"))


def test_publish_results_uploads_bundle_json_last(
    fake: FakeStorage, store: SupabaseStore, tmp_path: Path
) -> None:
    names = ["bundle.json", "scene.ply", "cameras.json", "thumbnail.jpg"]
    files = {}
    for name in names:
        files[name] = tmp_path / name
        files[name].write_bytes(name.encode())

    keys = store.publish_results("p1", files)

    assert keys == {name: f"p1/results/{name}" for name in names}
    uploaded = [c[2]["key"] for c in fake.calls_to("upload")]
    assert uploaded[-1] == "p1/results/bundle.json"
    assert sorted(uploaded) == sorted(keys.values())
    assert fake.objects["p1/results/thumbnail.jpg"].content_type == "image/jpeg"
    assert fake.objects["p1/results/scene.ply"].content_type == "application/octet-stream"
    assert fake.objects["p1/results/scene.ply"].data == b"scene.ply"
    with pytest.raises(ValueError, match="safe slug"):
        store.publish_results("../other", files)


def test_signed_url_fetches_the_object(fake: FakeStorage, store: SupabaseStore) -> None:
    fake.put("p1/results/scene.ply", b"ply data")

    url = store.signed_url("p1/results/scene.ply", expires_in_s=3600)

    assert url.startswith(f"{fake.url}/storage/v1/object/sign/{BUCKET}/p1/results/scene.ply?")
    assert httpx.get(url).content == b"ply data"
    (sign,) = [c for c in fake.calls_to("sign") if c[0] == "POST"]
    assert sign[2]["expiresIn"] == "3600"


def test_wrong_key_is_an_error(fake: FakeStorage) -> None:
    from storage3.exceptions import StorageApiError

    fake.put("p1/production.json", b"{}")
    with pytest.raises(StorageApiError):
        list(SupabaseStore(fake.url, "anon-key", BUCKET).list_manifests())
