"""`sparse_model`: camera poses and a sparse point cloud from the frames, with pycolmap."""

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from gameview_assets.assets.frames import frames
from gameview_assets.assets.reporting import (
    StageReporter,
    image_markdown,
    load_run_manifest,
    markdown_table,
    read_index,
    stage_failure,
)
from gameview_assets.core.contact_sheet import write_contact_sheet
from gameview_assets.core.errors import CaptureError
from gameview_assets.partitions import productions
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import WorkdirResource

if TYPE_CHECKING:
    from gameview_assets.core.sfm import FrameStats, PoseResult

STAGE = "sparse_model"
REGISTRATION_CHECK = "enough_frames_registered"


@asset(
    partitions_def=productions,
    group_name="production",
    deps=[frames],
    kinds={"colmap"},
    check_specs=[AssetCheckSpec(REGISTRATION_CHECK, asset=STAGE, blocking=True)],
)
def sparse_model(
    context: AssetExecutionContext, workdir: WorkdirResource, callbacks: StudioCallbacks
) -> MaterializeResult:
    """Register the frames (features, matching suited to video, mapping) and keep the best model.

    The registration floor is a blocking check, so a production with too few registered
    frames stops here, visibly, instead of training and uploading a bad scene.
    """
    from gameview_assets.core.sfm import FrameStats, PoseOptions, register_images

    paths = workdir.production(context.partition_key)
    manifest, preset = load_run_manifest(paths)
    extracted = [
        FrameStats(f["name"], f["video"], f["sharpness"], f["brightness"])
        for f in read_index(paths.frames_index, STAGE)
    ]
    options = PoseOptions(max_image_size=preset.frame_max_size, min_registered_fraction=0.0)
    report = StageReporter(context, callbacks, STAGE, manifest.callback_url)
    try:
        result = register_images(paths.frames, paths.sfm, options, report, frames=extracted)
    except CaptureError as exc:
        raise stage_failure(STAGE, exc.code, exc.message, exc.hint) from exc
    paths.poses_index.write_text(json.dumps(asdict(result), indent=2, default=str), "utf-8")
    metadata = {
        "frames_registered": result.num_registered,
        "frames_extracted": result.num_images,
        "registered_fraction": round(result.num_registered / max(result.num_images, 1), 3),
        "points_3d": result.num_points,
        "mean_reprojection_error_px": round(result.mean_reprojection_error, 3),
        "rung": result.rung,
        "timings_s": MetadataValue.json({k: round(v, 2) for k, v in result.timings.items()}),
        "per_frame": markdown_table(result.frames, list(result.frames[0])),
        "registration": image_markdown(
            write_contact_sheet(
                [paths.frames / frame.name for frame in extracted],
                paths.root / "registration_sheet.jpg",
                registered=set(result.registered),
            ),
            "Registered frames (green) and frames the pose stage lost (red)",
            max_width=960,
        ),
    }
    report.finish(paths)
    return MaterializeResult(
        metadata=metadata,
        check_results=[registration_check(result, extracted, preset.min_registered_fraction)],
    )


def registration_check(
    result: "PoseResult", extracted: list["FrameStats"], floor: float
) -> AssetCheckResult:
    """Pass when at least `floor` of the extracted frames were registered; else say why."""
    fraction = result.num_registered / max(result.num_images, 1)
    passed = fraction >= floor
    metadata: dict[str, object] = {
        "registered": result.num_registered,
        "extracted": result.num_images,
        "floor": floor,
    }
    description = f"{result.num_registered} of {result.num_images} frames registered"
    if not passed:
        from gameview_assets.core.sfm import diagnose_capture

        code, message, hint = diagnose_capture(extracted, result.registered)
        metadata.update({"stage": STAGE, "code": code, "message": message, "hint": hint})
        description = f"{message}. {hint}"
    return AssetCheckResult(
        check_name=REGISTRATION_CHECK, passed=passed, metadata=metadata, description=description
    )
