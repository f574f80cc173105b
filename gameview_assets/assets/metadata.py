"""Metadata people would rather look at than read: images inline, tables as tables."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
import numpy as np

# Dagster exports no public name for the compute log manager that keeps files on this disk.
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager

PICTURES = "pictures"
"""The folder beside a run's compute logs that holds its pictures."""


def image_markdown(
    source: Path | np.ndarray, title: str, max_width: int = 640
) -> dg.MetadataValue:
    """An image file, or uint8 pixels [H, W, 3], as Markdown metadata the Dagster UI shows.

    The UI draws a Markdown value in place only when it is under 1,000 characters (longer
    ones sit behind *Show Markdown*), so inside a run the picture is served by the webserver
    (`served_picture`) and the Markdown only links it; elsewhere it is inlined as a data URI.
    """
    from PIL import Image

    opened = Image.fromarray(source) if isinstance(source, np.ndarray) else Image.open(source)
    with opened as image:
        image = image.convert("RGB")
        if image.width > max_width:
            image = image.resize((max_width, round(image.height * max_width / image.width)))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    jpeg = buffer.getvalue()
    url = served_picture(jpeg)
    if url is None:
        url = f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode('ascii')}"
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}]({url})")


def served_picture(jpeg: bytes) -> str | None:
    """Keep a JPEG with the current run's compute logs and return the webserver path that
    serves it (`/logs/...`, the route behind the UI's log downloads), or None outside a run
    or where compute logs are not files on this machine.

    The picture lives and is deleted with the run's logs; a webserver that cannot read those
    (another machine, or one started with `--path-prefix`) shows the picture's title instead.
    """
    try:
        context = dg.OpExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return None
    manager = context.instance.compute_log_manager
    if not isinstance(manager, LocalComputeLogManager):
        return None
    log_key = [context.run_id, PICTURES, hashlib.sha256(jpeg).hexdigest()[:16]]
    path = Path(manager.get_captured_local_path(log_key, "jpg"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg)
    return "/logs/" + "/".join([*log_key, "jpg"])


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
