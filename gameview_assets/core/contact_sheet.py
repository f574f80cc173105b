"""A grid of thumbnails, so a person sees at a glance what the frames look like."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path


def write_contact_sheet(
    images: Sequence[Path], out: Path, columns: int = 8, tile_width: int = 160, max_tiles: int = 64
) -> Path:
    """Tile up to `max_tiles` images (evenly spaced over the list) into one JPEG."""
    from PIL import Image

    step = max(1, math.ceil(len(images) / max_tiles))
    chosen = list(images)[::step]
    with Image.open(chosen[0]) as first:
        tile_height = round(first.height * tile_width / first.width)
    rows = math.ceil(len(chosen) / columns)
    sheet = Image.new("RGB", (columns * tile_width, rows * tile_height), (24, 24, 24))
    for index, path in enumerate(chosen):
        with Image.open(path) as image:
            tile = image.convert("RGB").resize((tile_width, tile_height))
        sheet.paste(tile, ((index % columns) * tile_width, (index // columns) * tile_height))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=85)
    return out
