"""Typed JSON records that stages hand each other through the work directory.

Each record file has one type, one write and one read (pydantic validates dataclasses, Paths
and nested lists both ways), so no stage indexes another's dictionary by string.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class MissingRecordError(FileNotFoundError):
    """A stage's input record is absent: the stage that writes it has not run."""


@dataclass(frozen=True)
class RecordFile(Generic[T]):
    """One record on disk: `kind` is its type (a dataclass, or a list/dict of them)."""

    path: Path
    kind: Any

    def write(self, value: T) -> None:
        """Write atomically: a reader never sees half a record."""
        from pydantic import TypeAdapter

        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            partial.write_bytes(TypeAdapter(self.kind).dump_json(value, indent=2))
            os.replace(partial, self.path)
        finally:  # a full disk leaves no half-written file behind
            partial.unlink(missing_ok=True)

    def read(self) -> T:
        """The record; a missing one, or one of another shape (written by an older version),
        raises `MissingRecordError`: the stage that writes it must run again."""
        from pydantic import TypeAdapter, ValidationError

        if not self.path.is_file():
            raise MissingRecordError(f"{self.path.name} is missing from {self.path.parent}")
        try:
            return TypeAdapter(self.kind).validate_json(self.path.read_bytes())
        except ValidationError as exc:
            raise MissingRecordError(
                f"{self.path.name} in {self.path.parent} is not a readable record "
                f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']})"
            ) from exc

    def exists(self) -> bool:
        return self.path.is_file()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class TrainingSummary:
    """What `bundle` and the UI need of a training run (the splats themselves are a file)."""

    steps: int
    num_splats: int
    psnr: float
    ssim: float
    num_eval_views: int
    seconds: float
    steps_per_second: float
    peak_memory_mb: float
    device: str
    resumed_from_step: int
    checkpoint_discarded: str = ""  # why a checkpoint found was not resumed
    eval_history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def of(cls, result: Any) -> TrainingSummary:
        """The summary of a `TrainResult` (same field names; the tensors stay out)."""
        return cls(**{f.name: getattr(result, f.name) for f in fields(cls)})


StageTimings = dict[str, float]
"""Wall seconds per stage of the current run, in stage order."""
