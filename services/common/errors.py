"""Domain exceptions shared by every service.

The gateway maps them to HTTP statuses in one place and the shared consumer wrapper maps
`InvalidEvent` to a dead-letter reason in one place; nobody else translates them.
"""

from __future__ import annotations


class AlamaError(Exception):
    """Base of every error Alama raises on purpose."""


class InvalidEvent(AlamaError):
    """An event that can never be processed: retrying it would fail the same way."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class EnvelopeError(InvalidEvent):
    """The record is not a well-formed Alama envelope of an expected payload type."""
