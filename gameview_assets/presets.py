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
    web_max_splats: int = 1_500_000  # splats in scene.spz / scene.compressed.ply (phones)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        # preview's web budget is half its splats, so that a preview run exercises the cut
        Preset("preview", 600, 20_000, 3, 40, 640, 320, 1, 0.5, 12.0, 1, web_max_splats=10_000),
        Preset("fast", 5_000, 5_000_000, 5, 150, 1600, 1600, 3, 0.6, 20.0, 5),
        Preset("balanced", 15_000, 10_000_000, 10, 300, 1920, 1920, 3, 0.6, 22.0, 10),
        Preset("high", 30_000, 20_000_000, 15, 500, 2560, 2560, 3, 0.6, 24.0, 15),
    )
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def get_preset(name: str) -> Preset:
    """The named preset, or a KeyError listing the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}") from None
