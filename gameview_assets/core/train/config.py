"""Training configuration; free of torch so presets and definitions import it cheaply."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from gameview_assets.core.train.densification import DefaultDensification, Densification

OPTIMIZERS = ("adam", "selective_adam")


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how; zero-valued schedule fields are derived from `steps`.

    Learning rates are gsplat's simple_trainer defaults, multiplied (all but opacity) by
    `lr_boost` so short runs converge: 0 derives sqrt(3000 / steps) clipped to [1, 3].
    Refinement, SH growth and the means decay are scaled to `steps` so short runs densify.
    `strategy` is the densification (`densification.densification(name)` from a name); it
    also sets the splats' initial opacity and scale.
    """

    steps: int
    max_splats: int
    sh_degree: int = 3
    holdout_every: int = 8
    strategy: Densification = field(default_factory=DefaultDensification)
    checkpoint_every: int = 0
    preview_every: int = 0
    seed: int = 0
    device: str = "auto"
    ssim_lambda: float = 0.2
    means_lr: float = 1.6e-4
    means_lr_final_ratio: float = 0.01
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20
    lr_boost: float = 0.0
    background_points: int = 5000  # far shell, at most max_splats // 4: splats.background_shell
    sh_degree_interval: int = 0
    refine_start: int = 0
    refine_stop: int = 0
    refine_every: int = 0
    reset_every: int = 0
    random_background: bool = False
    # "adam" (torch's), or "selective_adam": gsplat's SelectiveAdam, which updates only the
    # splats seen in the step's view (CUDA only; Taming 3DGS: ~1.6x faster, ~0.2 dB lower)
    optimizer: str = "adam"
    cpu_tile_size: int = 8
    num_threads: int = 0  # 0: see cpu.training_threads

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            choices = ", ".join(repr(name) for name in OPTIMIZERS)
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use {choices}")
        if isinstance(self.strategy, str):
            raise TypeError(
                f"strategy={self.strategy!r}: pass densification({self.strategy!r}) "
                "from gameview_assets.core.train.densification"
            )

    def schedule(self) -> dict[str, int]:
        """Steps for SH growth and refinement, scaled from gsplat's 30k-step defaults."""
        every = self.refine_every or min(100, max(10, self.steps // 60))
        return {
            "steps": self.steps,
            "sh_degree_interval": self.sh_degree_interval or max(1, self.steps // 30),
            "refine_every": every,
            # at least 60 steps between opacity resets: a short run (smoke) must recover from each
            "reset_every": self.reset_every or max(every, 60, self.steps // 10),
            "refine_start": self.refine_start or min(500, max(every, self.steps // 20)),
            "refine_stop": self.refine_stop or min(15_000, self.steps // 2),
        }

    def learning_rate_boost(self) -> float:
        return self.lr_boost or min(3.0, max(1.0, math.sqrt(3000 / self.steps)))

    def fingerprint(self) -> dict[str, Any]:
        """Fields a checkpoint must agree on to be resumed (not output cadences), as plain
        data; the strategy is named, since two strategies could share field values."""
        fields = asdict(self)
        for cadence in ("checkpoint_every", "preview_every", "device", "num_threads"):
            fields.pop(cadence)
        fields["strategy"] = {"name": self.strategy.name, **fields["strategy"]}
        return fields
