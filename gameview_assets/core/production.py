"""What a production is: a validated id and the manifest the studio app writes last."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

PRODUCTION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
MANIFEST_NAME = "production.json"
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")


class InvalidProductionError(ValueError):
    """A production id or manifest that cannot be processed as given."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def validate_production_id(production_id: str) -> str:
    """Return the id if it is a safe slug; ids become folder names and storage prefixes."""
    if not PRODUCTION_ID_PATTERN.fullmatch(production_id or ""):
        raise InvalidProductionError(
            f"production id {production_id!r} is not a safe slug",
            "use 1-128 letters, digits, '-' or '_', starting with a letter or digit "
            "(no '/', '.', or spaces)",
        )
    return production_id


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
