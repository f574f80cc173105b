"""Reusing a stage's work: exact digests, the done record written last, outputs checked."""

from pathlib import Path

from gameview_assets.core.stage_cache import StageWork, inputs_digest
from gameview_assets.core.video import FrameSelection
from gameview_assets.core.workdir import ProductionPaths


def work(paths: ProductionPaths, stage: str, settings: object, upstream=()) -> StageWork:
    records = [paths.extracted_frames.path]
    ups = [paths.stage_done(name) for name in upstream]
    return StageWork(
        stage, paths.stage_done(stage), inputs_digest(stage, settings, records, ups),
        (paths.frames,),
    )  # fmt: skip


def test_digest_covers_settings_records_and_upstream(tmp_path: Path) -> None:
    paths = ProductionPaths.under(tmp_path, "p")
    selection = FrameSelection(fps=2, max_size=320, max_frames=16)
    record = [paths.extracted_frames.path]
    base = inputs_digest("frames", {"selection": selection}, record)
    assert base == inputs_digest("frames", {"selection": selection}, record)
    other = FrameSelection(fps=2, max_size=288, max_frames=16)
    assert base != inputs_digest("frames", {"selection": other}, record)
    assert base != inputs_digest("sparse_model", {"selection": selection}, record)
    paths.root.mkdir(parents=True)
    record[0].write_text("[]")  # a record that appeared, then changed
    appeared = inputs_digest("frames", {"selection": selection}, record)
    record[0].write_text("[ ]")
    changed = inputs_digest("frames", {"selection": selection}, record)
    assert len({base, appeared, changed}) == 3

    # A stage below sees a change upstream through the upstream's own digest.
    upstream = work(paths, "frames", {"selection": selection})
    upstream.finish("run-1", "{}")
    below = work(paths, "sparse_model", {}, upstream=["frames"]).inputs
    work(paths, "frames", {"selection": other}).finish("run-2", "{}")
    assert work(paths, "sparse_model", {}, upstream=["frames"]).inputs != below


def test_reusable_only_after_finish_with_same_inputs_and_outputs_present(tmp_path: Path) -> None:
    paths = ProductionPaths.under(tmp_path, "p")
    first = work(paths, "frames", {"fps": 2})
    assert first.reusable() is None  # never done
    first.begin()
    paths.frames.mkdir(parents=True)
    assert first.reusable() is None  # crashed mid-stage: outputs half-written, no done record
    done = first.finish("run-1", "report")
    assert work(paths, "frames", {"fps": 2}).reusable() == done
    assert done.run_id == "run-1" and done.report == "report"
    assert work(paths, "frames", {"fps": 3}).reusable() is None  # settings changed

    work(paths, "frames", {"fps": 2}).begin()  # a second attempt starts: nothing is reusable
    assert work(paths, "frames", {"fps": 2}).reusable() is None
    first.finish("run-2", "report")
    paths.frames.rmdir()  # an output deleted by hand
    assert work(paths, "frames", {"fps": 2}).reusable() is None
