"""Time comes in through a clock so tests can control it."""

from __future__ import annotations

import datetime as _dt
import time
from typing import Protocol

# The latest moment anything accepts (the year 3000): later ones are mistakes, and
# Python's dates end at the year 9999.
MAX_EPOCH_MS = 32_503_680_000_000


class Clock(Protocol):
    """Returns the current time in epoch milliseconds."""

    def __call__(self) -> int: ...


def system_clock() -> int:
    """Wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to; for tests and replays."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 UTC ("2026-11-23T09:30:00.000Z"); None stays None."""
    if ms is None:
        return None
    moment = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
