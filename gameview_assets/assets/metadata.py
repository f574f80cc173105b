"""Metadata people would rather look at than read: images inline, tables as tables."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
import numpy as np


def image_markdown(
    source: Path | np.ndarray, title: str, max_width: int = 640
) -> dg.MetadataValue:
    """An image file, or uint8 pixels [H, W, 3], inlined in Markdown metadata, so the Dagster
    UI shows it."""
    from PIL import Image

    opened = Image.fromarray(source) if isinstance(source, np.ndarray) else Image.open(source)
    with opened as image:
        image = image.convert("RGB")
        if image.width > max_width:
            image = image.resize((max_width, round(image.height * max_width / image.width)))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:image/jpeg;base64,{encoded})")


def table(rows: Sequence[Mapping[str, object]]) -> dg.MetadataValue:
    """Rows of plain values as a Dagster table (sortable in the UI), columns from the first."""
    columns = list(rows[0]) if rows else []
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: _plain(row.get(c)) for c in columns}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, _column_type(rows, c)) for c in columns]),
    )


def _plain(value: object) -> str | int | float | bool | None:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _column_type(rows: Sequence[Mapping[str, object]], column: str) -> str:
    values = [row.get(column) for row in rows if row.get(column) is not None]
    if values and all(isinstance(v, bool) for v in values):
        return "bool"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "float"
    return "string"
