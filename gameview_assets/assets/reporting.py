"""What every stage shares: progress reporting, pictures in metadata, failures people can act on."""

from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from dagster import AssetExecutionContext, Failure, MetadataValue

from gameview_assets.core.production import MANIFEST_NAME, Manifest
from gameview_assets.core.workdir import ProductionPaths
from gameview_assets.presets import PRESET_NAMES, Preset, get_preset
from gameview_assets.resources.callbacks import StudioCallbacks

STAGE_SPANS: dict[str, tuple[float, float]] = {
    "source_videos": (0.0, 0.05),
    "frames": (0.05, 0.15),
    "sparse_model": (0.15, 0.35),
    "splat": (0.35, 0.95),
    "bundle": (0.95, 1.0),
}
PROGRESS_LOG_PREFIX = "progress"


@dataclass
class StageReporter:
    """Turns a stage's own 0..1 progress into log lines and `processing` callbacks."""

    context: AssetExecutionContext
    callbacks: StudioCallbacks
    stage: str
    callback_url: str | None
    started: float = field(default_factory=time.perf_counter)
    _last_logged: float = -1.0

    def __call__(self, fraction: float, message: str = "") -> None:
        start, end = STAGE_SPANS[self.stage]
        overall = start + (end - start) * min(max(fraction, 0.0), 1.0)
        if fraction >= 1.0 or fraction - self._last_logged >= 0.05:
            self._last_logged = fraction
            self.context.log.info(
                f"{PROGRESS_LOG_PREFIX} {overall:.3f} {self.stage}: {message or f'{fraction:.0%}'}"
            )
        self.callbacks.processing(
            production_id=self.context.partition_key,
            run_id=self.context.run.run_id,
            stage=self.stage,
            progress=overall,
            url=self.callback_url,
        )

    def finish(self, paths: ProductionPaths) -> dict[str, float]:
        """Record this stage's wall time with the production's timings and return them all."""
        self(1.0, "done")
        return record_stage_time(paths, self.stage, time.perf_counter() - self.started)


def stage_failure(stage: str, code: str, message: str, hint: str) -> Failure:
    """A failure whose stage, code and hint reach the studio app's `failed` callback."""
    return Failure(
        description=f"{message}. {hint}",
        metadata={"stage": stage, "code": code, "message": message, "hint": hint},
    )


def load_run_manifest(paths: ProductionPaths) -> tuple[Manifest, Preset]:
    """The manifest copied into the work directory by `source_videos`, and its preset."""
    manifest = Manifest.from_json(
        (paths.root / MANIFEST_NAME).read_text(encoding="utf-8"), PRESET_NAMES
    )
    return manifest, get_preset(manifest.preset)


def read_index(path: Path, stage: str) -> dict:
    """A stage's JSON index; a missing one means the upstream stage must run first."""
    if not path.is_file():
        raise stage_failure(
            stage,
            "missing_upstream",
            f"{path.name} is missing from the work directory",
            "materialize the upstream assets of this production first",
        )
    return json.loads(path.read_text(encoding="utf-8"))


def image_markdown(path: Path, title: str, max_width: int = 640) -> MetadataValue:
    """An image inlined in Markdown metadata, so the Dagster UI shows it."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.width > max_width:
            image = image.resize((max_width, round(image.height * max_width / image.width)))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return MetadataValue.md(f"**{title}**\n\n![{title}](data:image/jpeg;base64,{encoded})")


def markdown_table(rows: list[dict], columns: list[str]) -> MetadataValue:
    """A Markdown table of the given columns."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return MetadataValue.md("\n".join(lines))


def record_stage_time(paths: ProductionPaths, stage: str, seconds: float) -> dict[str, float]:
    """Add a stage's wall time to the production's timings (read by `bundle`)."""
    timings_path = paths.root / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    timings[stage] = round(seconds, 3)
    timings_path.write_text(json.dumps(timings, indent=2), encoding="utf-8")
    return timings
