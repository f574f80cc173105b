"""`sparse_model`: camera poses and a sparse point cloud from the frames, with pycolmap."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from gameview_assets.assets.failures import failures_reported, gate_spec, quality_gate
from gameview_assets.assets.frames import frames
from gameview_assets.assets.metadata import image_markdown, table
from gameview_assets.assets.progress import StageReporter
from gameview_assets.assets.reuse import finished, reuse_or_begin, stage_work
from gameview_assets.core.errors import FailureReason
from gameview_assets.k8s import SPARSE_MODEL_OP_TAGS
from gameview_assets.partitions import productions
from gameview_assets.presets import get_preset
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import WorkdirResource

if TYPE_CHECKING:
    from gameview_assets.core.sfm import PoseResult
    from gameview_assets.core.video import ExtractedFrame

STAGE = "sparse_model"
REGISTRATION_CHECK = "enough_frames_registered"


@dg.asset(
    partitions_def=productions,
    group_name="production",
    deps=[frames],
    kinds={"colmap"},
    op_tags=SPARSE_MODEL_OP_TAGS,
    check_specs=[gate_spec(REGISTRATION_CHECK, STAGE)],
)
def sparse_model(
    context: dg.AssetExecutionContext, workdir: WorkdirResource, callbacks: StudioCallbacks
) -> dg.MaterializeResult:
    """Register the frames (features, matching suited to video, mapping) and keep the best model.

    The registration floor is a blocking check, so a production with too few registered
    frames stops here, visibly, instead of training and uploading a bad scene.
    """
    from gameview_assets.core.contact_sheet import write_contact_sheet
    from gameview_assets.core.sfm import PoseOptions, register_images

    paths = workdir.production(context.partition_key)
    with failures_reported(STAGE):
        run = paths.run.read()
        extracted = paths.extracted_frames.read()
        preset = get_preset(run.preset)
        options = PoseOptions(max_image_size=preset.frame_max_size, min_registered_fraction=0.0)
        report = StageReporter(context, callbacks, STAGE, run.callback_url)
        work = stage_work(
            context,
            paths,
            {"options": options, "floor": preset.min_registered_fraction},
            records=[paths.extracted_frames.path],
            outputs=[paths.poses.path, paths.sfm, paths.registration_sheet],
        )
        cached = reuse_or_begin(work, paths, report)
        if cached is not None:
            return cached
        result = register_images(paths.frames, paths.sfm, options, report, frames=extracted)
    paths.poses.write(result)
    sheet = write_contact_sheet(
        [paths.frames / frame.name for frame in extracted],
        paths.registration_sheet,
        registered=set(result.registered),
    )
    report.finish(paths)
    fraction = round(result.num_registered / max(result.num_images, 1), 3)
    return finished(
        context,
        work,
        {
            "frames_registered": result.num_registered,
            "frames_extracted": result.num_images,
            "registered_fraction": fraction,
            "points_3d": result.num_points,
            "mean_reprojection_error_px": round(result.mean_reprojection_error, 3),
            "rung": result.rung,
            "timings_s": dg.MetadataValue.json({k: round(v, 2) for k, v in result.timings.items()}),
            "colmap_log": dg.MetadataValue.path(str(result.log_file)),
            "per_frame": table(result.frames),
            "registration": image_markdown(
                sheet,
                "Registered frames (green) and frames the pose stage lost (red)",
                max_width=960,
            ),
        },
        [registration_check(result, extracted, preset.min_registered_fraction)],
    )


def registration_check(
    result: "PoseResult", extracted: Sequence["ExtractedFrame"], floor: float
) -> dg.AssetCheckResult:
    """Pass when at least `floor` of the extracted frames were registered; else say why."""
    fraction = result.num_registered / max(result.num_images, 1)
    failure = None
    if fraction < floor:
        from gameview_assets.core.sfm import diagnose_capture

        failure = FailureReason(STAGE, *diagnose_capture(extracted, result.registered))
    return quality_gate(
        REGISTRATION_CHECK,
        f"{result.num_registered} of {result.num_images} frames registered",
        {"registered": result.num_registered, "extracted": result.num_images, "floor": floor},
        failure,
    )
