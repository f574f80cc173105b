"""The production store interface: a bucket with DESIGN.md's storage layout."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

RESULTS_DIR = "results"
CONTENT_TYPES = {
    ".ply": "application/octet-stream",
    ".json": "application/json",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".mp4": "video/mp4",
}


def content_type_for(name: str) -> str:
    """The MIME type a result is stored with, so browsers and viewers handle it."""
    return CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


@dataclass(frozen=True)
class ManifestRef:
    """A production whose manifest has arrived; `version` changes when the manifest changes."""

    production_id: str
    version: str


class ProductionStore(Protocol):
    """Everything the pipeline needs from storage; local folder and Supabase implement it."""

    def describe(self) -> str:
        """Where results go, for people: a folder or `supabase://bucket`."""

    def list_manifests(self) -> Iterator[ManifestRef]:
        """Every production whose `production.json` exists, paging through all of them."""

    def manifest_version(self, production_id: str) -> str | None:
        """The version `list_manifests` gives this production; None without a manifest."""

    def read_text(self, key: str) -> str:
        """A small text object (the manifest)."""

    def list_files(self, prefix: str) -> list[str]:
        """Keys of the files under `prefix/` (not recursive into sub-folders)."""

    def download(self, key: str, dest: Path) -> None:
        """Stream an object to `dest` without holding it in memory."""

    def upload(self, key: str, source: Path) -> None:
        """Write (upsert) one object."""

    def publish_results(self, production_id: str, files: Mapping[str, Path]) -> dict[str, str]:
        """Put a complete set of results under `<id>/results/`, never a half-written one.

        Returns the storage key of each file, by file name.
        """

    def signed_url(self, key: str, expires_in_s: int = 7 * 24 * 3600) -> str:
        """A URL the studio app can fetch the object from."""

    def exists(self, key: str) -> bool:
        """Whether an object exists."""
