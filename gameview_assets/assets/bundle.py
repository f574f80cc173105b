"""`bundle`: the result files, written to the store's `results/` only once all are complete."""

import shutil
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from gameview_assets.assets.reporting import (
    StageReporter,
    image_markdown,
    load_run_manifest,
    read_index,
)
from gameview_assets.assets.splat import splat
from gameview_assets.core.export import (
    InvalidPlyError,
    bundle_document,
    cameras_json,
    read_ply,
    splat_arrays,
    write_json,
    write_ply,
)
from gameview_assets.partitions import productions
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import StoreResource, WorkdirResource

STAGE = "bundle"
PLY_CHECK = "valid_ply"
THUMBNAIL_WIDTH = 640


@asset(
    partitions_def=productions,
    group_name="production",
    deps=[splat],
    kinds={"ply"},
    check_specs=[AssetCheckSpec(PLY_CHECK, asset=STAGE, blocking=True)],
)
def bundle(
    context: AssetExecutionContext,
    store: StoreResource,
    workdir: WorkdirResource,
    callbacks: StudioCallbacks,
) -> MaterializeResult:
    """Export scene.ply, cameras.json, thumbnail.jpg and bundle.json, then publish them."""
    from gameview_assets.core.colmap_model import read_cameras
    from gameview_assets.core.thumbnail import write_thumbnail
    from gameview_assets.core.train.checkpoint import load_splats

    production_id = context.partition_key
    paths = workdir.production(production_id)
    manifest, preset = load_run_manifest(paths)
    report = StageReporter(context, callbacks, STAGE, manifest.callback_url)
    poses = read_index(paths.poses_index, STAGE)
    training = read_index(paths.train_index, STAGE)

    shutil.rmtree(paths.bundle, ignore_errors=True)
    paths.bundle.mkdir(parents=True)
    splats = load_splats(paths.splats_file)
    arrays = splat_arrays(splats)
    ply_path = paths.bundle / "scene.ply"
    write_ply(arrays, ply_path)
    report(0.3, "scene.ply written")
    ply_check = verify_ply(ply_path, len(arrays))

    cameras = read_cameras(Path(poses["undistorted_dir"]) / "sparse")
    cameras_path = paths.bundle / "cameras.json"
    write_json(cameras_json(cameras), cameras_path)
    thumbnail_path = write_thumbnail(
        splats, cameras, paths.bundle / "thumbnail.jpg", width=THUMBNAIL_WIDTH
    )
    report(0.6, "thumbnail rendered")

    frames_extracted = len(read_index(paths.frames_index, STAGE))
    metrics = {
        "frames_extracted": frames_extracted,
        "frames_registered": poses["num_registered"],
        "points_3d": poses["num_points"],
        "splats": len(arrays),
        "psnr": round(float(training["psnr"]), 3),
        "ssim": round(float(training["ssim"]), 4),
        "steps": training["steps"],
        "device": training["device"],
        "eval_history": training["eval_history"],
    }
    timings = report.finish(paths)
    files = [ply_path, cameras_path, thumbnail_path]
    bundle_path = paths.bundle / "bundle.json"
    write_json(bundle_document(production_id, files, metrics, timings, preset.name), bundle_path)
    if not ply_check.passed:
        return MaterializeResult(metadata={"published": False}, check_results=[ply_check])

    bucket = store.open()
    keys = bucket.publish_results(production_id, {p.name: p for p in [*files, bundle_path]})
    return MaterializeResult(
        metadata={
            "results": MetadataValue.text(f"{bucket.describe()}/{production_id}/results"),
            "files": MetadataValue.json(keys),
            "scene_ply_mb": round(ply_path.stat().st_size / 1e6, 2),
            "splats": len(arrays),
            "cameras": len(cameras),
            "held_out_psnr": metrics["psnr"],
            "thumbnail": image_markdown(thumbnail_path, "Thumbnail"),
        },
        check_results=[ply_check],
    )


def verify_ply(path: Path, expected_splats: int) -> AssetCheckResult:
    """The PLY must read back with every 3DGS field, finite values and the right count."""
    try:
        count = len(read_ply(path))
        problem = None if count == expected_splats else f"{count} splats, not {expected_splats}"
    except InvalidPlyError as exc:
        count, problem = 0, str(exc)
    metadata: dict[str, object] = {"splats": count}
    if problem:
        metadata.update(
            {
                "stage": STAGE,
                "code": "invalid_ply",
                "message": f"scene.ply failed validation: {problem}",
                "hint": "this is a processing fault, not the capture's: retry the production",
            }
        )
    return AssetCheckResult(
        check_name=PLY_CHECK,
        passed=problem is None,
        metadata=metadata,
        description=problem or f"{count} splats, all fields finite",
    )
