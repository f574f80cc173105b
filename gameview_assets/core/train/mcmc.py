"""gsplat's MCMC densification with its CUDA-only pieces (relocation, noise) in plain torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from gsplat.strategy import MCMCStrategy
from torch import Tensor

from gameview_assets.core.train import backend
from gameview_assets.core.train.projection import quat_to_rotmat

Params = dict[str, torch.nn.Parameter]
Optimizers = dict[str, torch.optim.Optimizer]


def compute_relocation(
    opacities: Tensor, scales: Tensor, ratios: Tensor, binoms: Tensor
) -> tuple[Tensor, Tensor]:
    """Opacity and scale for a Gaussian shared by `ratios` copies (MCMC paper, eq. 9).

    Same maths as gsplat's kernel: o' = 1 - (1 - o)^(1/n) and
    s' = o / (sum_{i=1..n} sum_{k<i} C(i-1, k) (-1)^k o'^(k+1) / sqrt(k+1)) * s.
    """
    n_max = binoms.shape[0]
    ratios = ratios.clamp(1, n_max).long()
    new_opacities = 1.0 - torch.pow(1.0 - opacities.double(), 1.0 / ratios)
    # coefficient[n, k] = sum over i = k+1..n of C(i-1, k): a cumulative sum of binomial rows.
    coefficients = torch.cat([binoms.new_zeros(1, n_max), torch.cumsum(binoms, dim=0)]).double()
    k = torch.arange(n_max, device=opacities.device, dtype=torch.float64)
    terms = (-1.0) ** k / torch.sqrt(k + 1) * new_opacities[:, None] ** (k + 1)
    denominators = (coefficients[ratios] * terms).sum(dim=1)
    new_scales = (opacities.double() / denominators)[:, None] * scales.double()
    return new_opacities.to(opacities.dtype), new_scales.to(scales.dtype)


def _replace(
    params: Params,
    optimizers: Optimizers,
    param_fn: Callable[[str, Tensor], Tensor],
    state_fn: Callable[[Tensor], Tensor],
) -> None:
    """Swap every parameter for `param_fn`'s result, carrying Adam moments through `state_fn`."""
    for name, old in list(params.items()):
        new = torch.nn.Parameter(param_fn(name, old.detach()), requires_grad=old.requires_grad)
        params[name] = new
        optimizer = optimizers[name]
        moments = optimizer.state.pop(old, {})
        optimizer.state[new] = {
            key: value if key == "step" else state_fn(value) for key, value in moments.items()
        }
        optimizer.param_groups[0]["params"] = [new]


def _relocated(params: Params, sources: Tensor, binoms: Tensor, min_opacity: float) -> dict:
    opacities = torch.sigmoid(params["opacities"].detach())
    new_opacities, new_scales = compute_relocation(
        opacities[sources],
        torch.exp(params["scales"].detach())[sources],
        torch.bincount(sources)[sources] + 1,
        binoms,
    )
    eps = torch.finfo(torch.float32).eps
    new_opacities = new_opacities.clamp(min_opacity, 1.0 - eps)
    return {"opacities": torch.logit(new_opacities), "scales": torch.log(new_scales)}


@torch.no_grad()
def relocate_dead(
    params: Params, optimizers: Optimizers, binoms: Tensor, min_opacity: float
) -> int:
    """Move Gaussians under `min_opacity` onto live ones drawn by opacity."""
    opacities = torch.sigmoid(params["opacities"].flatten())
    dead = torch.where(opacities <= min_opacity)[0]
    alive = torch.where(opacities > min_opacity)[0]
    if len(dead) == 0 or len(alive) == 0:
        return 0
    sources = alive[torch.multinomial(opacities[alive], len(dead), replacement=True)]
    updates = _relocated(params, sources, binoms, min_opacity)

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = p.clone()
        if name in updates:
            p[sources] = updates[name].to(p.dtype).reshape(p[sources].shape)
        p[dead] = p[sources]
        return p

    def state_fn(v: Tensor) -> Tensor:
        v = v.clone()
        v[sources] = 0
        return v

    _replace(params, optimizers, param_fn, state_fn)
    return len(dead)


@torch.no_grad()
def add_gaussians(
    params: Params, optimizers: Optimizers, binoms: Tensor, min_opacity: float, n: int
) -> int:
    """Append `n` copies of Gaussians drawn by opacity, sharing their opacity and scale."""
    if n <= 0:
        return 0
    opacities = torch.sigmoid(params["opacities"].flatten())
    sources = torch.multinomial(opacities, n, replacement=True)
    updates = _relocated(params, sources, binoms, min_opacity)

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = p.clone()
        if name in updates:
            p[sources] = updates[name].to(p.dtype).reshape(p[sources].shape)
        return torch.cat([p, p[sources]])

    def state_fn(v: Tensor) -> Tensor:
        return torch.cat([v, v.new_zeros((n, *v.shape[1:]))])

    _replace(params, optimizers, param_fn, state_fn)
    return n


@torch.no_grad()
def inject_position_noise(params: Params, scaler: float) -> None:
    """Perturb nearly transparent Gaussians along their own covariance (MCMC exploration)."""
    opacities = torch.sigmoid(params["opacities"].flatten())
    rotations = quat_to_rotmat(params["quats"])
    variances = torch.exp(params["scales"]) ** 2
    covariances = (rotations * variances[:, None, :]) @ rotations.transpose(1, 2)
    gate = torch.sigmoid(100.0 * ((1.0 - opacities) - 0.995))
    noise = torch.randn_like(params["means"]) * gate[:, None] * scaler
    params["means"].add_(torch.einsum("nij,nj->ni", covariances, noise))


@dataclass
class TorchMCMCStrategy(MCMCStrategy):
    """MCMCStrategy that runs on any device: gsplat's own code on CUDA, ours elsewhere."""

    def step_post_backward(
        self,
        params: Params,
        optimizers: Optimizers,
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        lr: float,
    ) -> None:
        if backend.uses_gsplat(params["means"]):
            super().step_post_backward(params, optimizers, state, step, info, lr)
            return
        binoms = state["binoms"]
        if self.refine_start_iter < step < self.refine_stop_iter and step % self.refine_every == 0:
            relocate_dead(params, optimizers, binoms, self.min_opacity)
            current = len(params["means"])
            target = min(self.cap_max, int(1.05 * current))
            add_gaussians(params, optimizers, binoms, self.min_opacity, target - current)
        inject_position_noise(params, lr * self.noise_lr)
