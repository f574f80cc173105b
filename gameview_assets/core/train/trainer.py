"""Gaussian splat training: gsplat's recipe, on CUDA with gsplat or on CPU with our rasterizer."""

from __future__ import annotations

import gc
import math
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from gameview_assets.core.errors import CaptureError
from gameview_assets.core.metrics import psnr, ssim
from gameview_assets.core.train import backend
from gameview_assets.core.train.checkpoint import (
    UnreadableCheckpointError,
    checkpoints_in,
    load_checkpoint,
    save_checkpoint,
)
from gameview_assets.core.train.config import TrainConfig
from gameview_assets.core.train.cpu import keep_freed_memory_for_reuse, training_threads
from gameview_assets.core.train.data import TrainingViews
from gameview_assets.core.train.splats import (
    SPLAT_KEYS,
    background_shell,
    init_splats,
    render_splats,
    sh_degree_of,
)

Progress = Callable[[float, str], None]
CHECKPOINT_VERSION = 2


@dataclass
class TrainResult:
    """Trained splats (CPU tensors, raw: log scales, logit opacities) and how the run went.

    psnr / ssim are the means over held-out views at the last step (NaN without held-out
    views); eval_history has the same at every checkpoint and preview step.
    resumed_from_step is the checkpoint's step, 0 for a fresh start; checkpoint_discarded
    says why a checkpoint found in the work directory was not resumed ('' otherwise).
    """

    splats: dict[str, Tensor]
    steps: int
    num_splats: int
    psnr: float
    ssim: float
    num_eval_views: int
    eval_history: list[dict[str, float]] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    steps_per_second: float = 0.0
    peak_memory_mb: float = 0.0
    device: str = "cpu"
    resumed_from_step: int = 0
    checkpoint_discarded: str = ""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def split_views(n_views: int, holdout_every: int) -> tuple[list[int], list[int]]:
    """Every `holdout_every`-th view (0, 8, 16, …) is held out; all train if too few views."""
    if holdout_every <= 0 or n_views < 2:
        return list(range(n_views)), []
    held_out = [i for i in range(n_views) if i % holdout_every == 0]
    return [i for i in range(n_views) if i % holdout_every != 0], held_out


def viewmat(camtoworld: Tensor) -> Tensor:
    return torch.linalg.inv(camtoworld)


