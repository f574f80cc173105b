"""End to end in a test instance: a production dropped into the local store is picked up by
the upload sensor, all five assets are materialized, results are published and the studio
app's callback server receives `processing` and then `completed`."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    build_run_status_sensor_context,
    build_sensor_context,
    instance_for_test,
)
from PIL import Image

from gameview_assets.assets.progress import progress_since
from gameview_assets.core.export import read_ply
from gameview_assets.definitions import build_definitions
from gameview_assets.jobs import PROCESS_JOB_NAME
from gameview_assets.sensors.callback_sensors import production_completed_sensor
from gameview_assets.sensors.upload_sensor import upload_sensor
from gameview_assets.settings import Settings
from gameview_assets_tests.callback_server import CallbackServer
from gameview_assets_tests.conftest import blank_psnr

STAGES = ["source_videos", "frames", "sparse_model", "splat", "bundle"]
SECRET = "e2e-secret"


@pytest.fixture(scope="module")
def orbit_video(tmp_path_factory) -> Path:
    from gameview_assets.core.samples import render_orbit_video

    path = tmp_path_factory.mktemp("sample") / "orbit.mp4"
    render_orbit_video(path)
    return path


def drop_production(
    store: Path, production_id: str, video: Path, callback_url: str, preset: str = "preview"
) -> None:
    """What the studio app does: videos first, the manifest last."""
    (store / production_id / "videos").mkdir(parents=True)
    shutil.copyfile(video, store / production_id / "videos" / video.name)
    manifest = {"preset": preset, "callback_url": callback_url}
    (store / production_id / "production.json").write_text(json.dumps(manifest))


def assert_upright_and_centred(cameras: list[dict], transform: dict) -> None:
    """The sample orbits a z-up table at a fixed height, looking at a point 1.35 below the
    cameras (radius 3.2). Exported, the orbit's plane must be level with the viewer's up
    (within 3°), the cameras above the origin at the same height-to-radius ratio, and the
    origin at the orbit's centre. SfM's scale is arbitrary, so only ratios are compared."""
    from gameview_assets.core.align import VIEWER_UP
    from gameview_assets.core.samples import LOOK_AT, ORBIT_HEIGHT, ORBIT_RADIUS

    positions = np.array([camera["position"] for camera in cameras])
    normal = np.linalg.svd(positions - positions.mean(axis=0))[2][-1]
    tilt = np.degrees(np.arccos(min(1.0, abs(float(normal @ VIEWER_UP)))))
    assert tilt < 3.0, f"exported orbit is {tilt:.1f}° off level"
    heights = positions @ VIEWER_UP
    horizontal = positions - heights[:, None] * VIEWER_UP
    radius = np.linalg.norm(horizontal, axis=1).mean()
    expected = (ORBIT_HEIGHT - LOOK_AT[2]) / ORBIT_RADIUS
    assert heights.mean() / radius == pytest.approx(expected, rel=0.15)
    assert np.linalg.norm(horizontal.mean(axis=0)) < 0.05 * radius
    matrix = np.array(transform["matrix"])
    np.testing.assert_allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-6)
    assert transform["up"] == [0.0, -1.0, 0.0]


def assert_web_versions(results: Path, bundle: dict) -> None:
    """Each web file holds min(splats, the preview's budget) splats as gsply reads it, and its
    held-out PSNR is reported within 1.5 dB of the full scene's: measured on this sample,
    8-bit colours and SH cost 0.3-0.6 dB, and the cut drops splats that add little."""
    from gameview_assets.core.web import read_compressed_ply, read_spz
    from gameview_assets.presets import get_preset

    web = bundle["web"]
    budget = get_preset("preview").web_max_splats
    expected = min(bundle["metrics"]["splats"], budget)
    assert web["max_splats"] == budget and web["full"]["splats"] == bundle["metrics"]["splats"]
    sizes = {f["name"]: f["size"] for f in bundle["files"]}
    for name, read in (("scene.spz", read_spz), ("scene.compressed.ply", read_compressed_ply)):
        entry = web["files"][name]
        assert len(read(results / name)) == entry["splats"] == expected
        assert entry["size"] == sizes[name] < sizes["scene.ply"] / 5
        assert entry["psnr_loss_db"] < 1.5, web
    assert web["full"]["held_out_psnr"] == pytest.approx(bundle["metrics"]["psnr"], abs=0.5)


def assert_turntable_and_viewer(results: Path, bundle: dict) -> None:
    """A 4-second H.264 turn that starts at the thumbnail's view; the page loads scene.spz."""
    import av

    with av.open(str(results / "turntable.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert float(container.duration / av.time_base) == pytest.approx(4.0, abs=0.2)
        assert stream.frames == bundle["views"]["turntable_frames"] == 48
    page = (results / "viewer.html").read_text()
    assert '"scene": "scene.spz"' in page and "<title>synthetic</title>" in page
    assert bundle["views"]["thumbnail"]["width"] == 640


def materialized_metadata(instance, stage: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(stage))
    assert event is not None and event.dagster_event.partition == "synthetic"
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def test_dropped_production_is_processed_and_called_back(gameview_env, monkeypatch, orbit_video):
    with CallbackServer(secret=SECRET) as server:
        monkeypatch.setenv("GAMEVIEW_CALLBACK_SECRET", SECRET)
        monkeypatch.setenv("GAMEVIEW_CALLBACK_ALLOWED_HOSTS", "127.0.0.1")
        settings = Settings.from_env()
        defs = build_definitions(settings)
        drop_production(settings.store_root, "synthetic", orbit_video, f"{server.url}/cb")
        with instance_for_test() as instance:
            tick = upload_sensor(build_sensor_context(instance=instance, resources=defs.resources))
            (request,) = tick.run_requests
            for partitions in tick.dynamic_partitions_requests:
                instance.add_dynamic_partitions(
                    partitions.partitions_def_name, partitions.partition_keys
                )
            result = defs.resolve_job_def(PROCESS_JOB_NAME).execute_in_process(
                instance=instance, partition_key=request.partition_key, tags=request.tags
            )
            assert result.success
            metadata = {stage: materialized_metadata(instance, stage) for stage in STAGES}
            checks = [
                e.dagster_event.event_specific_data
                for e in instance.all_logs(
                    result.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
                )
            ]
            updates, _, more = progress_since(instance, result.run_id, None)
            production_completed_sensor(
                build_run_status_sensor_context(
                    sensor_name=production_completed_sensor.name,
                    dagster_event=result.get_run_success_event(),
                    dagster_instance=instance,
                    dagster_run=result.dagster_run,
                    resources=defs.resources,
                )
            )
        received = [r.json for r in server.wait_for(1)]
        assert all(r.signed_validly for r in server.received)

    assert len(checks) == 3 and all(check.passed for check in checks)
    assert metadata["source_videos"]["videos"] == 1
    assert "data:image/jpeg;base64," in metadata["frames"]["contact_sheet"]
    extracted = metadata["frames"]["frames_extracted"]
    assert metadata["sparse_model"]["frames_registered"] == extracted
    undistorted = sorted(
        (settings.workdir / "synthetic" / "sfm" / "undistorted" / "images").iterdir()
    )
    assert metadata["splat"]["held_out_psnr"] > blank_psnr(undistorted[::8]) + 2
    assert "data:image/jpeg;base64," in metadata["bundle"]["thumbnail"]

    results = settings.store_root / "synthetic" / "results"
    assert sorted(p.name for p in results.iterdir()) == [
        "bundle.json", "cameras.json", "scene.compressed.ply", "scene.ply", "scene.spz",
        "thumbnail.jpg", "turntable.mp4", "viewer.html",
    ]  # fmt: skip
    bundle = json.loads((results / "bundle.json").read_text())
    assert {f["name"] for f in bundle["files"]} == {
        "scene.ply", "cameras.json", "thumbnail.jpg", "scene.spz", "scene.compressed.ply",
        "turntable.mp4", "viewer.html",
    }  # fmt: skip
    assert_web_versions(results, bundle)
    assert_turntable_and_viewer(results, bundle)
    assert "data:image/jpeg;base64," in metadata["bundle"]["turntable"]
    assert bundle["metrics"]["frames_registered"] == extracted
    assert set(bundle["timings_s"]) == set(STAGES)
    assert len(read_ply(results / "scene.ply")) == bundle["metrics"]["splats"]
    cameras = json.loads((results / "cameras.json").read_text())
    assert len(cameras) == extracted
    assert set(cameras[0]) == {
        "id",
        "img_name",
        "width",
        "height",
        "position",
        "rotation",
        "fx",
        "fy",
    }
    assert_upright_and_centred(cameras, bundle["transform"])
    with Image.open(results / "thumbnail.jpg") as thumbnail:
        assert thumbnail.format == "JPEG" and thumbnail.width == 640

    assert not more and [u.stage for u in updates] == sorted(
        (u.stage for u in updates), key=STAGES.index
    )  # progress events arrive in stage order, each stage's last at its end
    fractions = [u.fraction for u in updates]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {u.stage for u in updates if u.status == "done"} == set(STAGES)

    statuses = [r["status"] for r in received]
    assert statuses[-1] == "completed" and set(statuses[:-1]) == {"processing"}
    assert {r["stage"] for r in received[:-1]} == set(STAGES)
    progress = [r["progress"] for r in received[:-1]]
    assert progress == sorted(progress) and progress[-1] == 1.0
    completed = received[-1]
    assert completed["production_id"] == "synthetic" and completed["run_id"] == result.run_id
    assert completed["results"]["ply"]["key"] == "synthetic/results/scene.ply"
    assert completed["results"]["spz"]["key"] == "synthetic/results/scene.spz"
    assert completed["results"]["compressed_ply"]["url"].endswith("scene.compressed.ply")
    assert completed["results"]["turntable"]["key"] == "synthetic/results/turntable.mp4"
    assert completed["results"]["viewer"]["key"] == "synthetic/results/viewer.html"
    assert completed["metrics"]["frames_registered"] == extracted
