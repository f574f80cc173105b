"""The local folder store: the bucket's layout, streaming copies, all-or-nothing results."""

import pytest

from gameview_assets.resources.local_store import LocalStore
from gameview_assets.resources.store import list_manifests


def make_production(store: LocalStore, tmp_path, production_id="p1"):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"video")
    store.upload(f"{production_id}/videos/a.mp4", video)
    manifest = tmp_path / "production.json"
    manifest.write_text('{"preset": "fast"}')
    store.upload(f"{production_id}/production.json", manifest)


def test_lists_only_productions_with_a_manifest(tmp_path):
    store = LocalStore(tmp_path / "store")
    make_production(store, tmp_path, "done")
    (tmp_path / "store" / "half" / "videos").mkdir(parents=True)
    assert [ref.production_id for ref in list_manifests(store)] == ["done"]
    assert store.list_files("done/videos") == ["done/videos/a.mp4"]
    store.download("done/videos/a.mp4", tmp_path / "copy.mp4")
    assert (tmp_path / "copy.mp4").read_bytes() == b"video"


def test_manifest_version_changes_when_rewritten(tmp_path):
    store = LocalStore(tmp_path / "store")
    make_production(store, tmp_path)
    (before,) = list_manifests(store)
    (tmp_path / "production.json").write_text('{"preset": "high", "videos": ["videos/a.mp4"]}')
    store.upload("p1/production.json", tmp_path / "production.json")
    (after,) = list_manifests(store)
    assert before.version != after.version


def test_results_replace_atomically(tmp_path):
    store = LocalStore(tmp_path / "store")
    make_production(store, tmp_path)
    first = tmp_path / "scene.ply"
    first.write_bytes(b"one")
    keys = store.publish_results("p1", {"scene.ply": first})
    assert keys == {"scene.ply": "p1/results/scene.ply"}
    second = tmp_path / "bundle.json"
    second.write_text("{}")
    store.publish_results("p1", {"bundle.json": second})
    results = tmp_path / "store" / "p1" / "results"
    assert sorted(p.name for p in results.iterdir()) == ["bundle.json"]
    assert [p.name for p in (tmp_path / "store" / "p1").iterdir() if p.name.startswith(".")] == []


def test_a_failed_publish_leaves_no_results(tmp_path):
    store = LocalStore(tmp_path / "store")
    make_production(store, tmp_path)
    present = tmp_path / "scene.ply"
    present.write_bytes(b"ply")
    with pytest.raises(FileNotFoundError):
        store.publish_results("p1", {"scene.ply": present, "cameras.json": tmp_path / "missing"})
    production = tmp_path / "store" / "p1"
    assert sorted(p.name for p in production.iterdir()) == ["production.json", "videos"]


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../b", "", "a//b"])
def test_keys_cannot_escape_the_root(tmp_path, key):
    with pytest.raises(ValueError, match="plain relative key"):
        LocalStore(tmp_path).read_text(key)
