"""SupabaseStore through the real supabase-py client, against a local Storage REST server
(`fake_supabase.FakeStorage`) that answers as the real server does: case-insensitive listing,
case-sensitive fetching, HTTP 400 with the real status in the body (NoSuchKey, EntityTooLarge,
NoSuchBucket for a key that does not verify), 403 on the routes that check the key, an unknown
bucket listing empty, InvalidKey, HTML served as text, and resumable (TUS) uploads."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from urllib.parse import quote, urlsplit

import dagster as dg
import httpx
import pytest

from gameview_assets.resources import supabase_store
from gameview_assets.resources.storage import SupabaseStoreResource
from gameview_assets.resources.store import (
    ResultTooLargeError,
    StorageAccessError,
    StorageUnavailableError,
    list_manifests,
)
from gameview_assets.resources.supabase_store import SupabaseStore
from gameview_assets.resources.tus import encode_metadata
from gameview_assets_tests.resources.fake_supabase import BUCKET, KEY, FakeStorage


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

    refs = list(list_manifests(store))

    assert [r.production_id for r in refs] == ready
    assert all(len(r.version) == 16 for r in refs)
    top_level = [c[2] for c in fake.calls_to("list") if c[2]["prefix"] == ""]
    assert [c["offset"] for c in top_level] == [0, 4, 8, 12, 16]  # 16 entries: 4 full pages
    assert all(c["limit"] == 4 for c in top_level)


def test_manifest_version_changes_when_the_manifest_is_rewritten(
    fake: FakeStorage, store: SupabaseStore
) -> None:
    fake.put("p1/production.json", b'{"preset": "fast"}')
    (before,) = list_manifests(store)
    assert list(list_manifests(store)) == [before]
    fake.put("p1/production.json", b'{"preset": "high"}')
    (after,) = list_manifests(store)
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
    with pytest.raises(FileNotFoundError, match=r"missing\.mp4 does not exist"):
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


def test_publish_results_stages_then_moves_bundle_json_in_last(
    fake: FakeStorage, store: SupabaseStore, tmp_path: Path
) -> None:
    names = ["bundle.json", "scene.ply", "cameras.json", "thumbnail.jpg"]
    files = {}
    for name in names:
        files[name] = tmp_path / name
        files[name].write_bytes(name.encode())
    fake.put("p1/results/bundle.json", b"the previous run's")
    fake.put("p1/results/scene.sog", b"a file the new set does not have")

    keys = store.publish_results("p1", files)

    assert keys == {name: f"p1/results/{name}" for name in names}
    uploaded = [c[2]["key"] for c in fake.calls_to("upload")]
    assert all(key.startswith("p1/.results-") for key in uploaded)  # staged, not visible
    assert [c[2]["keys"] for c in fake.calls_to("remove")] == [
        ["p1/results/bundle.json", "p1/results/scene.sog"]  # the old set, in one request
    ]
    moved = [c[2]["to"] for c in fake.calls_to("move")]
    assert moved[-1] == "p1/results/bundle.json" and sorted(moved) == sorted(keys.values())
    assert sorted(fake.objects) == sorted(keys.values())  # no staging left, no stale file
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


# The real server's quirks, and what the store makes of them.


def raw(
    fake: FakeStorage, method: str, path: str, headers: dict[str, str] | None = None,
    **kwargs: object,
) -> httpx.Response:  # fmt: skip
    auth = {"apikey": KEY, "Authorization": f"Bearer {KEY}"}
    url = f"{fake.url}/storage/v1{path}"
    return httpx.request(method, url, headers={**auth, **(headers or {})}, **kwargs)


def test_the_fake_answers_a_missing_object_as_the_server_does(fake: FakeStorage) -> None:
    from storage3.exceptions import StorageApiError

    response = raw(fake, "GET", f"/object/{BUCKET}/p1/missing.json")
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": "404", "code": "NoSuchKey", "error": "NoSuchKey",
        "message": "Object not found",
    }  # fmt: skip
    assert raw(fake, "HEAD", f"/object/{BUCKET}/p1/missing.json").status_code == 400
    bucket = SupabaseStore(fake.url, KEY, BUCKET)._bucket
    for call in (lambda: bucket.download("p1/missing.json"),
                 lambda: bucket.create_signed_url("p1/missing.json", 60)):  # fmt: skip
        with pytest.raises(StorageApiError) as caught:
            call()
        assert str(caught.value.status) == "404"
        assert caught.value.code == "NoSuchKey"


@pytest.mark.parametrize("call", ["read_text", "download", "signed_url"])
def test_every_read_of_a_missing_object_is_file_not_found(
    store: SupabaseStore, tmp_path: Path, call: str
) -> None:
    from gameview_assets.resources.local_store import LocalStore

    for each in (store, LocalStore(tmp_path / "local")):
        args = (tmp_path / "a",) if call == "download" else ()
        with pytest.raises(FileNotFoundError, match=r"missing\.json"):
            getattr(each, call)("p1/missing.json", *args)


def test_listing_ignores_case_but_fetching_does_not(fake: FakeStorage) -> None:
    fake.put("Alpha/production.json", b"{}")
    fake.put("alpha/videos/a.mp4", b"v")

    listed = fake.list_entries({"prefix": "", "limit": 100, "offset": 0})
    assert [e["name"] for e in listed] == ["Alpha"]  # one folder for both
    under = fake.list_entries({"prefix": "alpha", "search": "production", "limit": 100})
    assert [e["name"] for e in under] == ["production.json"]  # Alpha's
    assert raw(fake, "GET", f"/object/{BUCKET}/alpha/production.json").status_code == 400
    assert raw(fake, "GET", f"/object/{BUCKET}/Alpha/production.json").status_code == 200


def test_ids_that_differ_in_case_never_answer_for_each_other(
    fake: FakeStorage, store: SupabaseStore
) -> None:
    # The case the real server showed: beta2's video, and only Beta2's manifest.
    fake.put("Beta2/production.json", b'{"preset": "fast"}')
    fake.put("beta2/videos/a.mp4", b"v")
    # Alpha hides alpha in the top-level listing; both have a manifest.
    fake.put("Alpha/production.json", b'{"preset": "high"}')
    fake.put("alpha/production.json", b'{"preset": "fast"}')

    assert store.manifest_version("beta2") is None
    assert not store.exists("beta2/production.json")
    assert store.list_files("Beta2/videos") == []
    assert store.list_files("beta2/videos") == ["beta2/videos/a.mp4"]
    assert store.exists("beta2/videos/a.mp4")
    refs = {r.production_id: r.version for r in list_manifests(store)}
    assert list(refs) == ["alpha"]  # Alpha and Beta2 are not production ids
    assert refs["alpha"] == store.manifest_version("alpha")
    fake.put("Alpha/production.json", b'{"preset": "balanced"}')
    assert store.manifest_version("alpha") == refs["alpha"]  # Alpha's rewrite is not alpha's


def test_keys_the_server_refuses_are_refused_before_sending(
    fake: FakeStorage, store: SupabaseStore, tmp_path: Path
) -> None:
    source = tmp_path / "a.mp4"
    source.write_bytes(b"v")
    for key in ("p1/videos/caf\u00e9.mp4", "p1/videos/a#1.mp4"):
        response = raw(fake, "POST", f"/object/{BUCKET}/{quote(key)}", content=b"v")
        assert response.status_code == 400 and response.json()["error"] == "InvalidKey"
        with pytest.raises(ValueError, match="InvalidKey"):
            store.upload(key, source)
    assert fake.objects == {}


def test_an_object_over_the_limit_is_refused_as_the_server_does(fake: FakeStorage) -> None:
    fake.global_file_size_limit = 10
    response = raw(fake, "POST", f"/object/{BUCKET}/p1/results/scene.ply", content=b"x" * 11)
    assert response.status_code == 400  # not 413: the status is in the body
    assert response.json() == {
        "statusCode": "413", "code": "EntityTooLarge", "error": "EntityTooLarge",
        "message": "The object exceeded the maximum allowed size",
    }  # fmt: skip
    assert raw(fake, "POST", f"/object/{BUCKET}/p1/ok", content=b"x" * 10).status_code == 200


def test_a_small_upload_over_the_limit_is_result_too_large(
    fake: FakeStorage, store: SupabaseStore, tmp_path: Path
) -> None:
    fake.global_file_size_limit = 1000  # the project's limit: the bucket reports none
    source = tmp_path / "scene.ply"
    source.write_bytes(b"x" * 1001)
    assert source.stat().st_size <= store.resumable_threshold  # one POST, not TUS

    with pytest.raises(ResultTooLargeError) as caught:
        store.upload("p1/results/scene.ply", source)

    assert caught.value.code == "result_too_large"
    assert "1,001 bytes" in caught.value.message
    assert "p1/results/scene.ply" not in fake.objects


def test_the_fake_refuses_existing_keys_with_the_servers_codes(fake: FakeStorage) -> None:
    fake.put("p1/a.json", b"{}")
    fake.put("p1/b.json", b"{}")
    upload = raw(fake, "POST", f"/object/{BUCKET}/p1/a.json", content=b"{}")
    move = {"bucketId": BUCKET, "sourceKey": "p1/a.json", "destinationKey": "p1/b.json"}
    moved = raw(fake, "POST", "/object/move", json=move)
    for response, code in ((upload, "KeyAlreadyExists"), (moved, "ResourceAlreadyExists")):
        assert response.status_code == 400
        assert response.json()["statusCode"] == "409"
        assert response.json()["code"] == response.json()["error"] == code


def test_a_wrong_key_reads_as_no_bucket_and_is_refused_elsewhere(fake: FakeStorage) -> None:
    fake.put("p1/production.json", b"{}")
    wrong = {"apikey": "rotated", "Authorization": "Bearer rotated"}
    base = f"{fake.url}/storage/v1"

    got = httpx.get(f"{base}/object/{BUCKET}/p1/production.json", headers=wrong)
    assert got.status_code == 400
    assert got.json() == {
        "statusCode": "404", "code": "NoSuchBucket", "error": "NoSuchBucket",
        "message": "Bucket not found",
    }  # fmt: skip
    head = httpx.head(f"{base}/object/{BUCKET}/p1/production.json", headers=wrong)
    assert head.status_code == 400 and head.content == b""  # as for a missing object
    listed = httpx.post(f"{base}/object/list/{BUCKET}", headers=wrong, json={"prefix": ""})
    signed = httpx.post(f"{base}/object/sign/{BUCKET}/p1/production.json", headers=wrong,
                        json={"expiresIn": 60})  # fmt: skip
    bucket = httpx.get(f"{base}/bucket/{BUCKET}", headers=wrong)
    for response in (listed, signed, bucket):
        assert response.status_code == 403
        assert response.json()["statusCode"] == "403"
        assert response.json()["code"] == "AccessDenied"


def test_a_signed_url_with_a_bad_token_is_invalid_jwt(fake: FakeStorage) -> None:
    fake.put("p1/a.json", b"{}")
    response = httpx.get(f"{fake.url}/storage/v1/object/sign/{BUCKET}/p1/a.json?token=forged")
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidJWT"


def test_an_unknown_bucket_lists_empty(fake: FakeStorage) -> None:
    fake.put("p1/production.json", b"{}")
    response = raw(fake, "POST", "/object/list/prodcutions", json={"prefix": "", "limit": 10})
    assert response.status_code == 200 and response.json() == []
    got = raw(fake, "GET", "/object/prodcutions/p1/production.json")
    assert got.status_code == 400 and got.json()["code"] == "NoSuchBucket"


def test_the_fake_serves_html_as_text_and_its_cache_control(
    fake: FakeStorage, store: SupabaseStore, tmp_path: Path
) -> None:
    page = tmp_path / "viewer.html"
    page.write_text("<!doctype html><title>v</title>")
    store.upload("p1/results/viewer.html", page)  # stored as text/html, max-age=60
    fake.put("p1/plain.bin", b"x")  # stored with no cache-control

    got = httpx.get(store.signed_url("p1/results/viewer.html"))
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["cache-control"] == "max-age=60"
    assert fake.objects["p1/results/viewer.html"].content_type.startswith("text/html")
    plain = raw(fake, "GET", f"/object/{BUCKET}/p1/plain.bin")
    assert plain.headers["cache-control"] == "no-cache"
    assert raw(fake, "HEAD", f"/object/{BUCKET}/p1/plain.bin").headers["cache-control"] == (
        "no-cache"
    )


def test_tus_answers_as_the_tus_server_does(fake: FakeStorage) -> None:
    fake.file_size_limit = 100
    metadata = encode_metadata({"bucketName": BUCKET, "objectName": "p1/big.bin"})
    tus = {"Tus-Resumable": "1.0.0", "Upload-Metadata": metadata}
    too_big = raw(fake, "POST", "/upload/resumable", headers={**tus, "Upload-Length": "101"})
    assert too_big.status_code == 413
    assert too_big.headers["content-type"] == "text/plain"
    assert too_big.text.strip() == "Maximum size exceeded"

    forwarded = {**tus, "Upload-Length": "10", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "project.supabase.co"}  # fmt: skip
    created = raw(fake, "POST", "/upload/resumable", headers=forwarded)
    location = created.headers["Location"]
    assert location.startswith("https://project.supabase.co/storage/v1/upload/resumable/")
    plain = raw(fake, "POST", "/upload/resumable", headers={**tus, "Upload-Length": "10"})
    assert plain.headers["Location"].startswith(f"{fake.url}/storage/v1/upload/resumable/")

    upload_path = urlsplit(location).path.removeprefix("/storage/v1")
    patch = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
    conflict = raw(fake, "PATCH", upload_path, headers={**patch, "Upload-Offset": "5"},
                   content=b"x" * 5)  # fmt: skip
    assert conflict.status_code == 409
    assert conflict.text.strip() == "Upload-Offset conflict"
    assert "Upload-Offset" not in conflict.headers


def test_a_resumable_upload_over_the_limit_is_result_too_large(
    fake: FakeStorage, store: SupabaseStore, tmp_path: Path
) -> None:
    fake.global_file_size_limit = 1000
    store.resumable_threshold = 10
    source = tmp_path / "scene.ply"
    source.write_bytes(b"x" * 1001)
    with pytest.raises(ResultTooLargeError):
        store.upload("p1/results/scene.ply", source)


# What the store makes of a wrong key or bucket: a credentials fault, never a missing object.


@pytest.mark.parametrize("call", ["read_text", "download", "list_folders", "signed_url"])
def test_a_wrong_key_is_a_credentials_fault_not_a_missing_object(
    fake: FakeStorage, tmp_path: Path, call: str
) -> None:
    fake.put("p1/production.json", b"{}")
    store = SupabaseStore(fake.url, "rotated-key", BUCKET)
    key = "p1/production.json"
    args = {"read_text": (key,), "download": (key, tmp_path / "a"), "list_folders": (),
            "signed_url": (key,)}[call]  # fmt: skip
    with pytest.raises(StorageAccessError) as caught:
        getattr(store, call)(*args)
    assert caught.value.code == "storage_misconfigured"
    assert not isinstance(caught.value, FileNotFoundError)
    assert "SUPABASE_SERVICE_ROLE_KEY" in str(caught.value)


def test_check_access_says_what_is_wrong(fake: FakeStorage) -> None:
    assert SupabaseStore(fake.url, KEY, BUCKET).check_access() is None

    with pytest.raises(StorageAccessError, match=r"key \(SUPABASE_SERVICE_ROLE_KEY\) was refused"):
        SupabaseStore(fake.url, "rotated-key", BUCKET).check_access()
    misspelled = SupabaseStore(fake.url, KEY, "prodcutions")
    with pytest.raises(StorageAccessError) as caught:
        misspelled.check_access()
    assert "no bucket 'prodcutions'" in caught.value.message
    assert "its buckets: productions" in caught.value.message
    assert misspelled.list_folders() == []  # what the service would otherwise have seen


def test_check_access_keeps_the_bucket_limit(fake: FakeStorage) -> None:
    fake.file_size_limit = 1234
    store = SupabaseStore(fake.url, KEY, BUCKET)
    store.check_access()
    asked = len(fake.calls)
    assert store.bucket_size_limit() == 1234
    assert len(fake.calls) == asked


def test_the_resource_defers_a_refusal_to_where_the_store_is_used(
    fake: FakeStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SUPABASE_KEY", KEY)
    resource = SupabaseStoreResource(
        url=fake.url, service_role_key=dg.EnvVar("TEST_SUPABASE_KEY"), bucket="prodcutions"
    )
    with (
        dg.build_resources({"store": resource}) as resources,
        pytest.raises(StorageAccessError, match="prodcutions"),
    ):
        resources.store.store  # noqa: B018


def test_storage_down_at_setup_is_left_to_the_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    from gameview_assets_tests.service.postgres import free_port

    monkeypatch.setenv("TEST_SUPABASE_KEY", KEY)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    resource = SupabaseStoreResource(url=url, service_role_key=dg.EnvVar("TEST_SUPABASE_KEY"))
    with (
        dg.build_resources({"store": resource}) as resources,
        pytest.raises(StorageUnavailableError),
    ):
        resources.store.store.list_folders()
