"""Files written by training: splats, resumable checkpoints; always written atomically."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gameview_assets.core.train.splats import SPLAT_KEYS

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_FILE = "latest.pt"


def checkpoints_in(work_dir: Path) -> Path:
    """Where a training run in `work_dir` keeps its resumable checkpoints."""
    return Path(work_dir) / CHECKPOINTS_DIR


def discard_checkpoints(work_dir: Path) -> None:
    """Drop the checkpoints once the trained splats are saved: nothing is left to resume."""
    shutil.rmtree(checkpoints_in(work_dir), ignore_errors=True)


def _atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary sibling then rename, so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, temporary)
        os.replace(temporary, path)
    finally:  # a full disk: drop the half-written file rather than leave it taking space
        temporary.unlink(missing_ok=True)


def save_splats(splats: dict[str, Tensor], path: Path) -> None:
    """The trained splats (means, quats, log scales, logit opacities, sh0, shN) on the CPU."""
    _atomic_save({key: splats[key].detach().cpu().contiguous() for key in SPLAT_KEYS}, path)


def load_splats(path: Path) -> dict[str, Tensor]:
    loaded = torch.load(Path(path), map_location="cpu", weights_only=True)
    missing = [key for key in SPLAT_KEYS if key not in loaded]
    if missing:
        raise ValueError(f"{path} is not a splat file: missing {', '.join(missing)}")
    return {key: loaded[key] for key in SPLAT_KEYS}


def save_checkpoint(state: dict[str, Any], checkpoint_dir: Path) -> Path:
    path = Path(checkpoint_dir) / CHECKPOINT_FILE
    _atomic_save(state, path)
    return path


class UnreadableCheckpointError(Exception):
    """A checkpoint file that is there but cannot be loaded (truncated, garbage, not ours)."""


def load_checkpoint(checkpoint_dir: Path) -> dict[str, Any] | None:
    """The latest checkpoint, or None when there is none; `UnreadableCheckpointError` when
    the file cannot be loaded as one, so the caller can say why it starts from zero."""
    path = Path(checkpoint_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableCheckpointError(f"{path.name} cannot be read ({detail})") from exc
    if not isinstance(state, dict):
        raise UnreadableCheckpointError(f"{path.name} holds a {type(state).__name__}, not a dict")
    return state
