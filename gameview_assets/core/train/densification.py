"""Densification strategies as configuration: what a run starts from and how it grows.

Each is a frozen, torch-free dataclass (so `TrainConfig` imports cheaply) that carries the
initial splat opacity and scale it wants, its loss regularisation, and how to build and step
gsplat's strategy object, imported only when training builds it (as in gsplat's
simple_trainer, where `strategy` is a `DefaultStrategy` or `MCMCStrategy`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from gameview_assets.core.train.mcmc import TorchMCMCStrategy
    from gameview_assets.core.train.strategy import CappedDefaultStrategy

Params = dict[str, "torch.nn.Parameter"]
Optimizers = dict[str, "torch.optim.Optimizer"]


def refinement_steps(schedule: Mapping[str, int]) -> dict[str, int]:
    """gsplat's refine_* strategy arguments from `TrainConfig.schedule()`."""
    return {
        "refine_start_iter": schedule["refine_start"],
        "refine_stop_iter": schedule["refine_stop"],
        "refine_every": schedule["refine_every"],
    }


@dataclass(frozen=True)
class DefaultDensification:
    """gsplat's DefaultStrategy (clone, split, prune, opacity reset) capped at `max_splats`.

    Splats start faint (opacity 0.1) at their neighbour distance (scale x1), simple_trainer's
    defaults; `grow_grad2d` is the image-plane gradient above which a splat grows.
    """

    name: ClassVar[str] = "default"
    init_opacity: float = 0.1
    init_scale: float = 1.0
    grow_grad2d: float = 2e-4

    def build(
        self, max_splats: int, schedule: Mapping[str, int], scene_scale: float, initial: int
    ) -> tuple[CappedDefaultStrategy, dict[str, Any]]:
        """gsplat's strategy object and its initial state (`initial`: splats to start from)."""
        from gameview_assets.core.train.strategy import CappedDefaultStrategy

        strategy = CappedDefaultStrategy(
            max_splats=max_splats,
            grow_grad2d=self.grow_grad2d,
            reset_every=schedule["reset_every"],
            **refinement_steps(schedule),
        )
        return strategy, strategy.initialize_state(scene_scale=scene_scale)

    def regularisation(self, params: Params) -> Tensor | float:
        """Extra loss on the splats: none."""
        return 0.0

    def step_post_backward(
        self,
        strategy: CappedDefaultStrategy,
        params: Params,
        optimizers: Optimizers,
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        means_lr: float,
    ) -> None:
        """Grow and prune after the optimiser step; `info` is unpacked (see backend)."""
        strategy.step_post_backward(params, optimizers, state, step, info, packed=False)


@dataclass(frozen=True)
class MCMCDensification:
    """gsplat's MCMCStrategy: a fixed budget of splats, dead ones relocated onto live ones,
    faint ones nudged by noise scaled with the means learning rate.

    It starts from denser, smaller splats (opacity 0.5, scale x0.1) and regularises opacity
    and scale so splats can die and be relocated: simple_trainer's MCMC settings.
    """

    name: ClassVar[str] = "mcmc"
    init_opacity: float = 0.5
    init_scale: float = 0.1
    opacity_reg: float = 0.01
    scale_reg: float = 0.01
    noise_lr: float = 5e5
    stop_fraction: float = 0.8  # relocate and grow until this share of the steps (gsplat: 25k/30k)
    min_refine_every: int = 10  # refine at most this often, however far the budget is

    def build(
        self, max_splats: int, schedule: Mapping[str, int], scene_scale: float, initial: int
    ) -> tuple[TorchMCMCStrategy, dict[str, Any]]:
        """gsplat's strategy object (with a CPU path) and its initial state."""
        from gameview_assets.core.train.mcmc import TorchMCMCStrategy

        strategy = TorchMCMCStrategy(
            cap_max=max_splats,
            noise_lr=self.noise_lr,
            **refinement_steps(self.growth_schedule(schedule, initial, max_splats)),
        )
        return strategy, strategy.initialize_state()

    def growth_schedule(
        self, schedule: Mapping[str, int], initial: int, max_splats: int
    ) -> dict[str, int]:
        """Refinement that reaches the budget within the run.

        gsplat's MCMC adds a fixed 5% of splats per refinement, so its 30k-step schedule
        (every 100 steps until 25k) reaches a 1M budget from ~6k points after ~105 refinements;
        scaled to 5,000 steps it stopped at 22k splats (measured on an H200: kitchen, 16.1 dB).
        Refine until `stop_fraction` of the run, often enough to reach the budget by then.
        """
        steps = schedule["steps"]
        start = schedule["refine_start"]
        stop = max(start + 1, round(self.stop_fraction * steps))
        growth = max(max_splats, initial + 1) / max(initial, 1)
        needed = math.ceil(math.log(growth) / math.log(1.05))
        every = max(self.min_refine_every, min(schedule["refine_every"], (stop - start) // needed))
        return {**schedule, "refine_stop": stop, "refine_every": every}

    def regularisation(self, params: Params) -> Tensor | float:
        """Mean opacity and mean scale, weighted: pushes unneeded splats to die."""
        import torch

        opacity = torch.sigmoid(params["opacities"]).mean()
        return self.opacity_reg * opacity + self.scale_reg * torch.exp(params["scales"]).mean()

    def step_post_backward(
        self,
        strategy: TorchMCMCStrategy,
        params: Params,
        optimizers: Optimizers,
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        means_lr: float,
    ) -> None:
        """Relocate and add splats, then inject noise proportional to `means_lr`."""
        strategy.step_post_backward(params, optimizers, state, step, info, lr=means_lr)


Densification = DefaultDensification | MCMCDensification
DENSIFICATIONS: dict[str, type[Densification]] = {
    kind.name: kind for kind in (DefaultDensification, MCMCDensification)
}


def densification(name: str) -> Densification:
    """The strategy an operator names ('default' or 'mcmc'), with its default settings."""
    try:
        return DENSIFICATIONS[name]()
    except KeyError:
        choices = ", ".join(repr(known) for known in DENSIFICATIONS)
        raise ValueError(f"unknown densification strategy {name!r}: use {choices}") from None
