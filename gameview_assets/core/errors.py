"""The one exception type for captures a person must fix, carried to the studio app as-is."""

from __future__ import annotations


class CaptureError(Exception):
    """Bad input: `code` is machine-readable, `message` names the file, `hint` says what to do."""

    def __init__(self, code: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
