"""COLMAP's log lines go to a file in the work directory, not around the progress bar.

pycolmap logs through glog, which reads its flags at every line, so switching them for the
length of one call is reliable even after COLMAP has logged before. glog names its file
`<prefix><date>-<time>.<pid>`; the parts are gathered into the asked-for path afterwards.
The flags are process-wide: two registrations running at once in one process share one file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def colmap_log_file(path: Path) -> Iterator[Path]:
    """Send COLMAP's lines of every level to `path` (replacing it) instead of stderr; only
    FATAL ones, which abort the process, still show. Afterwards the terminal flags are as
    they were and glog writes no log files (by default it leaves them in /tmp)."""
    import pycolmap

    log = pycolmap.logging
    prefix = path.parent / f"{path.name}."
    for stale in path.parent.glob(f"{prefix.name}*"):
        stale.unlink()
    saved = (log.logtostderr, log.alsologtostderr, log.stderrthreshold)
    log.logtostderr, log.alsologtostderr, log.stderrthreshold = False, False, int(log.FATAL)
    log.set_log_destination(log.INFO, str(prefix))  # the INFO file holds every level
    for level in (log.WARNING, log.ERROR, log.FATAL):
        log.set_log_destination(level, "")
    try:
        yield path
    finally:
        log.set_log_destination(log.INFO, "")  # flushes and closes the file
        log.logtostderr, log.alsologtostderr, log.stderrthreshold = saved
        parts = sorted(path.parent.glob(f"{prefix.name}*"))
        path.write_bytes(b"".join(part.read_bytes() for part in parts))
        for part in parts:
            part.unlink()
