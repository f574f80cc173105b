"""`source_videos`: the production's videos, brought from the store and probed."""

import json
import shutil
from pathlib import PurePosixPath

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from gameview_assets.assets.reporting import StageReporter, markdown_table, stage_failure
from gameview_assets.core.errors import CaptureError
from gameview_assets.core.production import (
    MANIFEST_NAME,
    VIDEO_SUFFIXES,
    InvalidProductionError,
    Manifest,
    validate_production_id,
)
from gameview_assets.partitions import productions
from gameview_assets.presets import PRESET_NAMES
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import StoreResource, WorkdirResource

STAGE = "source_videos"


@asset(partitions_def=productions, group_name="production", kinds={"ffmpeg"})
def source_videos(
    context: AssetExecutionContext,
    store: StoreResource,
    workdir: WorkdirResource,
    callbacks: StudioCallbacks,
) -> MaterializeResult:
    """Download the production's videos into its work directory and probe each one."""
    from gameview_assets.core.video import probe_video

    try:
        production_id = validate_production_id(context.partition_key)
        bucket = store.open()
        manifest_key = f"{production_id}/{MANIFEST_NAME}"
        if not bucket.exists(manifest_key):
            raise stage_failure(
                STAGE,
                "no_manifest",
                f"{manifest_key} was not found in {bucket.describe()}",
                "upload the videos, then production.json",
            )
        manifest_text = bucket.read_text(manifest_key)
        manifest = Manifest.from_json(manifest_text, PRESET_NAMES)
    except InvalidProductionError as exc:
        raise stage_failure(STAGE, "invalid_production", exc.message, exc.hint) from exc

    paths = workdir.production(production_id)
    report = StageReporter(context, callbacks, STAGE, manifest.callback_url)
    keys = list(manifest.videos) or [
        key
        for key in bucket.list_files(f"{production_id}/videos")
        if key.lower().endswith(VIDEO_SUFFIXES)
    ]
    if not keys:
        raise stage_failure(
            STAGE,
            "no_videos",
            f"production {production_id} has no videos under {production_id}/videos/",
            f"upload at least one video ({', '.join(VIDEO_SUFFIXES)}) before production.json",
        )

    (paths.root / "timings.json").unlink(missing_ok=True)
    shutil.rmtree(paths.videos, ignore_errors=True)
    paths.videos.mkdir(parents=True)
    infos = []
    for index, key in enumerate(keys):
        full_key = key if key.startswith(f"{production_id}/") else f"{production_id}/{key}"
        if not bucket.exists(full_key):
            raise stage_failure(
                STAGE,
                "missing_video",
                f"{full_key} is listed in production.json but not in storage",
                "upload every video listed in production.json, then write it again",
            )
        local = paths.videos / PurePosixPath(full_key).name
        bucket.download(full_key, local)
        try:
            infos.append(probe_video(local))
        except CaptureError as exc:
            raise stage_failure(STAGE, exc.code, exc.message, exc.hint) from exc
        report((index + 1) / len(keys), f"probed {local.name}")

    (paths.root / MANIFEST_NAME).write_text(manifest_text, encoding="utf-8")
    rows = [
        {
            "video": info.path.name,
            "duration_s": round(info.duration_s, 2),
            "size": f"{info.width}x{info.height}",
            "fps": round(info.fps, 2),
            "rotation": info.rotation,
            "codec": info.codec,
        }
        for info in infos
    ]
    (paths.root / "videos.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    report.finish(paths)
    return MaterializeResult(
        metadata={
            "videos": len(infos),
            "total_duration_s": round(sum(i.duration_s for i in infos), 2),
            "preset": manifest.preset,
            "probe": markdown_table(rows, list(rows[0])),
            "work_dir": MetadataValue.path(str(paths.root)),
        }
    )
