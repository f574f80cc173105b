"""SupabaseStore through the real supabase-py client, against a local Storage REST server
(`fake_supabase.FakeStorage`) that has the real server's quirks: case-insensitive listing,
case-sensitive fetching, HTTP 400 with `"statusCode":"404"` for a missing object, 413 above
the size limit, InvalidKey, and resumable (TUS) uploads."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import httpx
import pytest

from gameview_assets.resources import supabase_store
from gameview_assets.resources.storage import SupabaseStoreResource
from gameview_assets.resources.store import list_manifests
from gameview_assets.resources.supabase_store import SupabaseStore
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


def test_wrong_key_is_an_error(fake: FakeStorage) -> None:
    from storage3.exceptions import StorageApiError

    fake.put("p1/production.json", b"{}")
    with pytest.raises(StorageApiError):
        list(list_manifests(SupabaseStore(fake.url, "anon-key", BUCKET)))


# The real server's quirks, and what the store makes of them.


def raw(fake: FakeStorage, method: str, path: str, **kwargs: object) -> httpx.Response:
    headers = {"apikey": KEY, "Authorization": f"Bearer {KEY}"}
    return httpx.request(method, f"{fake.url}/storage/v1{path}", headers=headers, **kwargs)


def test_the_fake_answers_a_missing_object_as_the_server_does(fake: FakeStorage) -> None:
    from storage3.exceptions import StorageApiError

    response = raw(fake, "GET", f"/object/{BUCKET}/p1/missing.json")
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": "404", "error": "not_found", "message": "Object not found",
    }  # fmt: skip
    assert raw(fake, "HEAD", f"/object/{BUCKET}/p1/missing.json").status_code == 400
    bucket = SupabaseStore(fake.url, KEY, BUCKET)._bucket
    for call in (lambda: bucket.download("p1/missing.json"),
                 lambda: bucket.create_signed_url("p1/missing.json", 60)):  # fmt: skip
        with pytest.raises(StorageApiError) as caught:
            call()
        assert str(caught.value.status) == "404"


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


def test_an_object_over_the_limit_is_refused_with_413(fake: FakeStorage) -> None:
    fake.global_file_size_limit = 10
    response = raw(fake, "POST", f"/object/{BUCKET}/p1/results/scene.ply", content=b"x" * 11)
    assert response.status_code == 413
    assert response.json()["error"] == "Payload too large"
    assert raw(fake, "POST", f"/object/{BUCKET}/p1/ok", content=b"x" * 10).status_code == 200
