"""Quality presets as data: one row per preset, read by every stage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """How hard each stage works for a production."""

    name: str
    steps: int
    max_splats: int
    extract_fps: float
    max_frames: int
    frame_max_size: int
    train_max_size: int
    sh_degree: int
    min_registered_fraction: float
    min_psnr: float
    target_gpu_minutes: float
    cpu_time: str  # what a person waits on a CPU (see README, "Presets": how it was measured)
    gpu_time: str
    web_max_splats: int = 1_500_000  # splats in scene.spz / scene.compressed.ply (phones)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        # smoke: checks a deployment end to end (the service tests run on it); a rough scene
        Preset("smoke", 150, 5_000, 2, 16, 320, 240, 0, 0.5, 8.0, 0.5,
               "about 1 min (measured, 2 cores)", "seconds (target, not yet measured)",
               web_max_splats=2_000),
        # preview's web budget is half its splats, so that a preview run exercises the cut
        Preset("preview", 600, 20_000, 3, 40, 640, 320, 1, 0.5, 12.0, 1,
               "2-4 min (measured, 2 cores; up to 10 min on a busy machine)",
               "about 1 min (target, not yet measured)", web_max_splats=10_000),
        Preset("fast", 5_000, 5_000_000, 5, 150, 1600, 1600, 3, 0.6, 20.0, 5,
               "many hours: use a GPU", "5 min (target, not yet measured)"),
        Preset("balanced", 15_000, 10_000_000, 10, 300, 1920, 1920, 3, 0.6, 22.0, 10,
               "a day or more: use a GPU", "10 min (target, not yet measured)"),
        Preset("high", 30_000, 20_000_000, 15, 500, 2560, 2560, 3, 0.6, 24.0, 15,
               "days: use a GPU", "15 min (target, not yet measured)"),
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
