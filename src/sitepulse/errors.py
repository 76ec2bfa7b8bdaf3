"""The exception tree shared across stages."""

from __future__ import annotations


class SitepulseError(Exception):
    """Base of sitepulse's own errors."""


class InvalidInput(SitepulseError):
    """Client data that cannot be accepted; `field` names where (e.g. 'events[3].ts')."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
