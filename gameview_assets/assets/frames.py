"""`frames`: the frames worth training on, extracted from the videos with FFmpeg."""

import statistics

import dagster as dg

from gameview_assets.assets.failures import failures_reported
from gameview_assets.assets.metadata import image_markdown
from gameview_assets.assets.progress import StageReporter
from gameview_assets.assets.reuse import finished, reuse_or_begin, stage_work
from gameview_assets.assets.source_videos import source_videos
from gameview_assets.core.errors import CaptureError
from gameview_assets.partitions import productions
from gameview_assets.presets import get_preset
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import WorkdirResource

STAGE = "frames"
MIN_FRAMES = 3


@dg.asset(
    partitions_def=productions, group_name="production", deps=[source_videos], kinds={"ffmpeg"}
)
def frames(
    context: dg.AssetExecutionContext, workdir: WorkdirResource, callbacks: StudioCallbacks
) -> dg.MaterializeResult:
    """Extract sharp, distinct frames at the preset's rate and size, phone rotation applied."""
    from gameview_assets.core.contact_sheet import write_contact_sheet
    from gameview_assets.core.video import FrameSelection, extract_frames

    paths = workdir.production(context.partition_key)
    with failures_reported(STAGE):
        run = paths.run.read()
        videos = [info.path for info in paths.probed_videos.read()]
        preset = get_preset(run.preset)
        selection = FrameSelection(
            fps=preset.extract_fps, max_size=preset.frame_max_size, max_frames=preset.max_frames
        )
        report = StageReporter(context, callbacks, STAGE, run.callback_url)
        work = stage_work(
            context,
            paths,
            {"selection": selection, "min_frames": MIN_FRAMES},
            records=[paths.probed_videos.path],
            outputs=[paths.extracted_frames.path, paths.frames, paths.contact_sheet],
        )
        cached = reuse_or_begin(work, paths, report)
        if cached is not None:
            return cached
        paths.extracted_frames.discard()  # no record may outlive the frames it lists
        extracted = extract_frames(videos, paths.fresh(paths.frames), selection, report)
        if len(extracted) < MIN_FRAMES:
            raise CaptureError(
                "too_few_frames",
                f"only {len(extracted)} usable frames came out of {len(videos)} video(s)",
                "film for longer (10 s or more) while moving slowly around the subject",
            )
    paths.extracted_frames.write(extracted)
    sheet = write_contact_sheet([paths.frames / f.name for f in extracted], paths.contact_sheet)
    report.finish(paths)
    return finished(
        context,
        work,
        {
            "frames_extracted": len(extracted),
            "extract_fps": preset.extract_fps,
            "max_size_px": preset.frame_max_size,
            "image_size": f"{extracted[0].width}x{extracted[0].height}",
            "sharpness_median": round(statistics.median_high(f.sharpness for f in extracted), 2),
            "contact_sheet": image_markdown(sheet, "Extracted frames", max_width=960),
        },
    )
