"""Quality presets as data: one row per preset, read by every stage."""

from __future__ import annotations

from dataclasses import dataclass

from gameview_assets.core.train.config import TrainConfig
from gameview_assets.core.train.densification import densification


@dataclass(frozen=True)
class Preset:
    """How hard each stage works for a production."""

    name: str  # what the studio app and `--preset` call it
    steps: int  # training steps (one image each)
    max_splats: int  # the splat cap: growth stops here (default), or MCMC's fixed budget
    extract_fps: float  # frames per second of video taken for poses and training
    max_frames: int  # at most this many frames (evenly spread) from all videos
    frame_max_size: int  # long side of extracted frames, pixels (pose stage input)
    train_max_size: int  # long side of training images, pixels
    sh_degree: int  # spherical-harmonic degree of view-dependent colour (0: flat colour)
    min_registered_fraction: float  # quality gate: share of frames the pose stage must register
    # quality gate: held-out PSNR floor, dB; the GPU presets' from the H200 check (kitchen,
    # a sparse 25-frame orbit, scored 16.8 dB on fast; benchmarks/README.md, "GPU check")
    min_psnr: float
    target_gpu_minutes: float  # what the design promises on one GPU
    cpu_time: str  # what a person waits on a CPU (see README, "Presets": how it was measured)
    gpu_time: str  # what a person waits on one GPU (see benchmarks/README.md, gpu_check)
    web_max_splats: int = 1_500_000  # splats in scene.spz / scene.compressed.ply (phones)
    # Densification, `densification(strategy)`: "default" (gsplat's clone/split/prune, grown
    # up to max_splats) or "mcmc" (gsplat's MCMC: relocation within a budget of max_splats).
    # gsplat's own ablation (Mip-NeRF 360, A100, 30k steps): default 29.00 dB with 3.24M splats
    # in 19.4 min; MCMC capped at 1M 29.18 dB in 15.4 min, at 3M 29.65 dB in 27.6 min. So the
    # GPU presets use MCMC with phone-sized budgets (phones render 1-1.5M splats); the CPU
    # presets keep "default", whose growth follows the image gradients within few steps.
    strategy: str = "default"
    # "adam", or "selective_adam" (gsplat's SelectiveAdam: only splats in view are updated;
    # ~1.6x faster for ~0.2 dB less in DashGaussian's table; CUDA only). Every preset keeps
    # "adam": on the H200 SelectiveAdam was 1.21x faster but 2.4 dB lower on the sample, with
    # streaks at the frame edge, and the fast preset already trains in 1-1.5 min of its 5.
    optimizer: str = "adam"


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        # smoke: checks a deployment end to end (the service tests run on it); a rough scene
        Preset(
            name="smoke", steps=150, max_splats=5_000, extract_fps=2, max_frames=16,
            frame_max_size=320, train_max_size=240, sh_degree=0, min_registered_fraction=0.5,
            min_psnr=8.0, target_gpu_minutes=0.5,
            cpu_time="about 1 min (measured, 2 cores)",
            gpu_time="seconds (target, not yet measured)",
            web_max_splats=2_000,
        ),
        # preview's web budget is half its splats, so that a preview run exercises the cut
        Preset(
            name="preview", steps=600, max_splats=20_000, extract_fps=3, max_frames=40,
            frame_max_size=640, train_max_size=320, sh_degree=1, min_registered_fraction=0.5,
            min_psnr=12.0, target_gpu_minutes=1,
            cpu_time="2-4 min (measured, 2 cores; up to 10 min on a busy machine)",
            gpu_time="about 1 min (target, not yet measured)",
            web_max_splats=10_000,
        ),
        Preset(
            name="fast", steps=5_000, max_splats=1_000_000, extract_fps=5, max_frames=150,
            frame_max_size=1600, train_max_size=1600, sh_degree=3, min_registered_fraction=0.6,
            min_psnr=15.0, target_gpu_minutes=5,
            cpu_time="many hours: use a GPU",
            gpu_time="1-1.5 min of training (measured on an H200: 25-30 frames at 1.6k px, "
            "1M splats), plus about 1 min building gsplat's kernels the first time",
            strategy="mcmc",
        ),
        Preset(
            name="balanced", steps=15_000, max_splats=1_500_000, extract_fps=10, max_frames=300,
            frame_max_size=1920, train_max_size=1920, sh_degree=3, min_registered_fraction=0.6,
            min_psnr=15.0, target_gpu_minutes=10,
            cpu_time="a day or more: use a GPU",
            gpu_time="about 5 min (estimated from the fast preset's H200 figures)",
            strategy="mcmc",
        ),
        Preset(
            name="high", steps=30_000, max_splats=3_000_000, extract_fps=15, max_frames=500,
            frame_max_size=2560, train_max_size=2560, sh_degree=3, min_registered_fraction=0.6,
            min_psnr=15.0, target_gpu_minutes=15,
            cpu_time="days: use a GPU",
            gpu_time="about 15 min (estimated from the fast preset's H200 figures)",
            strategy="mcmc",
        ),
    )
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def describe_presets() -> str:
    """One line per preset with what it costs on a CPU and on a GPU (for `--help`)."""
    return "\n".join(
        f"  {p.name:<9} {p.steps:,} steps, up to {p.max_splats:,} splats\n"
        f"            CPU: {p.cpu_time}\n            GPU: {p.gpu_time}"
        for p in PRESETS.values()
    )


def get_preset(name: str) -> Preset:
    """The named preset, or a KeyError listing the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}") from None


def train_config(preset: Preset, strategy: str | None = None, **cadences: int) -> TrainConfig:
    """How the splat stage trains for `preset`: its steps, cap, SH degree and strategy (or
    the operator's `strategy`), plus output `cadences` (checkpoint_every, preview_every)."""
    return TrainConfig(
        steps=preset.steps,
        max_splats=preset.max_splats,
        sh_degree=preset.sh_degree,
        strategy=densification(strategy or preset.strategy),
        optimizer=preset.optimizer,
        **cadences,
    )
