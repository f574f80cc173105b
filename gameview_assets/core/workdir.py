"""One production's work directory: every folder, file and record name stages share.

Stages hand files to each other here, never through pickled return values; this module is
the only place their names are spelled.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gameview_assets.core.production import RESULT_FILES, ProductionRun, validate_production_id
from gameview_assets.core.records import RecordFile, StageTimings, TrainingSummary
from gameview_assets.core.sfm.pipeline import PoseResult
from gameview_assets.core.stage_cache import StageDone
from gameview_assets.core.video import ExtractedFrame, VideoInfo


def callback_outbox(workdir: Path) -> Path:
    """Callbacks not delivered yet, under the work directory (a dot: never a production id)."""
    return Path(workdir) / ".callback-outbox"


@dataclass(frozen=True)
class ProductionPaths:
    """Paths under `<workdir>/<production_id>/`."""

    root: Path

    @classmethod
    def under(cls, workdir: Path, production_id: str) -> ProductionPaths:
        return cls(Path(workdir) / validate_production_id(production_id))

    # Folders, one per stage that writes files.
    @property
    def videos(self) -> Path:
        return self.root / "videos"

    @property
    def frames(self) -> Path:
        return self.root / "frames"

    @property
    def sfm(self) -> Path:
        return self.root / "sfm"

    @property
    def splat(self) -> Path:
        return self.root / "splat"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    # Records: one type, one write, one read each.
    @property
    def run(self) -> RecordFile[ProductionRun]:
        """The manifest as `source_videos` resolved it for the current run."""
        return RecordFile(self.root / "run.json", ProductionRun)

    @property
    def probed_videos(self) -> RecordFile[list[VideoInfo]]:
        return RecordFile(self.root / "videos.json", list[VideoInfo])

    @property
    def extracted_frames(self) -> RecordFile[list[ExtractedFrame]]:
        return RecordFile(self.root / "frames.json", list[ExtractedFrame])

    @property
    def poses(self) -> RecordFile[PoseResult]:
        return RecordFile(self.root / "poses.json", PoseResult)

    @property
    def training(self) -> RecordFile[TrainingSummary]:
        return RecordFile(self.splat / "train.json", TrainingSummary)

    def stage_done(self, stage: str) -> RecordFile[StageDone]:
        """A stage's last successful run (`core.stage_cache`): written last, after its outputs."""
        return RecordFile(self.root / "done" / f"{stage}.json", StageDone)

    @property
    def timings(self) -> RecordFile[StageTimings]:
        return RecordFile(self.root / "timings.json", StageTimings)

    # Files.
    @property
    def contact_sheet(self) -> Path:
        return self.root / "contact_sheet.jpg"

    @property
    def registration_sheet(self) -> Path:
        return self.root / "registration_sheet.jpg"

    @property
    def splats_file(self) -> Path:
        return self.splat / "splats.pt"

    def result(self, name: str) -> Path:
        """A result file (a name of RESULT_FILES: `ply`, `cameras`, `thumbnail`, `spz`,
        `compressed_ply`, `turntable`, `viewer`, `bundle`) as written before publishing."""
        return self.bundle / RESULT_FILES[name]

    def fresh(self, folder: Path) -> Path:
        """Empty `folder` so a stage never mixes in a past run's files."""
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder
