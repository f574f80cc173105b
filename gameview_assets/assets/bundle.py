"""`bundle`: the result files, written to the store's `results/` only once all are complete."""

from pathlib import Path

import dagster as dg

from gameview_assets.assets.failures import failures_reported, gate_spec, quality_gate
from gameview_assets.assets.metadata import image_markdown
from gameview_assets.assets.progress import StageReporter
from gameview_assets.assets.retries import STORAGE_RETRY
from gameview_assets.assets.reuse import finished, reuse_or_begin, stage_work
from gameview_assets.assets.splat import splat
from gameview_assets.core.errors import FailureReason
from gameview_assets.core.export import InvalidPlyError, read_ply
from gameview_assets.core.production import RESULT_FILES, ProductionRun
from gameview_assets.core.workdir import ProductionPaths
from gameview_assets.partitions import productions
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import StoreResource, WorkdirResource
from gameview_assets.resources.store import still_current
from gameview_assets.resources.web_budget import WebBudgetResource

STAGE = "bundle"
WEB_RESULTS = ("spz", "compressed_ply")
PLY_CHECK = "valid_ply"
THUMBNAIL_WIDTH = 640


class BundleConfig(dg.Config):
    """Operator choices on top of the preset (set in the launchpad)."""

    web_max_splats: int = 0  # splats in the web files; 0: GAMEVIEW_WEB_MAX_SPLATS or the preset's


@dg.asset(
    partitions_def=productions,
    group_name="production",
    deps=[splat],
    kinds={"ply"},
    retry_policy=STORAGE_RETRY,
    check_specs=[gate_spec(PLY_CHECK, STAGE)],
)
def bundle(
    context: dg.AssetExecutionContext,
    config: BundleConfig,
    store: StoreResource,
    workdir: WorkdirResource,
    callbacks: StudioCallbacks,
    web_budget: WebBudgetResource,
) -> dg.MaterializeResult:
    """Turn the scene upright and centre it; export scene.ply, cameras.json, thumbnail.jpg, the
    web versions (scene.spz, scene.compressed.ply: at most web_max_splats splats, those that
    contribute most to the training views) and bundle.json; then publish them. Files made
    from unchanged inputs are reused; publishing (idempotent) happens on every run."""
    from gameview_assets.core.train.config import TrainConfig
    from gameview_assets.presets import get_preset

    production_id = context.partition_key
    paths = workdir.production(production_id)
    with failures_reported(STAGE):
        run = paths.run.read()
    report = StageReporter(context, callbacks, STAGE, run.callback_url)
    preset = get_preset(run.preset)
    web_max_splats = web_budget.splats_for(preset.web_max_splats, config.web_max_splats)
    work = stage_work(
        context,
        paths,
        {
            "web_max_splats": web_max_splats,
            "train_max_size": preset.train_max_size,
            "holdout_every": TrainConfig.holdout_every,
            "thumbnail_width": THUMBNAIL_WIDTH,
        },
        records=[paths.extracted_frames.path, paths.poses.path, paths.training.path],
        outputs=[paths.result(name) for name in RESULT_FILES],
    )
    made = reuse_or_begin(work, paths, report)
    if made is None:
        made = finished(context, work, *export_bundle(paths, run, web_max_splats, report))
    metadata = dict(made.metadata or {})
    checks = list(made.check_results or ())
    if not all(check.passed for check in checks):
        return dg.MaterializeResult(metadata={**metadata, "published": False}, check_results=checks)

    bucket = store.store
    # result_too_large, storage_unavailable, or superseded: a newer manifest arrived meanwhile
    with failures_reported(STAGE):
        keys = bucket.publish_results(
            production_id,
            {RESULT_FILES[name]: paths.result(name) for name in RESULT_FILES},
            before_commit=still_current(bucket, run),
        )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "results": dg.MetadataValue.text(f"{bucket.describe()}/{production_id}/results"),
            "files": dg.MetadataValue.json(keys),
        },
        check_results=checks,
    )


def export_bundle(
    paths: ProductionPaths, run: ProductionRun, web_max_splats: int, report: StageReporter
) -> tuple[dict[str, object], list[dg.AssetCheckResult]]:
    """Write every result file into the work directory's bundle folder (not yet published);
    returns what to report and the PLY's quality gate."""
    import numpy as np

    from gameview_assets.core.align import (
        sparse_points,
        transform_cameras,
        transform_splats,
        upright_transform,
    )
    from gameview_assets.core.colmap_model import read_cameras
    from gameview_assets.core.export import (
        bundle_document,
        bundle_metrics,
        cameras_json,
        splat_arrays,
        splat_tensors,
        write_json,
        write_ply,
    )
    from gameview_assets.core.thumbnail import write_thumbnail
    from gameview_assets.core.train.checkpoint import load_splats
    from gameview_assets.core.train.config import TrainConfig
    from gameview_assets.core.turntable import contact_strip, write_turntable
    from gameview_assets.core.viewer import write_viewer
    from gameview_assets.core.web import training_and_held_out_views, write_web_versions
    from gameview_assets.presets import get_preset

    with failures_reported(STAGE):
        poses = paths.poses.read()
        training = paths.training.read()
        frames_extracted = len(paths.extracted_frames.read())
    paths.fresh(paths.bundle)
    model = poses.undistorted_dir / "sparse"
    cameras = read_cameras(model)
    transform = upright_transform(
        np.stack([camera.camtoworld for camera in cameras]), sparse_points(model)
    )
    arrays = transform_splats(splat_arrays(load_splats(paths.splats_file)), transform)
    cameras = transform_cameras(cameras, transform)
    write_ply(arrays, paths.result("ply"))
    report(0.3, "scene.ply written (upright, centred)")
    ply_check = verify_ply(paths.result("ply"), len(arrays))

    write_json(cameras_json(cameras), paths.result("cameras"))
    tensors = splat_tensors(arrays)
    view = write_thumbnail(tensors, cameras, paths.result("thumbnail"), width=THUMBNAIL_WIDTH)
    report(0.35, "thumbnail rendered")
    frames = write_turntable(tensors, view, paths.result("turntable"))
    report(0.5, "turntable rendered")

    preset = get_preset(run.preset)
    scoring, held_out = training_and_held_out_views(
        poses.undistorted_dir, preset.train_max_size, TrainConfig.holdout_every, transform.matrix
    )
    web = write_web_versions(
        arrays,
        {name: paths.result(name) for name in WEB_RESULTS},
        web_max_splats,
        scoring,
        held_out,
        full_size=paths.result("ply").stat().st_size,
    )
    write_viewer(paths.result("viewer"), view, RESULT_FILES["spz"], title=run.production_id)
    report(0.8, f"web versions and viewer written: {web['selection']}")

    metrics = bundle_metrics(frames_extracted, poses, training)
    timings = report.finish(paths)
    made = [paths.result(name) for name in RESULT_FILES if name != "bundle"]
    write_json(
        bundle_document(
            run.production_id,
            made,
            metrics,
            timings,
            run.preset,
            {
                "transform": transform.to_json(),
                "web": web,
                "views": {"thumbnail": view.to_json(), "turntable_frames": len(frames)},
            },
        ),
        paths.result("bundle"),
    )
    metadata: dict[str, object] = {
        "scene_ply_mb": round(paths.result("ply").stat().st_size / 1e6, 2),
        "splats": len(arrays),
        "cameras": len(cameras),
        "held_out_psnr": metrics["psnr"],
        "up_from": transform.up_source,
        "web": dg.MetadataValue.json(web),
        "thumbnail": image_markdown(paths.result("thumbnail"), "Thumbnail"),
        "turntable": image_markdown(contact_strip(frames), "Turntable (one turn)", max_width=960),
    }
    return metadata, [ply_check]


def verify_ply(path: Path, expected_splats: int) -> dg.AssetCheckResult:
    """The PLY must read back with every 3DGS field, finite values and the right count."""
    try:
        count = len(read_ply(path))
        problem = None if count == expected_splats else f"{count} splats, not {expected_splats}"
    except InvalidPlyError as exc:
        count, problem = 0, str(exc)
    failure = None
    if problem:
        failure = FailureReason(
            STAGE,
            "invalid_ply",
            f"scene.ply failed validation: {problem}",
            "this is a processing fault, not the capture's: retry the production",
        )
    return quality_gate(
        PLY_CHECK, f"{count} splats, all fields finite", {"splats": count}, failure
    )
