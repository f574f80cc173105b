"""`splat`: Gaussian splats trained from the sparse model (gsplat on CUDA, ours on CPU)."""

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)

from gameview_assets.assets.reporting import (
    StageReporter,
    image_markdown,
    load_run_manifest,
    read_index,
)
from gameview_assets.assets.sparse_model import sparse_model
from gameview_assets.core.workdir import ProductionPaths
from gameview_assets.partitions import productions
from gameview_assets.presets import Preset
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import WorkdirResource

STAGE = "splat"
PSNR_CHECK = "held_out_psnr"


class SplatConfig(Config):
    """Operator choices on top of the preset (set in the launchpad)."""

    strategy: Literal["default", "mcmc"] = "default"


@asset(
    partitions_def=productions,
    group_name="production",
    deps=[sparse_model],
    kinds={"pytorch"},
    pool="gpu",
    check_specs=[AssetCheckSpec(PSNR_CHECK, asset=STAGE, blocking=True)],
)
def splat(
    context: AssetExecutionContext,
    config: SplatConfig,
    workdir: WorkdirResource,
    callbacks: StudioCallbacks,
) -> MaterializeResult:
    """Train splats from the registered frames; every 8th frame is held out for PSNR/SSIM.

    Checkpoints live in the work directory, so a retried or killed step resumes; they are
    discarded when the sparse model or preset they were trained from changes.
    """
    from gameview_assets.core.train.checkpoint import save_splats
    from gameview_assets.core.train.config import TrainConfig
    from gameview_assets.core.train.data import load_views
    from gameview_assets.core.train.trainer import train_splat

    paths = workdir.production(context.partition_key)
    manifest, preset = load_run_manifest(paths)
    poses = read_index(paths.poses_index, STAGE)
    reset_if_inputs_changed(paths, preset)
    undistorted = Path(poses["undistorted_dir"])
    views = load_views(undistorted / "sparse", undistorted / "images", preset.train_max_size)
    train_config = TrainConfig(
        steps=preset.steps,
        max_splats=preset.max_splats,
        sh_degree=preset.sh_degree,
        strategy=config.strategy,
        checkpoint_every=max(preset.steps // 5, 100),
        preview_every=max(preset.steps // 5, 100),
    )
    report = StageReporter(context, callbacks, STAGE, manifest.callback_url)
    result = train_splat(views, train_config, paths.splat, report)
    save_splats(result.splats, paths.splats_file)
    shutil.rmtree(paths.splat / "checkpoints", ignore_errors=True)
    summary = {k: v for k, v in asdict(result).items() if k not in ("splats", "previews")}
    paths.train_index.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")

    metadata: dict[str, object] = {
        "splats": result.num_splats,
        "steps": result.steps,
        "held_out_psnr": round(result.psnr, 2),
        "held_out_ssim": round(result.ssim, 4),
        "held_out_views": result.num_eval_views,
        "steps_per_second": round(result.steps_per_second, 2),
        "train_seconds": round(result.seconds, 1),
        "peak_memory_mb": round(result.peak_memory_mb, 1),
        "device": result.device,
        "eval_history": MetadataValue.json(result.eval_history),
    }
    for index, preview in enumerate(result.previews[-4:]):
        metadata[f"preview_{index}"] = image_markdown(preview, f"Preview {preview.stem}")
    floor = preset.min_psnr
    check = AssetCheckResult(
        check_name=PSNR_CHECK,
        passed=result.psnr >= floor,
        metadata={
            "psnr": round(result.psnr, 2),
            "floor": floor,
            "stage": STAGE,
            "code": "low_quality",
            "message": f"held-out PSNR {result.psnr:.1f} dB is below the {floor} dB floor",
            "hint": "film more slowly with steady light and more overlap between views",
        },
        description=f"held-out PSNR {result.psnr:.2f} dB (floor {floor} dB)",
    )
    report.finish(paths)
    return MaterializeResult(metadata=metadata, check_results=[check])


def reset_if_inputs_changed(paths: ProductionPaths, preset: Preset) -> None:
    """Drop checkpoints trained from another sparse model or preset than this run's."""
    fingerprint = hashlib.sha256(
        paths.poses_index.read_bytes() + json.dumps(asdict(preset)).encode()
    ).hexdigest()
    stamp = paths.splat / "inputs.sha256"
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return
    shutil.rmtree(paths.splat, ignore_errors=True)
    paths.splat.mkdir(parents=True)
    stamp.write_text(fingerprint)
