"""Whether a stage may reuse its last successful work, so a retried run does not redo it.

A stage's *inputs digest* covers exactly what it reads: the settings it uses, the bytes of
the upstream records it reads, and the digests its upstream stages were done with (so a
change anywhere upstream reaches every stage below). The stage discards its `done` record
before it touches its outputs and writes it last, atomically, after every output: work cut
short by a crash is never taken as done.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

from gameview_assets.core.records import MissingRecordError, RecordFile

CACHE_VERSION = 1
"""Part of every digest: bump it when a stage's outputs change meaning, so no older work is
reused."""


@dataclass(frozen=True)
class StageDone:
    """A stage's last successful run: the digest of what it read, the run that did the work,
    and what it reported then (serialized by the caller; this module never reads it)."""

    stage: str
    inputs: str
    run_id: str
    report: str


def inputs_digest(
    stage: str,
    settings: object,
    records: Sequence[Path] = (),
    upstream: Sequence[RecordFile[StageDone]] = (),
) -> str:
    """sha256 over the stage's name, its settings (plain data: dataclasses, dicts, lists), the
    bytes of each record it reads and its upstream stages' own digests. An absent record or
    upstream `done` digests as absent: the stage then runs, and reruns once they appear."""
    digest = hashlib.sha256()
    head = [CACHE_VERSION, stage, settings]
    digest.update(json.dumps(head, sort_keys=True, default=_plain).encode())
    for path in records:
        digest.update(f"\0{Path(path).name}\0".encode())
        digest.update(Path(path).read_bytes() if Path(path).is_file() else b"\0absent")
    for done in upstream:
        digest.update(f"\0{_done_inputs(done)}".encode())
    return digest.hexdigest()


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not plain data a digest can cover")


def _done_inputs(done: RecordFile[StageDone]) -> str:
    try:
        return done.read().inputs
    except MissingRecordError:
        return "absent"


@dataclass(frozen=True)
class StageWork:
    """One stage's work in one run: where its `done` record lives, the digest of its inputs
    now, and the outputs that must still exist for the work to be reused."""

    stage: str
    done: RecordFile[StageDone]
    inputs: str
    outputs: tuple[Path, ...]

    def reusable(self) -> StageDone | None:
        """The last successful run's record when it was made from the same inputs and every
        output is still there; else None (the stage must run)."""
        try:
            done = self.done.read()
        except MissingRecordError:
            return None
        if done.stage != self.stage or done.inputs != self.inputs:
            return None
        return done if all(path.exists() for path in self.outputs) else None

    def begin(self) -> None:
        """Before the first output is touched: from here until `finish` nothing is reusable."""
        self.done.discard()

    def finish(self, run_id: str, report: str) -> StageDone:
        """After the last output is written: the work may be reused from now on."""
        done = StageDone(self.stage, self.inputs, run_id, report)
        self.done.write(done)
        return done

    def describe_outputs(self, root: Path) -> str:
        """The outputs, relative to the production's folder, for people."""
        return ", ".join(str(path.relative_to(root)) for path in self.outputs)
