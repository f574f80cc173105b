"""Which failures a stage retries by itself: a storage hiccup is retried with backoff, a
capture error never is (it fails at once with its reason)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from gameview_assets.assets.source_videos import source_videos
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.local_store import LocalStore
from gameview_assets.resources.storage import LocalStoreResource, WorkdirResource
from gameview_assets.resources.store import ProductionStore
from gameview_assets_tests.conftest import make_test_video

PRODUCTION = "retried"


class FlakyLocalStore(LocalStore):
    """The local folder, whose first download fails the way a dropped connection does."""

    failures_left = 1

    def download(self, key: str, dest: Path) -> None:
        if FlakyLocalStore.failures_left:
            FlakyLocalStore.failures_left -= 1
            raise ConnectionResetError("connection reset by peer")
        super().download(key, dest)


class FlakyStoreResource(LocalStoreResource):
    @property
    def store(self) -> ProductionStore:
        return FlakyLocalStore(Path(self.root))


def materialize_source_videos(tmp_path: Path, video_bytes: bytes) -> dg.ExecuteInProcessResult:
    videos = tmp_path / "store" / PRODUCTION / "videos"
    videos.mkdir(parents=True)
    (videos / "clip.mp4").write_bytes(video_bytes)
    (videos.parent / "production.json").write_text('{"preset": "smoke"}')
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("productions", [PRODUCTION])
        return dg.materialize(
            [source_videos],
            partition_key=PRODUCTION,
            instance=instance,
            resources={
                "store": FlakyStoreResource(root=str(tmp_path / "store")),
                "workdir": WorkdirResource(root=str(tmp_path / "work")),
                "callbacks": StudioCallbacks(),
            },
            raise_on_error=False,
        )


def event_types(result: dg.ExecuteInProcessResult) -> list[dg.DagsterEventType]:
    return [event.event_type for event in result.all_events]


def test_a_storage_hiccup_is_retried(tmp_path: Path) -> None:
    FlakyLocalStore.failures_left = 1
    video = make_test_video(tmp_path / "clip.mp4", seconds=3).read_bytes()
    result = materialize_source_videos(tmp_path, video)
    assert result.success and FlakyLocalStore.failures_left == 0
    assert event_types(result).count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    (materialization,) = result.asset_materializations_for_node("source_videos")
    assert materialization.metadata["videos"].value == 1


def test_a_capture_error_is_not_retried(tmp_path: Path) -> None:
    FlakyLocalStore.failures_left = 0
    result = materialize_source_videos(tmp_path, b"not a video\n" * 20)
    assert not result.success
    kinds = event_types(result)
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data.user_failure_data.metadata["stage"].value == "source_videos"
