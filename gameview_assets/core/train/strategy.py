"""Densification strategies: gsplat's, with a hard splat cap and a CPU path for MCMC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gsplat.strategy import DefaultStrategy

# The one private gsplat hook the project overrides, and its parameters in gsplat 1.5.3.
# gsplat offers no public way to limit growth, and capping after growth would overshoot the
# cap (and the memory) by up to every splat that qualifies. test_train_strategy.py checks this
# signature and that `step_post_backward` still calls the hook, so an upgrade that changes
# either fails in CI rather than on a GPU; newer keyword arguments (gsplat's main branch adds
# `scene=`) pass through untouched.
GROW_HOOK = "_grow_gs"
GROW_HOOK_PARAMETERS = ("self", "params", "optimizers", "state", "step")


@dataclass
class CappedDefaultStrategy(DefaultStrategy):
    """gsplat's DefaultStrategy that never grows past `max_splats` (gsplat's has no cap).

    When more splats qualify to grow than the budget allows, only those with the largest
    accumulated image-plane gradient keep their statistics; the rest are reset, so gsplat's
    own duplicate/split code runs unchanged on the survivors.
    """

    max_splats: int = 0  # 0: no cap, gsplat's own behaviour

    @torch.no_grad()
    def _grow_gs(
        self,
        params: dict[str, torch.nn.Parameter],
        optimizers: dict[str, torch.optim.Optimizer],
        state: dict[str, Any],
        step: int,
        **newer: Any,
    ) -> tuple[int, int]:
        if self.max_splats > 0:
            budget = max(0, self.max_splats - len(params["means"]))
            average = state["grad2d"] / state["count"].clamp_min(1)
            qualifies = average > self.grow_grad2d
            if int(qualifies.sum()) > budget:
                ranked = torch.where(qualifies, average, torch.full_like(average, -1.0))
                chosen = torch.zeros_like(qualifies)
                chosen[torch.topk(ranked, budget).indices] = True
                state["grad2d"].mul_(chosen)
        return super()._grow_gs(params, optimizers, state, step, **newer)
