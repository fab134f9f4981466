"""The one way the server extension says no: a status, a stable code and a sentence naming the problem."""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """A request the extension will not carry out, with what the browser is told.

    ``code`` is stable (the panel switches on it); ``message`` names the field or the object at fault, so a
    person reading it knows what to change.
    """

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        """The JSON body of the refusal: ``{"error", "code", "status", ...details}``."""
        return {"error": self.message, "code": self.code, "status": self.status, **self.details}
