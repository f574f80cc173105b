"""gsplat's own code path (rasterization, strategies, the trainer's CUDA branch) run on a CPU.

The CUDA kernels are swapped for gsplat's plain-torch reference (`gameview_assets_tests/
gsplat_cpu.py`); everything else is gsplat's code and the trainer's CUDA branch as a GPU runs
them. The images must equal our CPU rasterizer's within the parity tolerances, and where the
two paths' `info` differ, the difference is named here.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import gsplat
import pytest
import torch

from gameview_assets.core.train import backend
from gameview_assets.core.train.checkpoint import load_splats, save_splats
from gameview_assets.core.train.densification import DefaultDensification, MCMCDensification
from gameview_assets.core.train.rasterizer import rasterization as cpu_rasterization
from gameview_assets.core.train.trainer import TrainConfig, train_splat
from gameview_assets_tests.core.test_gsplat_parity import HEIGHT, SH_DEGREE, WIDTH, camera, scene
from gameview_assets_tests.core.test_train import make_scene
from gameview_assets_tests.gsplat_cpu import REPLACED, gsplat_on_cpu

# Keys of gsplat's info (packed=False) that our CPU rasterizer does not produce: tile lists,
# batch bookkeeping and ids only the packed layout fills. No strategy of ours reads them.
ONLY_IN_GSPLAT_INFO = {
    "batch_ids",
    "flatten_ids",
    "isect_ids",
    "isect_offsets",
    "n_batches",
    "tiles_per_gauss",
}
# What gsplat's DefaultStrategy and MCMCStrategy read from info with packed=False.
READ_BY_STRATEGIES = {"means2d", "radii", "width", "height", "n_cameras"}


def test_every_replaced_kernel_keeps_its_name_and_parameters() -> None:
    """An upgrade that moves or changes one of the swapped functions fails here, loudly."""
    for (module, name), replacement in REPLACED.items():
        if module is backend:
            continue
        original = getattr(module, name)
        original_params = list(inspect.signature(original).parameters)
        ours = list(inspect.signature(replacement).parameters)
        assert set(original_params) <= set(ours), (module.__name__, name, original_params)
    assert gsplat.__version__ == "1.5.3", "re-check the stand-in against the new gsplat"


def render(splats: dict[str, torch.Tensor], through_gsplat: bool) -> tuple:
    viewmat, K = camera()
    arguments = (
        splats["means"],
        splats["quats"],
        splats["scales"],
        splats["opacities"],
        splats["colors"],
        viewmat[None],
        K[None],
        WIDTH,
        HEIGHT,
    )
    if through_gsplat:
        with gsplat_on_cpu():
            return gsplat.rasterization(*arguments, sh_degree=SH_DEGREE, packed=False)
    return cpu_rasterization(*arguments, sh_degree=SH_DEGREE)


def test_gsplat_rasterization_on_the_stand_in_equals_our_rasterizer() -> None:
    results = []
    for through_gsplat in (True, False):
        splats = {k: v.clone().requires_grad_(True) for k, v in scene(120, seed=12).items()}
        image, alpha, info = render(splats, through_gsplat)
        info["means2d"].retain_grad()
        weights = torch.linspace(0.2, 1.0, 3)
        ((image * weights).sum() + alpha.sum()).backward()
        grads = {k: v.grad for k, v in splats.items()} | {"means2d": info["means2d"].grad}
        results.append((image.detach(), alpha.detach(), grads, info))
    (image, alpha, grads, info), (ours, our_alpha, our_grads, our_info) = results
    assert alpha.max() > 0.9 and image.std() > 0.05, "the render is not blank"
    torch.testing.assert_close(image, ours, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(alpha, our_alpha, atol=1e-4, rtol=1e-4)
    for key, grad in grads.items():
        scale = grad.abs().max()
        assert scale > 0, f"no gradient reached {key}"
        torch.testing.assert_close(our_grads[key] / scale, grad / scale, atol=2e-4, rtol=1e-3)
    # The info the strategies read agrees; what only gsplat's has is named above.
    assert set(info) - set(our_info) == ONLY_IN_GSPLAT_INFO
    assert set(our_info) <= set(info)
    assert set(our_info) >= READ_BY_STRATEGIES
    assert torch.equal(info["radii"], our_info["radii"])
    assert info["radii"].shape == (1, 120, 2) and info["means2d"].shape == (1, 120, 2)
    for key in ("width", "height", "n_cameras"):
        assert info[key] == our_info[key], key
    # Tile size differs by design: gsplat's kernels use 16, our CPU path 8 (less waste there).
    assert (info["tile_size"], our_info["tile_size"]) == (16, 8)


@pytest.mark.parametrize(
    ("strategy", "optimizer"),
    [(DefaultDensification(), "adam"), (MCMCDensification(), "selective_adam")],
)
def test_trainer_cuda_branch_trains_resumes_and_exports(
    strategy, optimizer: str, tmp_path: Path
) -> None:
    """gsplat's rasterization computes `info`, gsplat's strategy reads it, on CPU tensors;
    gsplat's SelectiveAdam steps the splats each view saw."""
    views = make_scene(n_views=6, n_gaussians=80, width=32)
    config = TrainConfig(
        steps=40,
        max_splats=300,
        sh_degree=1,
        strategy=strategy,
        checkpoint_every=20,
        refine_start=5,
        refine_every=5,
        refine_stop=35,
        reset_every=30,
        background_points=0,
        num_threads=1,
        optimizer=optimizer,
    )
    with gsplat_on_cpu():
        result = train_splat(views, config, tmp_path)
        resumed = train_splat(views, config, tmp_path)
    assert result.device == "cpu" and result.steps == 40
    assert torch.isfinite(torch.tensor(result.psnr)) and result.psnr > 10
    assert len(views.points) < result.num_splats <= 300, "gsplat's strategy grew nothing"
    assert resumed.resumed_from_step == 20
    assert resumed.num_splats <= 300 and torch.isfinite(torch.tensor(resumed.psnr))
    saved = tmp_path / "splats.pt"
    save_splats(result.splats, saved)
    assert load_splats(saved)["means"].shape == (result.num_splats, 3)


def test_selective_adam_is_refused_on_the_cpu_path(tmp_path: Path) -> None:
    views = make_scene(n_views=3, n_gaussians=20, width=16)
    config = TrainConfig(steps=2, max_splats=50, optimizer="selective_adam", num_threads=1)
    with pytest.raises(ValueError, match="train on a GPU, or use 'adam'"):
        train_splat(views, config, tmp_path)
