"""What every analysis shares: the read interface, the period it covers, its filters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

DAY_MS = 86_400_000


class Reader(Protocol):
    """Read-only SQL over the store (DuckDB dialect); `Store.query` satisfies it."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class AnalysisError(ValueError):
    """A request an analysis cannot answer; `field` names the bad parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Period:
    """One site's events with start_ms <= ts < end_ms (epoch ms, UTC)."""

    site: str
    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise AnalysisError("end", f"must be after start (got {self.start_ms}..{self.end_ms})")

    @property
    def length_ms(self) -> int:
        return self.end_ms - self.start_ms

    def previous(self) -> Period:
        """The period of the same length just before this one, for comparisons."""
        return Period(self.site, self.start_ms - self.length_ms, self.start_ms)

    @property
    def params(self) -> list[Any]:
        """Bind values for `PERIOD_FILTER` (site, start, end)."""
        return [self.site, self.start_ms, self.end_ms]


# Human traffic of one site in one period; `?` binds Period.params in order.
# Bots are counted by ingest (and visible in /metrics) but never analysed.
PERIOD_FILTER = (
    "site = ? AND ts >= make_timestamp(?::BIGINT * 1000)"
    " AND ts < make_timestamp(?::BIGINT * 1000) AND NOT is_bot"
)
# Leads that count: real submissions, not bots and not synthetic test leads.
LEAD_FILTER = PERIOD_FILTER + " AND NOT is_test"
