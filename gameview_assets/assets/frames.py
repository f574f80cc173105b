"""`frames`: the frames worth training on, extracted from the videos with FFmpeg."""

import json
import shutil
from dataclasses import asdict

from dagster import AssetExecutionContext, MaterializeResult, asset

from gameview_assets.assets.reporting import (
    StageReporter,
    image_markdown,
    load_run_manifest,
    read_index,
    stage_failure,
)
from gameview_assets.assets.source_videos import source_videos
from gameview_assets.core.contact_sheet import write_contact_sheet
from gameview_assets.core.errors import CaptureError
from gameview_assets.partitions import productions
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import WorkdirResource

STAGE = "frames"


@asset(partitions_def=productions, group_name="production", deps=[source_videos], kinds={"ffmpeg"})
def frames(
    context: AssetExecutionContext, workdir: WorkdirResource, callbacks: StudioCallbacks
) -> MaterializeResult:
    """Extract sharp, distinct frames at the preset's rate and size, phone rotation applied."""
    from gameview_assets.core.video import FrameSelection, extract_frames

    paths = workdir.production(context.partition_key)
    manifest, preset = load_run_manifest(paths)
    videos = [paths.videos / row["video"] for row in read_index(paths.root / "videos.json", STAGE)]
    selection = FrameSelection(
        fps=preset.extract_fps, max_size=preset.frame_max_size, max_frames=preset.max_frames
    )
    report = StageReporter(context, callbacks, STAGE, manifest.callback_url)
    shutil.rmtree(paths.frames, ignore_errors=True)
    paths.frames.mkdir(parents=True)
    try:
        extracted = extract_frames(videos, paths.frames, selection, report)
    except CaptureError as exc:
        raise stage_failure(STAGE, exc.code, exc.message, exc.hint) from exc
    if len(extracted) < 3:
        raise stage_failure(
            STAGE,
            "too_few_frames",
            f"only {len(extracted)} usable frames came out of {len(videos)} video(s)",
            "film for longer (10 s or more) while moving slowly around the subject",
        )
    paths.frames_index.write_text(
        json.dumps([asdict(frame) for frame in extracted], indent=2), encoding="utf-8"
    )
    sheet = write_contact_sheet(
        [paths.frames / f.name for f in extracted], paths.root / "contact_sheet.jpg"
    )
    sharpness = [f.sharpness for f in extracted]
    report.finish(paths)
    return MaterializeResult(
        metadata={
            "frames_extracted": len(extracted),
            "extract_fps": preset.extract_fps,
            "max_size_px": preset.frame_max_size,
            "image_size": f"{extracted[0].width}x{extracted[0].height}",
            "sharpness_median": round(sorted(sharpness)[len(sharpness) // 2], 2),
            "contact_sheet": image_markdown(sheet, "Extracted frames", max_width=960),
        }
    )
