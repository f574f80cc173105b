"""A grid of thumbnails, so a person sees at a glance what the frames look like."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from pathlib import Path

REGISTERED = (40, 200, 90)
MISSED = (230, 50, 50)


def write_contact_sheet(
    images: Sequence[Path],
    out: Path,
    columns: int = 8,
    tile_width: int = 160,
    max_tiles: int = 64,
    registered: Collection[str] | None = None,
) -> Path:
    """Tile up to `max_tiles` images (evenly spaced over the list) into one JPEG.

    With `registered`, each tile gets a green (registered) or red (not) frame, so a person
    sees at a glance which part of the capture the pose stage lost.
    """
    from PIL import Image, ImageDraw

    step = max(1, math.ceil(len(images) / max_tiles))
    chosen = list(images)[::step]
    with Image.open(chosen[0]) as first:
        tile_height = round(first.height * tile_width / first.width)
    rows = math.ceil(len(chosen) / columns)
    sheet = Image.new("RGB", (columns * tile_width, rows * tile_height), (24, 24, 24))
    for index, path in enumerate(chosen):
        with Image.open(path) as image:
            tile = image.convert("RGB").resize((tile_width, tile_height))
        left, top = (index % columns) * tile_width, (index // columns) * tile_height
        sheet.paste(tile, (left, top))
        if registered is not None:
            colour = REGISTERED if path.name in registered else MISSED
            box = (left + 1, top + 1, left + tile_width - 2, top + tile_height - 2)
            ImageDraw.Draw(sheet).rectangle(box, outline=colour, width=4)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=85)
    return out
