"""Typed records round-trip through the work directory; a stale one says what to run."""

from pathlib import Path

import pytest

from gameview_assets.core.production import ProductionRun
from gameview_assets.core.records import MissingRecordError, TrainingSummary
from gameview_assets.core.video import ExtractedFrame
from gameview_assets.core.workdir import ProductionPaths


def test_records_round_trip_with_their_types(tmp_path: Path) -> None:
    paths = ProductionPaths.under(tmp_path, "p1")
    run = ProductionRun("p1", "r1", "preview", None, "v1", ("p1/videos/a.mp4",))
    frames = [ExtractedFrame("a_000000.jpg", "a.mp4", 0.5, 120.0, 90.0, 320, 240)]
    summary = TrainingSummary(600, 1000, 21.5, 0.7, 3, 12.0, 50.0, 512.0, "cpu", 0)
    paths.run.write(run)
    paths.extracted_frames.write(frames)
    paths.training.write(summary)
    assert paths.run.read() == run
    assert paths.extracted_frames.read() == frames
    assert paths.training.read() == summary


def test_a_missing_or_foreign_record_names_itself(tmp_path: Path) -> None:
    paths = ProductionPaths.under(tmp_path, "p1")
    with pytest.raises(MissingRecordError, match=r"run\.json is missing"):
        paths.run.read()
    paths.run.path.parent.mkdir(parents=True)
    paths.run.path.write_text('{"production_id": "p1"}')
    with pytest.raises(MissingRecordError, match=r"run\.json .* is not a readable record"):
        paths.run.read()
