"""`splat`: Gaussian splats trained from the sparse model (gsplat on CUDA, ours on CPU)."""

from typing import Literal

import dagster as dg

from gameview_assets import presets
from gameview_assets.assets.failures import failures_reported, gate_spec, quality_gate
from gameview_assets.assets.metadata import image_markdown
from gameview_assets.assets.progress import StageReporter
from gameview_assets.assets.retries import CRASH_RETRY
from gameview_assets.assets.reuse import finished, reuse_or_begin, stage_work
from gameview_assets.assets.sparse_model import sparse_model
from gameview_assets.core.errors import FailureReason
from gameview_assets.core.records import TrainingSummary
from gameview_assets.k8s import SPLAT_OP_TAGS
from gameview_assets.partitions import productions
from gameview_assets.presets import get_preset
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import WorkdirResource

STAGE = "splat"
PSNR_CHECK = "held_out_psnr"
PREVIEWS_SHOWN = 4


class SplatConfig(dg.Config):
    """Operator choices on top of the preset (set in the launchpad)."""

    # "preset": the preset's (presets.Preset.strategy); or force gsplat's default or MCMC
    strategy: Literal["preset", "default", "mcmc"] = "preset"


@dg.asset(
    partitions_def=productions,
    group_name="production",
    deps=[sparse_model],
    kinds={"pytorch"},
    pool="gpu",
    op_tags=SPLAT_OP_TAGS,
    retry_policy=CRASH_RETRY,
    check_specs=[gate_spec(PSNR_CHECK, STAGE)],
)
def splat(
    context: dg.AssetExecutionContext,
    config: SplatConfig,
    workdir: WorkdirResource,
    callbacks: StudioCallbacks,
) -> dg.MaterializeResult:
    """Train splats from the registered frames; every 8th frame is held out for PSNR/SSIM.

    Checkpoints live in the work directory, so a retried or killed step resumes (the step
    retries twice after a crash); the trainer discards one trained from other views or
    settings.
    """
    from gameview_assets.core.train.cpu import prepare_cpu_training

    prepare_cpu_training()  # before torch loads: see its docstring
    from gameview_assets.core.train.checkpoint import discard_checkpoints, save_splats
    from gameview_assets.core.train.data import load_views
    from gameview_assets.core.train.trainer import train_splat

    paths = workdir.production(context.partition_key)
    with failures_reported(STAGE):
        run = paths.run.read()
        poses = paths.poses.read()
    preset = get_preset(run.preset)
    train_config = presets.train_config(
        preset,
        None if config.strategy == "preset" else config.strategy,
        checkpoint_every=max(preset.steps // 5, 100),
        preview_every=max(preset.steps // 5, 100),
    )
    report = StageReporter(context, callbacks, STAGE, run.callback_url)
    work = stage_work(
        context,
        paths,
        {
            "train": train_config.fingerprint(),
            "train_max_size": preset.train_max_size,
            "min_psnr": preset.min_psnr,
        },
        records=[paths.poses.path],
        outputs=[paths.splats_file, paths.training.path],
    )
    # An attempt cut short left no done record, only its checkpoints: train_splat resumes.
    cached = reuse_or_begin(work, paths, report)
    if cached is not None:
        return cached
    undistorted = poses.undistorted_dir
    views = load_views(undistorted / "sparse", undistorted / "images", preset.train_max_size)
    paths.splat.mkdir(parents=True, exist_ok=True)
    with failures_reported(STAGE):  # out of memory, or a full disk writing a checkpoint
        result = train_splat(views, train_config, paths.splat, report)
        save_splats(result.splats, paths.splats_file)
    discard_checkpoints(paths.splat)
    summary = TrainingSummary.of(result)
    paths.training.write(summary)
    metadata: dict[str, object] = {
        "splats": summary.num_splats,
        "steps": summary.steps,
        "resumed_from_step": summary.resumed_from_step,
        "checkpoint_discarded": summary.checkpoint_discarded or "no",
        "held_out_psnr": round(summary.psnr, 2),
        "held_out_ssim": round(summary.ssim, 4),
        "held_out_views": summary.num_eval_views,
        "steps_per_second": round(summary.steps_per_second, 2),
        "train_seconds": round(summary.seconds, 1),
        "peak_memory_mb": round(summary.peak_memory_mb, 1),
        "device": summary.device,
        "eval_history": dg.MetadataValue.json(summary.eval_history),
    }
    for preview in result.previews[-PREVIEWS_SHOWN:]:
        step = int(preview.stem.rpartition("_")[2])  # the trainer names them step_<n>.png
        metadata[f"preview_step_{step:06d}"] = image_markdown(
            preview, f"Held-out view at step {step:,}"
        )
    report.finish(paths)
    return finished(context, work, metadata, [psnr_check(summary, preset.min_psnr)])


def psnr_check(summary: TrainingSummary, floor: float) -> dg.AssetCheckResult:
    """Pass when the held-out PSNR reaches the preset's floor; else say what to film better."""
    failure = None
    if not summary.psnr >= floor:
        failure = FailureReason(
            STAGE,
            "low_quality",
            f"held-out PSNR {summary.psnr:.1f} dB is below the {floor} dB floor",
            "film more slowly with steady light and more overlap between views",
        )
    return quality_gate(
        PSNR_CHECK,
        f"held-out PSNR {summary.psnr:.2f} dB (floor {floor} dB)",
        {"psnr": round(summary.psnr, 2), "floor": floor},
        failure,
    )
