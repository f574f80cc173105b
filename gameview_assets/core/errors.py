"""The one exception type for captures a person must fix, carried to the studio app as-is."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class CaptureError(Exception):
    """Bad input: `code` is machine-readable, `message` names the file, `hint` says what to do."""

    def __init__(self, code: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


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
