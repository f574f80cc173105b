"""The one exception type for captures a person must fix, carried to the studio app as-is."""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class CaptureError(Exception):
    """An error a person must act on, carried to the app as-is: bad input, or a fault of the
    service (a full disk, storage down). `code` is machine-readable, `message` names the file,
    `hint` says what to do and whose move it is."""

    retryable = False
    """Whether the same step could succeed if tried again (storage back): a step's retry
    policy applies then; bad input and a full disk are not retried."""

    def __init__(self, code: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def disk_full(error: OSError) -> CaptureError | None:
    """The reason for a write that failed because the disk (or quota) is full; None for any
    other OS error. It is the service's fault, so the hint is for whoever runs it."""
    if error.errno not in DISK_FULL_ERRNOS:
        return None
    where = f" writing {error.filename}" if error.filename else ""
    return CaptureError(
        "disk_full",
        f"the processing machine ran out of disk space{where}",
        "this is the service's fault, not the capture's: an operator must free space in the "
        "work directory (GAMEVIEW_WORKDIR) or give it a larger disk, then retry the production",
    )


@dataclass(frozen=True)
class FailureReason:
    """Why a production failed, in words the studio app can show a person: the stage it
    stopped in, a machine-readable code, what was wrong and what to do. The `failed`
    callback's `error`, and the metadata of a failed stage or quality gate, are this record."""

    stage: str
    code: str
    message: str
    hint: str

    def as_metadata(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict[str, object]) -> FailureReason | None:
        """The reason carried by event metadata (values may be Dagster metadata objects)."""
        fields = ("stage", "code", "message", "hint")
        if not all(key in metadata for key in fields):
            return None
        return cls(*(str(getattr(metadata[key], "value", metadata[key])) for key in fields))

    @classmethod
    def of_capture(cls, stage: str, error: CaptureError) -> FailureReason:
        return cls(stage, error.code, error.message, error.hint)
