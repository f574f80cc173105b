"""The production store interface (a bucket with DESIGN.md's storage layout), and what the
pipeline reads from it: a production resolved for a run, its videos."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from gameview_assets.core.errors import CaptureError
from gameview_assets.core.production import (
    MANIFEST_NAME,
    MAX_VIDEOS,
    VIDEO_SUFFIXES,
    Manifest,
    ProductionKeys,
    ProductionRun,
    is_production_id,
)

CONTENT_TYPES = {
    ".ply": "application/octet-stream",
    ".json": "application/json",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".mp4": "video/mp4",
    ".html": "text/html; charset=utf-8",
}


def content_type_for(name: str) -> str:
    """The MIME type a result is stored with, so browsers and viewers handle it."""
    return CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


MB = 1_000_000


def human_size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / MB:.1f} MB"


class ResultTooLargeError(CaptureError):
    """The store refuses a result this big (Supabase: HTTP 413, the bucket's size limit)."""

    def __init__(self, key: str, size: int, limit: int | None, where: str) -> None:
        self.key, self.size, self.limit = key, size, limit
        name = PurePosixPath(key).name
        limit_text = (
            f"the limit of {where} is {human_size(limit)}"
            if limit
            else f"{where} refused it (the project's upload limit; 50 MB on Supabase's Free plan)"
        )
        super().__init__(
            "result_too_large",
            f"{name} is {human_size(size)} ({size:,} bytes) and could not be stored: {limit_text}",
            "choose a preset that makes a smaller scene (e.g. 'preview'), or have an operator "
            "raise the bucket's file size limit (Supabase dashboard: Storage, bucket settings; "
            "the project's limit is under Storage settings), then upload production.json again",
        )


class StorageUnavailableError(CaptureError):
    """The store did not answer (connection refused or dropped, HTTP 5xx): the service's
    fault, not the capture's; the step's retry policy tries again, as may the run later."""

    retryable = True

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(
            "storage_unavailable",
            f"storage ({where}) did not answer: {detail}",
            "this is the service's fault, not the capture's, and nothing was published: "
            "retry the production once storage answers again (re-run it, or upload "
            "production.json again)",
        )


class StorageAccessError(CaptureError):
    """Storage refuses the service's key, or has no such bucket: the deployment's settings
    are wrong (a rotated or mistyped key, a misspelled bucket), not the capture. Never taken
    for a missing object, and not retried: nothing changes until an operator fixes them."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(
            "storage_misconfigured",
            f"storage ({where}) refused the service: {detail}",
            "this is the service's fault, not the capture's: an operator must set "
            "SUPABASE_SERVICE_ROLE_KEY to the project's current service_role key (Supabase "
            "dashboard: Project Settings, API keys) and GAMEVIEW_BUCKET to an existing bucket, "
            "restart the service, then upload production.json again",
        )


class SupersededError(CaptureError):
    """production.json changed (or went) while the run was going: its results would be for
    a manifest that is no longer there, so they are not published."""

    def __init__(self, production_id: str, run_version: str | None, now: str | None) -> None:
        now_text = f"is now version {now}" if now else "has been removed"
        super().__init__(
            "superseded",
            f"{production_id}/{MANIFEST_NAME} changed while this run was going (it ran "
            f"version {run_version}, the manifest {now_text}); its results were not published",
            "nothing to do: the run for the new manifest publishes the results"
            if now
            else f"upload {MANIFEST_NAME} again to process the production",
        )


def still_current(store: ProductionStore, run: ProductionRun) -> Callable[[], None]:
    """A check to make just before results become visible: `SupersededError` when the
    manifest is no longer the version this run resolved."""

    def check() -> None:
        now = store.manifest_version(run.production_id)
        if now != run.manifest_version:
            raise SupersededError(run.production_id, run.manifest_version, now)

    return check


@dataclass(frozen=True)
class ManifestRef:
    """A production whose manifest has arrived; `version` changes when the manifest changes."""

    production_id: str
    version: str


class ProductionStore(Protocol):
    """Everything the pipeline needs from storage; local folder and Supabase implement it."""

    def describe(self) -> str:
        """Where results go, for people: a folder or `supabase://bucket`."""

    def list_folders(self) -> list[str]:
        """The names of the top-level folders, valid production ids or not, as listed; cheap
        (one listing, paged), whether or not a manifest has arrived. See `production_ids`."""

    def manifest_versions(self, folders: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        """`(folder, manifest_version(folder))` in the given order, lazily: a caller may stop
        early."""

    def manifest_version(self, folder: str) -> str | None:
        """The version of exactly `<folder>/production.json` (never another folder's, whatever
        the case); None without a manifest."""

    def object_version(self, key: str) -> str | None:
        """A token that changes whenever the object at exactly `key` changes; None without
        one. A stage that downloads an object reuses its copy while this stays the same."""

    def read_text(self, key: str) -> str:
        """A small text object (the manifest). Every read raises `FileNotFoundError` for a
        missing object, whatever the server answers."""

    def list_files(self, prefix: str) -> list[str]:
        """Keys of the files under `prefix/` (not recursive into sub-folders)."""

    def download(self, key: str, dest: Path) -> None:
        """Stream an object to `dest` without holding it in memory."""

    def upload(self, key: str, source: Path) -> None:
        """Write (upsert) one object, streamed from disk; `ResultTooLargeError` when the store
        refuses its size."""

    def publish_results(
        self,
        production_id: str,
        files: Mapping[str, Path],
        before_commit: Callable[[], None] | None = None,
    ) -> dict[str, str]:
        """Put a complete set of results under `<id>/results/`, never a half-written one: a
        failed publish leaves none that `bundle.json` (written last) marks complete.
        `before_commit` runs once the files are staged, before any becomes visible; what it
        raises stops the publish.

        Returns the storage key of each file, by file name.
        """

    def signed_url(self, key: str, expires_in_s: int = 7 * 24 * 3600) -> str:
        """A URL the studio app can fetch the object from."""

    def exists(self, key: str) -> bool:
        """Whether exactly this object exists (case-sensitive, a folder is not one)."""

    def close(self) -> None:
        """Release connections (a no-op for the local folder)."""


def production_ids(folders: Iterable[str]) -> list[str]:
    """The ids folders can stand for, sorted. Supabase lists names without regard to case,
    so of `Alpha` and `alpha` it may list only `Alpha`: each name is tried lowercased."""
    return sorted({name.lower() for name in folders if is_production_id(name.lower())})


def misnamed_folders(folders: Iterable[str]) -> list[str]:
    """Folders whose names cannot be production ids (upper case, accents, too long), sorted."""
    return sorted(name for name in folders if not is_production_id(name))


def list_manifests(store: ProductionStore) -> Iterator[ManifestRef]:
    """Every production whose `production.json` exists, from one listing of the store."""
    for production_id, version in store.manifest_versions(production_ids(store.list_folders())):
        if version is not None:
            yield ManifestRef(production_id, version)


def resolve_production(store: ProductionStore, production_id: str, run_id: str) -> ProductionRun:
    """Read the manifest once and resolve it for this run: preset, callback URL, version and
    the full keys of the videos to process (the manifest's list, else every video uploaded).

    Raises `InvalidProductionError` for a bad id or manifest; `require_videos` checks the
    videos found, once the run's record (and so its callback URL) has been written.
    """
    from gameview_assets.presets import PRESET_NAMES

    keys = ProductionKeys(production_id)
    if not store.exists(keys.manifest):
        raise CaptureError(
            "no_manifest",
            f"{keys.manifest} was not found in {store.describe()}",
            f"upload the videos, then {MANIFEST_NAME}",
        )
    version = store.manifest_version(production_id)
    manifest = Manifest.from_json(store.read_text(keys.manifest), PRESET_NAMES)
    if manifest.videos:
        video_keys = [keys.listed_video(key) for key in manifest.videos]
    else:
        video_keys = [key for key in store.list_files(keys.videos) if keys.is_video(key)]
    return ProductionRun(
        production_id=production_id,
        run_id=run_id,
        preset=manifest.preset,
        callback_url=manifest.callback_url,
        manifest_version=version,
        video_keys=tuple(video_keys),
    )


def require_videos(run: ProductionRun) -> None:
    """Refuse a run with no videos, or more than `MAX_VIDEOS`."""
    keys = ProductionKeys(run.production_id)
    if not run.video_keys:
        raise CaptureError(
            "no_videos",
            f"production {run.production_id} has no videos under {keys.videos}/",
            f"upload at least one video ({', '.join(VIDEO_SUFFIXES)}) before {MANIFEST_NAME}",
        )
    if len(run.video_keys) > MAX_VIDEOS:
        raise CaptureError(
            "too_many_videos",
            f"production {run.production_id} has {len(run.video_keys)} videos under "
            f"{keys.videos}/, more than {MAX_VIDEOS}",
            f"upload at most {MAX_VIDEOS} videos of one place or object, or list the ones "
            f'to use in {MANIFEST_NAME} ("videos": [...])',
        )


def download_videos(store: ProductionStore, run: ProductionRun, dest: Path) -> Iterator[Path]:
    """Download the run's videos into `dest`, yielding each local file as it arrives."""
    for key in run.video_keys:
        if not store.exists(key):
            raise CaptureError(
                "missing_video",
                f"{key} is listed in {MANIFEST_NAME} but not in storage",
                f"upload every video listed in {MANIFEST_NAME}, then write it again",
            )
        local = dest / PurePosixPath(key).name
        store.download(key, local)
        yield local
