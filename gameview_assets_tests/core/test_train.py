"""Training on synthetic scenes rendered from known Gaussians; views from a COLMAP model."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gameview_assets.core.metrics import psnr
from gameview_assets.core.samples import render_orbit_views
from gameview_assets.core.train.checkpoint import load_checkpoint, load_splats, save_splats
from gameview_assets.core.train.data import TrainingViews, load_views
from gameview_assets.core.train.densification import (
    DefaultDensification,
    MCMCDensification,
    densification,
)
from gameview_assets.core.train.splats import background_shell, init_splats
from gameview_assets.core.train.trainer import TrainConfig, render_image, train_splat

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_scene(n_views: int = 10, n_gaussians: int = 150, width: int = 40, seed: int = 0):
    """Views of random ground-truth Gaussians from an orbit, rendered by our rasterizer, with
    noisy ground-truth centres and colours as the 'sparse points'."""
    g = torch.Generator().manual_seed(seed)
    height = width * 3 // 4
    means = (torch.rand(n_gaussians, 3, generator=g) - 0.5) * 2
    quats = torch.randn(n_gaussians, 4, generator=g)
    scales = torch.rand(n_gaussians, 3, generator=g) * 0.1 + 0.05
    opacities = torch.rand(n_gaussians, generator=g) * 0.5 + 0.5
    colors = torch.rand(n_gaussians, 3, generator=g)
    points = means + torch.randn(n_gaussians, 3, generator=g) * 0.05
    noisy = (colors + torch.randn(n_gaussians, 3, generator=g) * 0.1).clamp(0, 1)
    gaussians = {
        "means": means,
        "quats": quats,
        "scales": scales,
        "opacities": opacities,
        "colors": colors,
    }
    return render_orbit_views(
        gaussians,
        points,
        (noisy * 255).round().byte(),
        n_views,
        width,
        height,
        focal=width * 0.8,
        radius=4.0,
        elevation=1.0,
    )


def held_out_psnr(splats: dict[str, torch.Tensor], views: TrainingViews, ids: list[int]) -> float:
    values = []
    for i in ids:
        rendered = render_image(
            splats,
            views.camtoworlds[i].numpy(),
            views.Ks[i].numpy(),
            views.widths[i],
            views.heights[i],
        )
        values.append(psnr(torch.from_numpy(rendered).float(), views.images[i].float(), 255.0))
    return float(np.mean(values))


def test_training_improves_held_out_psnr_within_the_splat_cap(tmp_path: Path) -> None:
    views = make_scene()
    config = TrainConfig(steps=150, max_splats=400, sh_degree=1, preview_every=75, num_threads=1)
    initial = init_splats(
        views.points, views.points_rgb, 1, 400, 0.1, 1.0, torch.Generator().manual_seed(0)
    )
    before = held_out_psnr(initial, views, [0, 8])
    result = train_splat(views, config, tmp_path)
    assert result.num_eval_views == 2
    assert result.psnr == pytest.approx(held_out_psnr(result.splats, views, [0, 8]), abs=0.2)
    assert result.psnr > before + 4, (before, result.psnr)
    assert 0 < result.ssim <= 1
    assert len(views.points) < result.num_splats <= 400
    assert [entry["step"] for entry in result.eval_history] == [75, 150]
    assert [path.name for path in result.previews] == ["step_000075.png", "step_000150.png"]
    assert Image.open(result.previews[-1]).size == (40, 30)
    assert result.steps_per_second > 0 and result.peak_memory_mb > 0
    saved = tmp_path / "splats.pt"
    save_splats(result.splats, saved)
    reloaded = load_splats(saved)
    assert set(reloaded) == {"means", "quats", "scales", "opacities", "sh0", "shN"}
    assert reloaded["shN"].shape == (result.num_splats, 3, 3)


def test_max_splats_caps_initialisation_and_growth(tmp_path: Path) -> None:
    views = make_scene(n_views=4, n_gaussians=150)
    result = train_splat(
        views, TrainConfig(steps=40, max_splats=100, holdout_every=0, num_threads=1), tmp_path
    )
    assert result.num_splats <= 100
    assert result.num_eval_views == 0 and math.isnan(result.psnr)


RUN_UNTIL_KILLED = """
import sys, time
from pathlib import Path
from gameview_assets_tests.core.test_train import RESUME_CONFIG, make_scene
from gameview_assets.core.train.trainer import train_splat

def slow_after_first_checkpoint(fraction, message):
    if fraction >= 0.5:
        time.sleep(60)

