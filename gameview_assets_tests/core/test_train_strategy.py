"""The private gsplat hook the splat cap overrides, pinned so an upgrade fails here loudly."""

from __future__ import annotations

import inspect

from gsplat.strategy import DefaultStrategy

from gameview_assets.core.train.strategy import (
    GROW_HOOK,
    GROW_HOOK_PARAMETERS,
    CappedDefaultStrategy,
)


def test_gsplat_grow_hook_keeps_the_signature_the_cap_overrides() -> None:
    hook = getattr(DefaultStrategy, GROW_HOOK)
    assert tuple(inspect.signature(hook).parameters) == GROW_HOOK_PARAMETERS
    assert f"self.{GROW_HOOK}(" in inspect.getsource(DefaultStrategy.step_post_backward), (
        "gsplat's step_post_backward no longer grows through the hook: the cap would not apply"
    )
    assert GROW_HOOK in vars(CappedDefaultStrategy)


def test_the_cap_forwards_newer_keyword_arguments() -> None:
    """gsplat's main branch calls the hook with `scene=`; ours must pass it on, not fail."""
    parameters = inspect.signature(CappedDefaultStrategy._grow_gs).parameters
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
