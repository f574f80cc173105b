"""The real kitchen orbit video through the whole pipeline with the preview preset."""

import json
from pathlib import Path

import pytest

from gameview_assets.cli import main
from gameview_assets.core.export import read_ply
from gameview_assets_tests.conftest import blank_psnr


@pytest.mark.realdata
def test_kitchen_video_preview(gameview_env, datasets, capsys):
    video = datasets / "kitchen" / "kitchen.mp4"
    status = main(["process", str(video), "--preset", "preview", "--production", "kitchen"])
    out = capsys.readouterr().out.strip().splitlines()
    assert status == 0
    results = Path(gameview_env["GAMEVIEW_STORE"]) / "kitchen" / "results"
    assert out[-1] == f"results: {results}"

    bundle = json.loads((results / "bundle.json").read_text())
    metrics = bundle["metrics"]
    assert metrics["frames_extracted"] >= 20
    assert metrics["frames_registered"] >= 0.9 * metrics["frames_extracted"]
    undistorted = sorted(
        (
            Path(gameview_env["GAMEVIEW_WORKDIR"]) / "kitchen" / "sfm" / "undistorted" / "images"
        ).iterdir()
    )
    assert metrics["psnr"] > blank_psnr(undistorted[::8]) + 1.5
    assert metrics["ssim"] > 0.4
    assert len(read_ply(results / "scene.ply")) == metrics["splats"] > 1000
    assert {f["name"] for f in bundle["files"]} == {
        "scene.ply", "cameras.json", "thumbnail.jpg", "scene.spz", "scene.compressed.ply",
        "turntable.mp4", "viewer.html",
    }  # fmt: skip