train_splat(make_scene(), RESUME_CONFIG, Path(sys.argv[1]), slow_after_first_checkpoint)
"""
RESUME_CONFIG = TrainConfig(
    steps=60, max_splats=300, sh_degree=1, checkpoint_every=20, num_threads=1
)


def test_killed_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    work_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-c", RUN_UNTIL_KILLED, str(work_dir)], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = load_checkpoint(work_dir / "checkpoints")
            if state is not None and state["step"] >= 20:
                break
            assert process.poll() is None, "training exited before it was killed"
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint was written")
    finally:
        process.kill()
        process.wait()
    assert state["step"] in (20, 40)

    resumed = train_splat(make_scene(), RESUME_CONFIG, work_dir)
    assert resumed.resumed_from_step == state["step"]
    assert resumed.steps == 60
    assert [entry["step"] for entry in resumed.eval_history][-1] == 60

    uninterrupted = train_splat(make_scene(), RESUME_CONFIG, tmp_path / "uninterrupted")
    assert uninterrupted.resumed_from_step == 0
    assert resumed.num_splats == uninterrupted.num_splats
    for key, value in uninterrupted.splats.items():
        torch.testing.assert_close(resumed.splats[key], value, atol=1e-5, rtol=1e-4)


def test_incompatible_checkpoint_is_not_resumed(tmp_path: Path) -> None:
    views = make_scene(n_views=4)
    train_splat(
        views, TrainConfig(steps=20, max_splats=200, checkpoint_every=10, num_threads=1), tmp_path
    )
    assert load_checkpoint(tmp_path / "checkpoints")["step"] == 10
    again = train_splat(
        views, TrainConfig(steps=20, max_splats=250, checkpoint_every=10, num_threads=1), tmp_path
    )
    assert again.resumed_from_step == 0
    assert again.checkpoint_discarded == (
        "checkpoint at step 10 discarded: it was trained with another configuration"
    )


def test_checkpoint_of_other_views_is_not_resumed(tmp_path: Path) -> None:
    views = make_scene(n_views=4)
    config = TrainConfig(steps=20, max_splats=200, checkpoint_every=10, num_threads=1)
    train_splat(views, config, tmp_path)
    same = train_splat(views, config, tmp_path)
    assert same.resumed_from_step == 10 and same.checkpoint_discarded == ""

    moved = views.camtoworlds.clone()
    moved[1, :3, 3] += 0.01
    messages: list[str] = []
    again = train_splat(
        replace(views, camtoworlds=moved), config, tmp_path, lambda _, m: messages.append(m)
    )
    assert again.resumed_from_step == 0
    assert "trained on other views" in again.checkpoint_discarded
    assert messages[0] == again.checkpoint_discarded
    assert views.digest() != replace(views, camtoworlds=moved).digest()
    assert views.digest() == make_scene(n_views=4).digest()


def write_colmap_model(model_dir: Path, images_dir: Path, views: TrainingViews) -> None:
    import pycolmap

    reconstruction = pycolmap.Reconstruction()
    K = views.Ks[0].numpy()
    camera = pycolmap.Camera(
        model="PINHOLE",
        width=views.widths[0],
        height=views.heights[0],
        params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2]],
        camera_id=1,
    )
    reconstruction.add_camera_with_trivial_rig(camera)
    images_dir.mkdir(parents=True)
    for i, name in enumerate(views.names):
        world_to_cam = np.linalg.inv(views.camtoworlds[i].double().numpy())[:3]
        image = pycolmap.Image(name=name, camera_id=1, image_id=i + 1)
        reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(world_to_cam))
        Image.fromarray(views.images[i].numpy()).save(images_dir / name)
    for xyz, rgb in zip(views.points.double().numpy(), views.points_rgb.numpy(), strict=True):
        reconstruction.add_point3D(xyz, pycolmap.Track(), rgb)
    model_dir.mkdir(parents=True)
    reconstruction.write_binary(str(model_dir))


def test_load_views_reads_colmap_model_and_downscales(tmp_path: Path) -> None:
    views = make_scene(n_views=3, width=64)
    write_colmap_model(tmp_path / "sparse", tmp_path / "images", views)
    full = load_views(tmp_path / "sparse", tmp_path / "images")
    assert full.names == views.names and full.widths == [64] * 3 and full.heights == [48] * 3
    torch.testing.assert_close(full.camtoworlds, views.camtoworlds, atol=1e-5, rtol=0)
    torch.testing.assert_close(full.Ks, views.Ks)
    assert torch.equal(full.images[1], views.images[1])
    assert len(full.points) == len(views.points) and full.points_rgb.dtype == torch.uint8

    small = load_views(tmp_path / "sparse", tmp_path / "images", image_max_size=32)
    assert small.images[0].shape == (24, 32, 3) and small.widths[0] == 32
    torch.testing.assert_close(small.Ks[0, :2], views.Ks[0, :2] / 2)


def test_mcmc_strategy_trains_on_cpu_within_its_cap(tmp_path: Path) -> None:
    views = make_scene()
    config = TrainConfig(
        steps=200, max_splats=170, sh_degree=1, strategy=densification("mcmc"), num_threads=1
    )
    result = train_splat(views, config, tmp_path)
    assert result.num_splats == 170
    initial = init_splats(
        views.points, views.points_rgb, 1, 170, 0.5, 0.1, torch.Generator().manual_seed(0)
    )
    assert result.psnr > held_out_psnr(initial, views, [0, 8]) + 3


def test_background_shell_lies_beyond_the_cameras() -> None:
    views = make_scene()
    centers = views.camtoworlds[:, :3, 3]
    shell = background_shell(views.points, centers, 500, torch.Generator().manual_seed(0))
    center = views.points.median(dim=0).values
    farthest_camera = (centers - center).norm(dim=-1).max()
    distance = (shell - center).norm(dim=-1)
    assert shell.shape == (500, 3)
    assert distance.min() >= 1.5 * farthest_camera - 1e-4
    assert distance.max() <= 4.5 * farthest_camera + 1e-4
    # Scattered in every direction, not bunched on one side.
    assert (shell - center).mean(dim=0).norm() < 0.2 * distance.mean()


def test_strategy_is_a_named_dataclass_in_the_fingerprint() -> None:
    mcmc = TrainConfig(steps=10, max_splats=10, strategy=densification("mcmc"))
    assert mcmc.strategy == MCMCDensification()
    assert TrainConfig(steps=10, max_splats=10).strategy == densification("default")
    assert mcmc.fingerprint()["strategy"] == {
        "name": "mcmc",
        "init_opacity": 0.5,
        "init_scale": 0.1,
        "opacity_reg": 0.01,
        "scale_reg": 0.01,
        "noise_lr": 5e5,
        "stop_fraction": 0.8,
        "min_refine_every": 10,
    }
    tuned = TrainConfig(steps=10, max_splats=10, strategy=DefaultDensification(grow_grad2d=1e-4))
    assert tuned.fingerprint() != TrainConfig(steps=10, max_splats=10).fingerprint()
    with pytest.raises(ValueError, match="'default', 'mcmc'"):
        densification("fancy")
    with pytest.raises(TypeError, match="densification"):
        TrainConfig(steps=10, max_splats=10, strategy="mcmc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("steps", "initial", "budget"), [(5000, 5982, 1_000_000), (600, 3000, 20_000)]
)
def test_mcmc_refines_often_enough_to_reach_its_budget(steps, initial, budget) -> None:
    """gsplat's MCMC grows 5% per refinement: the cadence must reach the budget in the run."""
    config = TrainConfig(steps=steps, max_splats=budget, strategy=MCMCDensification())
    growth = MCMCDensification().growth_schedule(config.schedule(), initial, budget)
    start, stop, every = growth["refine_start"], growth["refine_stop"], growth["refine_every"]
    refinements = sum(1 for step in range(start + 1, stop) if step % every == 0)
    assert stop == round(0.8 * steps)
    assert initial * 1.05**refinements >= budget
    assert growth["refine_every"] >= 10


def run_python(code: str) -> str:
    """Run `code` in a fresh interpreter with no OpenMP policy set; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("OMP_WAIT_POLICY", None)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_cpu_preparation_comes_before_torch_and_config_does_not_import_it() -> None:
    code = """
import os, sys
from gameview_assets.core.train.cpu import prepare_cpu_training
from gameview_assets.core.train.config import TrainConfig
from gameview_assets.core.train.densification import densification
from gameview_assets.core.samples import render_orbit_views
TrainConfig(steps=1, max_splats=1, strategy=densification("mcmc")).fingerprint()
prepare_cpu_training()
print(os.environ["OMP_WAIT_POLICY"], "torch" in sys.modules)
"""
    assert run_python(code) == "PASSIVE False"


def test_cpu_preparation_after_torch_warns_once_and_sets_nothing() -> None:
    code = """
import os, warnings
import torch
from gameview_assets.core.train.cpu import prepare_cpu_training, training_threads
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    prepare_cpu_training()
    prepare_cpu_training()
print(len(caught), os.environ.get("OMP_WAIT_POLICY"), training_threads(0, torch.device("cpu")))
"""
    assert run_python(code) == "1 None 1"
