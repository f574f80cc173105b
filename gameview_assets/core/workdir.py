"""The folder layout of one production's work directory, shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gameview_assets.core.production import validate_production_id


@dataclass(frozen=True)
class ProductionPaths:
    """Paths under `<workdir>/<production_id>/`; stages hand files to each other here."""

    root: Path

    @classmethod
    def under(cls, workdir: Path, production_id: str) -> ProductionPaths:
        return cls(Path(workdir) / validate_production_id(production_id))

    @property
    def videos(self) -> Path:
        return self.root / "videos"

    @property
    def frames(self) -> Path:
        return self.root / "frames"

    @property
    def frames_index(self) -> Path:
        return self.root / "frames.json"

    @property
    def sfm(self) -> Path:
        return self.root / "sfm"

    @property
    def poses_index(self) -> Path:
        return self.root / "poses.json"

    @property
    def splat(self) -> Path:
        return self.root / "splat"

    @property
    def splats_file(self) -> Path:
        return self.splat / "splats.pt"

    @property
    def train_index(self) -> Path:
        return self.splat / "train.json"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    def ensure(self) -> ProductionPaths:
        for path in (self.videos, self.frames, self.sfm, self.splat, self.bundle):
            path.mkdir(parents=True, exist_ok=True)
        return self
