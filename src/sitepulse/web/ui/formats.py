"""Jinja filters that format numbers for people: percentages, counts, changes, durations.

Each takes None (no data) and shows an en dash, so templates need no guards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

NO_DATA: Final = "–"


def _finite(value: object) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def pct(value: object, digits: int = 1) -> str:
    """0.0312 -> "3.1 %"."""
    x = _finite(value)
    return NO_DATA if x is None else f"{x * 100:.{digits}f} %"


def num(value: object, digits: int = 0) -> str:
    """12345.6 -> "12,346"; with digits, that many decimals."""
    x = _finite(value)
    return NO_DATA if x is None else f"{x:,.{digits}f}"


def signed(value: object, digits: int = 0, unit: str = "") -> str:
    """A change with its sign: +12, −3.5 (a real minus sign)."""
    x = _finite(value)
    if x is None:
        return NO_DATA
    text = f"{abs(x):,.{digits}f}{unit}"
    return ("+" if x > 0 else "−" if x < 0 else "±") + text


def signed_pct(value: object, digits: int = 1) -> str:
    """A change of a ratio in percentage points: +0.4 pp."""
    x = _finite(value)
    return NO_DATA if x is None else signed(x * 100, digits, " pp")


def signed_ratio(value: object, digits: int = 1) -> str:
    """A relative change as a signed percentage: +12.5 %."""
    x = _finite(value)
    return NO_DATA if x is None else signed(x * 100, digits, " %")


def ms(value: object) -> str:
    """Milliseconds as 850 ms or 2.4 s."""
    x = _finite(value)
    if x is None:
        return NO_DATA
    return f"{x:,.0f} ms" if x < 1000 else f"{x / 1000:,.1f} s"


def duration(value: object) -> str:
    """Milliseconds as a rough duration: 45 s, 12 min, 3.5 h, 2.0 d."""
    x = _finite(value)
    if x is None:
        return NO_DATA
    secs = x / 1000
    if secs < 90:
        return f"{secs:.0f} s"
    if secs < 5400:
        return f"{secs / 60:.0f} min"
    if secs < 172_800:
        return f"{secs / 3600:.1f} h"
    return f"{secs / 86400:.1f} d"


def direction(value: object) -> str:
    """ "up", "down" or "flat", for styling a change."""
    x = _finite(value)
    return "flat" if not x else ("up" if x > 0 else "down")


STATUS_LABELS: Final = {"green": "On target", "yellow": "Near target", "red": "Off target"}


def status_label(status: object) -> str:
    """The words that go with a status colour (never colour alone)."""
    return STATUS_LABELS.get(str(status), "No data") if status else "No data"


FILTERS: Final[dict[str, Callable[..., Any]]] = {
    "pct": pct,
    "num": num,
    "signed": signed,
    "signed_pct": signed_pct,
    "signed_ratio": signed_ratio,
    "ms": ms,
    "duration": duration,
    "direction": direction,
    "status_label": status_label,
}
