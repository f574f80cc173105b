"""`source_videos`: the production resolved for this run, its videos brought and probed."""

import dagster as dg

from gameview_assets.assets.failures import failures_reported
from gameview_assets.assets.metadata import table
from gameview_assets.assets.progress import StageReporter
from gameview_assets.assets.retries import STORAGE_RETRY
from gameview_assets.assets.reuse import finished, reuse_or_begin, stage_work
from gameview_assets.partitions import productions
from gameview_assets.resources.callbacks import StudioCallbacks
from gameview_assets.resources.storage import StoreResource, WorkdirResource
from gameview_assets.resources.store import (
    download_videos,
    require_videos,
    resolve_production,
)

STAGE = "source_videos"


@dg.asset(
    partitions_def=productions,
    group_name="production",
    kinds={"ffmpeg"},
    retry_policy=STORAGE_RETRY,
)
def source_videos(
    context: dg.AssetExecutionContext,
    store: StoreResource,
    workdir: WorkdirResource,
    callbacks: StudioCallbacks,
) -> dg.MaterializeResult:
    """Read the manifest once into the run's record, download the videos and probe each.

    Later stages and the callback sensors read the record (`run.json`), never the manifest,
    so a manifest rewritten mid-run cannot change what this run does or whom it calls. The
    videos are downloaded again only when one of them changed in storage.
    """
    from gameview_assets.core.video import probe_video

    with failures_reported(STAGE):
        bucket = store.store  # a refused key or bucket fails the stage with its reason
        paths = workdir.production(context.partition_key)
        paths.run.discard()
        paths.timings.discard()
        run = resolve_production(bucket, context.partition_key, context.run.run_id)
        paths.run.write(run)
        require_videos(run)
        report = StageReporter(context, callbacks, STAGE, run.callback_url)
        versions = {key: bucket.object_version(key) for key in run.video_keys}
        work = stage_work(
            context, paths, versions, outputs=[paths.probed_videos.path, paths.videos]
        )
        now = {
            "preset": run.preset,
            "manifest_version": run.manifest_version or "",
            "callback_url": run.callback_url or "",
            "work_dir": dg.MetadataValue.path(str(paths.root)),
        }
        cached = reuse_or_begin(work, paths, report, now)
        if cached is not None:
            return cached
        infos = []
        for local in download_videos(bucket, run, paths.fresh(paths.videos)):
            infos.append(probe_video(local))
            report(len(infos) / len(run.video_keys), f"probed {local.name}")
    paths.probed_videos.write(infos)
    report.finish(paths)
    probe = [
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
    return finished(
        context,
        work,
        {
            "videos": len(infos),
            "total_duration_s": round(sum(i.duration_s for i in infos), 2),
            **now,
            "probe": table(probe),
        },
    )
