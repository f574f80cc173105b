"""Large results on Supabase: streamed from disk, resumable (TUS) above a threshold, resumed
after a dropped connection, and refused with a clear reason above the bucket's size limit."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from gameview_assets.resources.store import ResultTooLargeError, StorageUnavailableError
from gameview_assets.resources.supabase_store import SupabaseStore
from gameview_assets.resources.tus import CHUNK_BYTES
from gameview_assets_tests.resources.fake_supabase import FakeStorage

MIB = 1024 * 1024


def big_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        for _ in range(size // MIB):
            f.write(os.urandom(MIB))
        f.write(os.urandom(size % MIB))
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def peak_bytes_of(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_small_upload_streams_from_disk(
    fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path
) -> None:
    source = big_file(tmp_path / "scene.ply", 5 * MIB + 3)
    peak = peak_bytes_of(lambda: supabase.upload("p1/results/scene.ply", source))
    stored = fake.objects["p1/results/scene.ply"]
    assert sha256(stored.path) == sha256(source)
    assert stored.content_type == "application/octet-stream"
    assert [c[2]["multipart"] for c in fake.calls_to("upload")] == [False]
    assert fake.calls_to("tus-create") == []
    assert peak < source.stat().st_size / 2


def test_a_large_upload_is_resumable_and_never_whole_in_memory(
    fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path
) -> None:
    source = big_file(tmp_path / "scene.ply", 3 * CHUNK_BYTES + 12345)
    peak = peak_bytes_of(lambda: supabase.upload("p1/results/scene.ply", source))

    assert sha256(fake.objects["p1/results/scene.ply"].path) == sha256(source)
    (create,) = fake.calls_to("tus-create")
    assert create[2] == {"key": "p1/results/scene.ply", "length": source.stat().st_size,
                         "upsert": True}  # fmt: skip
    offsets = [c[2]["offset"] for c in fake.calls_to("tus-patch")]
    assert offsets == [0, CHUNK_BYTES, 2 * CHUNK_BYTES, 3 * CHUNK_BYTES]
    assert fake.calls_to("upload") == []
    assert peak < 3 * MIB  # one read of 1 MiB at a time, not a 6 MiB chunk, not the file


def test_a_dropped_connection_resumes_from_the_servers_offset(
    fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path
) -> None:
    source = big_file(tmp_path / "scene.ply", 2 * CHUNK_BYTES + 777)
    fake.put("p1/results/scene.ply", b"the previous run's scene")
    # Three PATCHes in a row lose their connection: after all 6 MiB (before the answer),
    # after 2.5 MiB, and before any byte.
    fake.drop_patches_after = [CHUNK_BYTES, 2 * MIB + MIB // 2, 0]

    supabase.upload("p1/results/scene.ply", source)

    patches = [c[2]["offset"] for c in fake.calls_to("tus-patch")]
    heads = fake.calls_to("tus-head")
    # Each time the client asked the server's offset (HEAD) and went on from there.
    assert patches[:4] == [0, CHUNK_BYTES, CHUNK_BYTES + 2 * MIB + MIB // 2,
                           CHUNK_BYTES + 2 * MIB + MIB // 2]  # fmt: skip
    assert len(heads) == 3
    assert sha256(fake.objects["p1/results/scene.ply"].path) == sha256(source)


def test_a_file_over_the_bucket_limit_is_refused_before_anything_is_uploaded(
    fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path
) -> None:
    fake.file_size_limit = 50_000_000
    scene = tmp_path / "scene.ply"
    with scene.open("wb") as f:  # sparse: 1.2 GB on paper, nothing on disk
        f.truncate(1_200_000_000)
    small = tmp_path / "cameras.json"
    small.write_text("[]")

    with pytest.raises(ResultTooLargeError) as caught:
        supabase.publish_results("p1", {"cameras.json": small, "scene.ply": scene})

    error = caught.value
    assert error.code == "result_too_large"
    assert error.message == (
        "scene.ply is 1.20 GB (1,200,000,000 bytes) and could not be stored: the limit of "
        "supabase://productions is 50.0 MB"
    )
    assert "preset" in error.hint and "file size limit" in error.hint
    assert fake.objects == {}
    assert fake.calls_to("upload") == [] and fake.calls_to("tus-create") == []


@pytest.mark.parametrize("size", [1000, 7 * MIB])  # the plain and the resumable upload
def test_a_413_from_the_projects_limit_names_file_size_and_what_to_do(
    fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path, size: int
) -> None:
    fake.global_file_size_limit = 999  # the bucket reports no limit of its own
    scene = big_file(tmp_path / "scene.ply", size)

    with pytest.raises(ResultTooLargeError) as caught:
        supabase.publish_results("p1", {"scene.ply": scene, "bundle.json": scene})

    assert caught.value.size == size and caught.value.limit is None
    assert caught.value.message.startswith(f"scene.ply is {size / 1e6:.1f} MB")
    assert "50 MB on Supabase's Free plan" in caught.value.message
    assert fake.objects == {}  # the largest goes first, so nothing was published


def test_storage_down_longer_than_the_retries_fails_clearly_and_keeps_the_old_object(
    fake: FakeStorage, supabase: SupabaseStore, tmp_path: Path
) -> None:
    source = big_file(tmp_path / "scene.ply", CHUNK_BYTES + 1)
    fake.put("p1/results/scene.ply", b"the previous run's scene")
    supabase.tus_options = {"backoff_s": 0.0, "max_retries": 2}
    fake.drop_patches_after = [MIB, 0, 0, 0]

    with pytest.raises(StorageUnavailableError, match=r"stopped at byte 1048576 of 6291457 "
                       r"after 2 retries") as caught:  # fmt: skip
        supabase.upload("p1/results/scene.ply", source)

    assert caught.value.code == "storage_unavailable"

    assert fake.objects["p1/results/scene.ply"].data == b"the previous run's scene"
