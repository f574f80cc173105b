"""One rasterization entry point: gsplat's CUDA kernels on GPU tensors, our torch code on CPU."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gameview_assets.core.train import rasterizer


def uses_gsplat(tensor: Tensor) -> bool:
    """Whether splats held in `tensor` are rendered and densified by gsplat's own code (its
    CUDA kernels and strategies) rather than ours: exactly when they live on a CUDA device.

    The one place that decides, so that a test can send CPU tensors down gsplat's path with
    its kernels swapped for a plain-torch stand-in (gameview_assets_tests/gsplat_cpu.py).
    """
    return tensor.is_cuda


def rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    cpu_tile_size: int = 8,
    **kwargs: Any,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """`gsplat.rasterization` with the same arguments and outputs, on any device.

    `cpu_tile_size` only applies to the CPU path (smaller tiles waste less work there).
    """
    scene = (means, quats, scales, opacities, colors, viewmats, Ks, width, height)
    if uses_gsplat(means):
        from gsplat import rasterization

        # packed=False: the layout our CPU path produces and the trainer hands to the
        # densification strategy (gsplat's own default, packed=True, would not match it).
        return rasterization(*scene, **{"packed": False, **kwargs})
    return rasterizer.rasterization(*scene, tile_size=cpu_tile_size, **kwargs)
