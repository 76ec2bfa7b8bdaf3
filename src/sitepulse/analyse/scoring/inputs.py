"""What a lead is scored on: the submitted lead, and what its visitor did on the site."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

FieldValue = str | int | float | bool | None


# A Struct: re-scoring builds one per stored lead, several times faster than a dataclass.
class LeadFacts(msgspec.Struct, frozen=True, gc=False):
    """The submitted lead and the GA4 channel it arrived by; `ts` is epoch ms (UTC).

    `country` is what the demographics table is keyed by (ISO alpha-2 by default): the
    form's value, or the geo country when the form has none.
    """

    ts: int
    channel: str
    email: str = ""
    phone: str = ""
    name: str = ""
    company: str = ""
    company_size: str = ""
    industry: str = ""
    country: str = ""
    budget: str = ""
    timeline: str = ""
    message: str = ""
    consent: bool = False
    fields: Mapping[str, FieldValue] = msgspec.field(default_factory=dict)
    is_test: bool = False


@dataclass(frozen=True, slots=True)
class Session:
    """A session of the lead's visitor; `ts` is its first event (events.session_id)."""

    ts: int


@dataclass(frozen=True, slots=True)
class PageView:
    """A `pageview` event."""

    ts: int
    path: str = ""


@dataclass(frozen=True, slots=True)
class EngagedTime:
    """One page's engaged time: the largest `engagement`/`engaged_time` value for its
    pageview_id (the browser sends running totals), stamped with that event's ts."""

    ts: int
    engaged_ms: float
    path: str = ""


@dataclass(frozen=True, slots=True)
class Download:
    """A `click` event named `download`."""

    ts: int
    url: str = ""


@dataclass(frozen=True, slots=True)
class CustomEvent:
    """A `custom` event by name."""

    ts: int
    name: str


@dataclass(frozen=True, slots=True)
class EngagementFacts:
    """What the lead's visitor did, one row per observation, in any order.

    The caller chooses the window (e.g. all of the visitor's events up to `now`);
    observations stamped after `now` count as fresh (no decay).
    """

    sessions: tuple[Session, ...] = ()
    pageviews: tuple[PageView, ...] = ()
    engaged: tuple[EngagedTime, ...] = ()
    downloads: tuple[Download, ...] = ()
    custom_events: tuple[CustomEvent, ...] = ()


class Activity(msgspec.Struct, frozen=True, gc=False):
    """`EngagementFacts` as the engagement rules read them: epoch-ms times per observation.

    `reads` are the page loads engaged for at least the model's `min_engaged_secs`.
    Sequences of times stand in for records so that a caller holding many leads' facts
    (lead_scores.py) need not build an object per observation.
    """

    session_starts: Sequence[int] = ()
    pageviews: Sequence[int] = ()
    reads: Sequence[int] = ()
    downloads: Sequence[int] = ()
    custom_ts: Sequence[int] = ()
    custom_names: Sequence[str] = ()  # custom_names[i] belongs to custom_ts[i]

    @classmethod
    def of(cls, facts: EngagementFacts, min_engaged_secs: float) -> Activity:
        """The same observations as `facts`, for a model counting reads from `min_engaged_secs`."""
        least = min_engaged_secs * 1000
        return cls(
            session_starts=[s.ts for s in facts.sessions],
            pageviews=[v.ts for v in facts.pageviews],
            reads=[e.ts for e in facts.engaged if e.engaged_ms >= least],
            downloads=[d.ts for d in facts.downloads],
            custom_ts=[c.ts for c in facts.custom_events],
            custom_names=[c.name for c in facts.custom_events],
        )
