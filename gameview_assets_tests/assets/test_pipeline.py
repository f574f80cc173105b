"""All five assets materialized for a synthetic production in a test instance."""

import json
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, instance_for_test
from PIL import Image

from gameview_assets.cli import submit_production
from gameview_assets.core.export import read_ply
from gameview_assets.definitions import build_definitions
from gameview_assets.jobs import PROCESS_JOB_NAME
from gameview_assets.partitions import productions
from gameview_assets.settings import Settings

STAGES = ["source_videos", "frames", "sparse_model", "splat", "bundle"]


@pytest.fixture(scope="module")
def orbit_video(tmp_path_factory) -> Path:
    from gameview_assets.core.samples import render_orbit_video

    path = tmp_path_factory.mktemp("sample") / "orbit.mp4"
    render_orbit_video(path)
    return path


def test_materializes_every_stage(gameview_env, orbit_video):
    settings = Settings.from_env()
    defs = build_definitions(settings)
    submit_production(settings, [orbit_video], "preview", "synthetic")
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(productions.name, ["synthetic"])
        result = defs.resolve_job_def(PROCESS_JOB_NAME).execute_in_process(
            instance=instance, partition_key="synthetic"
        )
        assert result.success
        metadata = {}
        for stage in STAGES:
            event = instance.get_latest_materialization_event(AssetKey(stage))
            assert event is not None and event.dagster_event.partition == "synthetic"
            metadata[stage] = {
                k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()
            }
        checks = [
            e.dagster_event.event_specific_data
            for e in instance.all_logs(
                result.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]
    assert len(checks) == 3 and all(check.passed for check in checks)

    assert metadata["source_videos"]["videos"] == 1
    assert "data:image/jpeg;base64," in metadata["frames"]["contact_sheet"]
    extracted = metadata["frames"]["frames_extracted"]
    assert metadata["sparse_model"]["frames_registered"] == extracted
    assert metadata["splat"]["held_out_psnr"] > 18
    assert "data:image/jpeg;base64," in metadata["bundle"]["thumbnail"]

    results = Path(settings.store_root) / "synthetic" / "results"
    assert sorted(p.name for p in results.iterdir()) == [
        "bundle.json", "cameras.json", "scene.ply", "thumbnail.jpg"
    ]  # fmt: skip
    bundle = json.loads((results / "bundle.json").read_text())
    assert {f["name"] for f in bundle["files"]} == {"scene.ply", "cameras.json", "thumbnail.jpg"}
    assert bundle["metrics"]["frames_registered"] == extracted
    assert set(bundle["timings_s"]) == set(STAGES)
    assert len(read_ply(results / "scene.ply")) == bundle["metrics"]["splats"]
    cameras = json.loads((results / "cameras.json").read_text())
    assert len(cameras) == extracted
    assert {"id", "img_name", "width", "height", "position", "rotation", "fx", "fy"} == set(
        cameras[0]
    )
    with Image.open(results / "thumbnail.jpg") as thumbnail:
        assert thumbnail.format == "JPEG" and thumbnail.width == 640