def scene_scale(camtoworlds: Tensor) -> float:
    """gsplat's scene scale: 1.1 x the largest camera distance from the cameras' centroid."""
    centers = camtoworlds[:, :3, 3]
    radius = (centers - centers.mean(dim=0)).norm(dim=-1).max().item()
    return 1.1 * radius if radius > 0 else 1.0


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def render_image(
    splats: dict[str, Tensor],
    camtoworld: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Render splats (as saved by training) from one camera as uint8 [H, W, 3]."""
    device = splats["means"].device
    c2w = torch.as_tensor(np.asarray(camtoworld), dtype=torch.float32, device=device)
    Ks = torch.as_tensor(np.asarray(K), dtype=torch.float32, device=device)[None]
    with torch.no_grad():
        colors, _, _ = render_splats(
            {key: splats[key].float() for key in SPLAT_KEYS},
            viewmat(c2w)[None],
            Ks,
            width,
            height,
            sh_degree_of(splats),
            backgrounds=torch.tensor([background], dtype=torch.float32, device=device),
        )
    return (colors[0].clamp(0, 1) * 255).round().byte().cpu().numpy()


class _Trainer:
    """The state of one training run; `train_splat` is the public face."""

    def __init__(self, views: TrainingViews, config: TrainConfig, work_dir: Path) -> None:
        self.views = views
        self.config = config
        self.device = resolve_device(config.device)
        self.work_dir = Path(work_dir)
        self.checkpoint_dir = checkpoints_in(self.work_dir)
        self.preview_dir = self.work_dir / "previews"
        self.train_ids, self.eval_ids = split_views(len(views), config.holdout_every)
        self.preview_id = (self.eval_ids or self.train_ids)[0]
        self.schedule = config.schedule()
        self.scene_scale = scene_scale(views.camtoworlds)
        self.viewmats = torch.linalg.inv(views.camtoworlds).to(self.device)
        self.Ks = views.Ks.to(self.device)
        self.images = [image.to(self.device) for image in views.images]
        self.step = 0
        self.eval_history: list[dict[str, float]] = []
        self.previews: list[Path] = []
        self.elapsed_before = 0.0
        self.resumed_from_step = 0
        self.views_digest = views.digest()
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        points, points_rgb = views.points, views.points_rgb
        shell = min(config.background_points, config.max_splats // 4)
        if shell > 0 and len(points) > 0:
            far = background_shell(points, views.camtoworlds[:, :3, 3], shell, generator)
            points = torch.cat([points, far])
            points_rgb = torch.cat([points_rgb, torch.full((shell, 3), 128, dtype=torch.uint8)])
        splats = init_splats(
            points,
            points_rgb,
            config.sh_degree,
            config.max_splats,
            config.strategy.init_opacity,
            config.strategy.init_scale,
            generator,
        )
        self.params = {
            key: torch.nn.Parameter(value.to(self.device)) for key, value in splats.items()
        }
        self.optimizers = self._make_optimizers()
        self.gsplat_strategy, self.strategy_state = config.strategy.build(
            config.max_splats, self.schedule, self.scene_scale, len(self.params["means"])
        )
        self.gsplat_strategy.check_sanity(self.params, self.optimizers)

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        boost = c.learning_rate_boost()
        rates = {
            "means": c.means_lr * self.scene_scale * boost,
            "quats": c.quats_lr * boost,
            "scales": c.scales_lr * boost,
            "opacities": c.opacities_lr,
            "sh0": c.sh0_lr * boost,
            "shN": c.shN_lr * boost,
        }
        if c.optimizer == "selective_adam":
            if not backend.uses_gsplat(self.params["means"]):
                raise ValueError(
                    "optimizer 'selective_adam' runs on gsplat's CUDA kernels: train on a GPU, "
                    "or use 'adam' on the CPU"
                )
            from gsplat.optimizers import SelectiveAdam

            return {
                key: SelectiveAdam(
                    [{"params": self.params[key], "lr": lr, "name": key}],
                    eps=1e-15,
                    betas=(0.9, 0.999),
                )
                for key, lr in rates.items()
            }
        return {
            key: torch.optim.Adam([{"params": self.params[key], "lr": lr, "name": key}], eps=1e-15)
            for key, lr in rates.items()
        }

    def means_lr(self, step: int) -> float:
        c = self.config
        decay = c.means_lr_final_ratio ** (step / max(1, c.steps))
        return c.means_lr * self.scene_scale * c.learning_rate_boost() * decay

    def view_at(self, step: int) -> int:
        """Shuffled epochs over the training views, reproducible from the step alone."""
        n = len(self.train_ids)
        epoch, index = divmod(step, n)
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return self.train_ids[int(torch.randperm(n, generator=generator)[index])]

    def render(self, view: int, sh_degree: int, background: Tensor | None = None) -> tuple:
        return render_splats(
            self.params,
            self.viewmats[view : view + 1],
            self.Ks[view : view + 1],
            self.views.widths[view],
            self.views.heights[view],
            sh_degree,
            backgrounds=background,
            cpu_tile_size=self.config.cpu_tile_size,
        )

    def train_step(self, step: int) -> float:
        c = self.config
        view = self.view_at(step)
        target = self.images[view].float() / 255.0
        sh_degree = min(step // self.schedule["sh_degree_interval"], c.sh_degree)
        background = torch.rand(1, 3, device=self.device) if c.random_background else None
        colors, _, info = self.render(view, sh_degree, background)
        self.gsplat_strategy.step_pre_backward(
            self.params, self.optimizers, self.strategy_state, step, info
        )
        image = colors[0]
        loss = (1.0 - c.ssim_lambda) * torch.abs(image - target).mean() + c.ssim_lambda * (
            1.0 - ssim(image, target)
        )
        loss = loss + c.strategy.regularisation(self.params)
        loss.backward()
        means_lr = self.means_lr(step)
        self.optimizers["means"].param_groups[0]["lr"] = means_lr
        # SelectiveAdam updates the splats this view saw: in any camera, both radii non-zero.
        selective = self.config.optimizer == "selective_adam"
        step_arguments = ((info["radii"] > 0).all(-1).any(0),) if selective else ()
        for optimizer in self.optimizers.values():
            optimizer.step(*step_arguments)
            optimizer.zero_grad(set_to_none=True)
        c.strategy.step_post_backward(
            self.gsplat_strategy,
            self.params,
            self.optimizers,
            self.strategy_state,
            step,
            info,
            means_lr,
        )
        return float(loss.item())

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        if not self.eval_ids:
            return math.nan, math.nan
        psnrs, ssims = [], []
        for view in self.eval_ids:
            colors, _, _ = self.render(view, self.config.sh_degree)
            image = colors[0].clamp(0, 1)
            target = self.images[view].float() / 255.0
            psnrs.append(psnr(image, target))
            ssims.append(float(ssim(image, target)))
        return float(np.mean(psnrs)), float(np.mean(ssims))

    @torch.no_grad()
    def save_preview(self, step: int) -> Path:
        colors, _, _ = self.render(self.preview_id, self.config.sh_degree)
        pixels = (colors[0].clamp(0, 1) * 255).round().byte().cpu().numpy()
        path = self.preview_dir / f"step_{step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        if path not in self.previews:
            self.previews.append(path)
        return path

    def release_memory(self) -> None:
        """Drop the gradients and cached blocks a failed (out-of-memory) step left behind."""
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def record_eval(self, step: int) -> None:
        value_psnr, value_ssim = self.evaluate()
        self.eval_history = [entry for entry in self.eval_history if entry["step"] != step]
        self.eval_history.append({"step": step, "psnr": value_psnr, "ssim": value_ssim})

    def checkpoint_state(self, elapsed: float) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.config.fingerprint(),
            "views": self.views_digest,
            "step": self.step,
            "splats": {key: value.detach().cpu() for key, value in self.params.items()},
            "optimizers": {key: opt.state_dict() for key, opt in self.optimizers.items()},
            "strategy_state": {
                key: value.cpu() if isinstance(value, Tensor) else value
                for key, value in self.strategy_state.items()
            },
            "rng": torch.get_rng_state(),
            "eval_history": self.eval_history,
            "previews": [str(path) for path in self.previews],
            "elapsed": elapsed,
        }

    def incompatibility(self, state: dict[str, Any]) -> str:
        """Why `state` cannot be resumed by this run; '' when it can."""
        if state.get("version") != CHECKPOINT_VERSION:
            return f"it is checkpoint version {state.get('version')}, not {CHECKPOINT_VERSION}"
        if state.get("views") != self.views_digest:
            return "it was trained on other views (images, cameras or sparse points)"
        if state.get("fingerprint") != self.config.fingerprint():
            return "it was trained with another configuration"
        return ""

    def resume(self, state: dict[str, Any]) -> None:
        self.params = {
            key: torch.nn.Parameter(value.to(self.device)) for key, value in state["splats"].items()
        }
        self.optimizers = self._make_optimizers()
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])
        self.strategy_state = {
            key: value.to(self.device) if isinstance(value, Tensor) else value
            for key, value in state["strategy_state"].items()
        }
        torch.set_rng_state(state["rng"])
        self.step = self.resumed_from_step = int(state["step"])
        self.eval_history = list(state["eval_history"])
        self.previews = [Path(path) for path in state["previews"]]
        self.elapsed_before = float(state["elapsed"])

    def resume_or_start_afresh(self) -> str:
        """Resume from the work directory's checkpoint if this run could have written it.

        Otherwise clear the checkpoints and previews there, so nothing of another run stays;
        returns why a checkpoint found was discarded ('' when none was, or it was resumed).
        """
        try:
            state = load_checkpoint(self.checkpoint_dir)
        except UnreadableCheckpointError as exc:  # truncated by a full disk, or garbage
            state = None
            discarded = f"checkpoint discarded, training restarts from step 0: {exc}"
        else:
            discarded = ""
        if state is not None:
            reason = self.incompatibility(state)
            if not reason:
                self.resume(state)
                return ""
            discarded = f"checkpoint at step {state.get('step')} discarded: {reason}"
        for directory in (self.checkpoint_dir, self.preview_dir):
            shutil.rmtree(directory, ignore_errors=True)
        return discarded


def _step_within_memory(trainer: _Trainer, step: int, progress: Progress | None) -> float:
    """One training step; out of memory, free what the failed attempt held and try it once
    more (fragmentation, a transient peak), then fail with what to do."""
    try:
        return trainer.train_step(step)
    except torch.OutOfMemoryError:
        pass  # retried below, outside the handler, so the traceback's tensors are freed
    trainer.release_memory()
    steps = trainer.config.steps
    if progress is not None:
        progress(step / steps, f"out of memory at step {step + 1}: memory freed, step retried")
    try:
        return trainer.train_step(step)
    except torch.OutOfMemoryError as exc:
        raise CaptureError(
            "out_of_memory",
            f"training ran out of {trainer.device.type.upper()} memory at step {step + 1:,} "
            f"of {steps:,} with {len(trainer.params['means']):,} splats, also when retried",
            "choose a preset with fewer splats (e.g. 'preview'), or run training on a GPU "
            "with more memory; a retry resumes from the last checkpoint",
        ) from exc


def train_splat(
    views: TrainingViews,
    config: TrainConfig,
    work_dir: Path,
    progress: Progress | None = None,
) -> TrainResult:
    """Train splats on `views`, resuming from `work_dir/checkpoints` when it holds a checkpoint
    of the same views and configuration (else starting afresh, and saying why through
    `progress` and `TrainResult.checkpoint_discarded`); writes previews to `work_dir/previews`
    and evaluates on held-out views. Call `cpu.prepare_cpu_training` before importing torch."""
    if config.steps <= 0 or config.max_splats <= 0:
        raise ValueError("steps and max_splats must be positive")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(training_threads(config.num_threads, resolve_device(config.device)))
    try:
        return _train(views, config, work_dir, progress)
    finally:
        torch.set_num_threads(threads_before)


def _train(
    views: TrainingViews, config: TrainConfig, work_dir: Path, progress: Progress | None
) -> TrainResult:
    trainer = _Trainer(views, config, work_dir)
    if trainer.device.type == "cpu":
        keep_freed_memory_for_reuse()
    discarded = trainer.resume_or_start_afresh()
    if progress is not None and (discarded or trainer.resumed_from_step):
        progress(trainer.step / config.steps, discarded or f"resumed at step {trainer.step}")
    device = trainer.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    first_step = trainer.step
    report_every = max(1, config.steps // 100)
    for step in range(first_step, config.steps):
        loss = _step_within_memory(trainer, step, progress)
        trainer.step = done = step + 1
        at_checkpoint = config.checkpoint_every > 0 and done % config.checkpoint_every == 0
        at_preview = config.preview_every > 0 and done % config.preview_every == 0
        if (at_checkpoint or at_preview) and done < config.steps:
            trainer.record_eval(done)
            trainer.save_preview(done)
        if at_checkpoint and done < config.steps:
            save_checkpoint(
                trainer.checkpoint_state(trainer.elapsed_before + time.perf_counter() - started),
                trainer.checkpoint_dir,
            )
        if progress is not None and (done % report_every == 0 or done == config.steps):
            progress(
                done / config.steps,
                f"step {done}/{config.steps} loss {loss:.4f} splats {len(trainer.params['means'])}",
            )
    trained_seconds = time.perf_counter() - started
    trainer.record_eval(config.steps)
    trainer.save_preview(config.steps)
    final = trainer.eval_history[-1]
    steps_run = config.steps - first_step
    return TrainResult(
        splats={key: value.detach().cpu() for key, value in trainer.params.items()},
        steps=config.steps,
        num_splats=len(trainer.params["means"]),
        psnr=final["psnr"],
        ssim=final["ssim"],
        num_eval_views=len(trainer.eval_ids),
        eval_history=trainer.eval_history,
        previews=trainer.previews,
        seconds=trainer.elapsed_before + trained_seconds,
        steps_per_second=steps_run / trained_seconds if trained_seconds > 0 else 0.0,
        peak_memory_mb=peak_memory_mb(device),
        device=str(device),
        resumed_from_step=trainer.resumed_from_step,
        checkpoint_discarded=discarded,
    )
