"""What a production is: a validated id, the manifest the studio app writes last, and the
storage keys of everything it owns (DESIGN.md's bucket layout). Every key is built here."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

PRODUCTION_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")
"""Lowercase only: Supabase Storage lists keys case-insensitively (it compares `lower(name)`)
while it fetches them case-sensitively, so `Alpha` and `alpha` would answer for each other."""
MANIFEST_NAME = "production.json"
VIDEOS_DIR = "videos"
RESULTS_DIR = "results"
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
RESULT_FILES: dict[str, str] = {
    "ply": "scene.ply",
    "cameras": "cameras.json",
    "thumbnail": "thumbnail.jpg",
    "spz": "scene.spz",
    "compressed_ply": "scene.compressed.ply",
    "turntable": "turntable.mp4",
    "viewer": "viewer.html",
    "bundle": "bundle.json",
}
"""Result name in the callback body → file name under `<id>/results/`; bundle.json is last."""


class InvalidProductionError(ValueError):
    """A production id or manifest that cannot be processed as given."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def validate_production_id(production_id: str) -> str:
    """Return the id if it is a safe slug; ids become folder names and storage prefixes."""
    production_id = production_id if isinstance(production_id, str) else ""
    if PRODUCTION_ID_PATTERN.fullmatch(production_id):
        return production_id
    hint = (
        "use 1-128 lowercase letters, digits, '-' or '_', starting with a letter or digit "
        "(no upper case, '/', '.', spaces or accents)"
    )
    lowered = production_id.lower()
    if lowered != production_id and PRODUCTION_ID_PATTERN.fullmatch(lowered):
        raise InvalidProductionError(
            f"production id {production_id!r} is not a safe slug: it has upper-case letters, "
            "and storage lists names without regard to case, so it could be confused with "
            f"{lowered!r}",
            f"{hint}, e.g. {lowered!r}",
        )
    if len(production_id) > 128:
        raise InvalidProductionError(
            f"production id {production_id[:32]!r}... is not a safe slug: it is "
            f"{len(production_id)} characters long, the limit is 128",
            hint,
        )
    raise InvalidProductionError(f"production id {production_id!r} is not a safe slug", hint)


@dataclass(frozen=True)
class Manifest:
    """`production.json`: which preset, where to call back, which videos (default: all)."""

    preset: str = "fast"
    callback_url: str | None = None
    videos: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_json(cls, text: str | bytes, known_presets: tuple[str, ...]) -> Manifest:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidProductionError(
                f"{MANIFEST_NAME} is not valid JSON ({exc})",
                'write a JSON object such as {"preset": "fast"}',
            ) from exc
        if not isinstance(data, dict):
            raise InvalidProductionError(
                f"{MANIFEST_NAME} must be a JSON object", 'write {"preset": "fast", ...}'
            )
        preset = data.get("preset", "fast")
        if preset not in known_presets:
            raise InvalidProductionError(
                f"unknown preset {preset!r} in {MANIFEST_NAME}",
                f"use one of: {', '.join(known_presets)}",
            )
        callback_url = data.get("callback_url")
        if callback_url is not None and not isinstance(callback_url, str):
            raise InvalidProductionError(
                "callback_url must be a string", "give an https URL or leave it out"
            )
        videos = data.get("videos") or []
        if not isinstance(videos, list) or not all(isinstance(v, str) for v in videos):
            raise InvalidProductionError(
                "videos must be a list of storage keys", 'e.g. "videos": ["videos/a.mp4"]'
            )
        for key in videos:
            if not key.startswith("videos/") or ".." in key.split("/"):
                raise InvalidProductionError(
                    f"video key {key!r} is outside the production's videos/ folder",
                    'list keys relative to the production, e.g. "videos/a.mp4"',
                )
        return cls(preset=preset, callback_url=callback_url, videos=tuple(videos))

    def to_json(self) -> str:
        data: dict[str, object] = {"preset": self.preset}
        if self.callback_url:
            data["callback_url"] = self.callback_url
        if self.videos:
            data["videos"] = list(self.videos)
        return json.dumps(data, indent=2)


@dataclass(frozen=True)
class ProductionRun:
    """A production as one run resolved it: `source_videos` reads the manifest once into this
    record; every later stage and the callback sensors read the record, not the manifest."""

    production_id: str
    run_id: str
    preset: str
    callback_url: str | None
    manifest_version: str | None
    video_keys: tuple[str, ...]


@dataclass(frozen=True)
class ProductionKeys:
    """The storage keys of one production: `<id>/production.json`, `<id>/videos/…`,
    `<id>/results/…`. The id is validated, so no key can leave the production's prefix."""

    production_id: str

    def __post_init__(self) -> None:
        validate_production_id(self.production_id)

    @property
    def manifest(self) -> str:
        return f"{self.production_id}/{MANIFEST_NAME}"

    @property
    def videos(self) -> str:
        """The folder (prefix) the app uploads videos into."""
        return f"{self.production_id}/{VIDEOS_DIR}"

    def video(self, file_name: str) -> str:
        return f"{self.videos}/{file_name}"

    def listed_video(self, relative_key: str) -> str:
        """A manifest's `videos/…` entry (already checked by `Manifest`) as a full key."""
        return f"{self.production_id}/{relative_key}"

    def relative(self, key: str) -> str:
        """A full key as the manifest lists it, relative to the production."""
        return key.removeprefix(f"{self.production_id}/")

    @property
    def results(self) -> str:
        return f"{self.production_id}/{RESULTS_DIR}"

    def result(self, file_name: str) -> str:
        return f"{self.results}/{file_name}"

    def staging(self, token: str) -> str:
        """The folder one publish uploads into before its files move into `results/` (a dot
        and a token of its own: never taken for results, never shared by two publishes)."""
        if not re.fullmatch(r"[0-9a-f]{8,64}", token):
            raise ValueError(f"staging token {token!r} is not a hex string")
        return f"{self.production_id}/.{RESULTS_DIR}-{token}"

    def staged_result(self, token: str, file_name: str) -> str:
        return f"{self.staging(token)}/{file_name}"

    def is_video(self, key: str) -> bool:
        return key.startswith(f"{self.videos}/") and key.lower().endswith(VIDEO_SUFFIXES)
