"""A score and its breakdown: components, the rules that fired, the caps that bit."""

from __future__ import annotations

from typing import Literal

import msgspec

Group = Literal["fit", "engagement"]


# The records of a score are msgspec Structs: every re-score builds a handful per lead, and
# Structs are built several times faster than frozen dataclasses (no cycles: gc=False).
class RuleHit(msgspec.Struct, frozen=True, gc=False):
    """A rule that fired: `base_points` before decay, `points` after (before caps)."""

    rule: str
    reason: str
    count: int
    base_points: float
    decay_factor: float
    points: float


class CapApplied(msgspec.Struct, frozen=True, gc=False):
    """A cap (or the component's 0–100 clamp) that changed the points."""

    applies_to: str
    limit: float
    points_before: float
    points_after: float
    reason: str


class ComponentScore(msgspec.Struct, frozen=True, gc=False):
    """One component: raw points (sum of hits), caps, final 0–100 points, weighted share."""

    name: str
    group: Group
    hits: tuple[RuleHit, ...]
    raw_points: float
    decay_factor: float
    caps: tuple[CapApplied, ...]
    points: float
    weight: float
    contribution: float


class FollowUp(msgspec.Struct, frozen=True, gc=False):
    """When sales should have answered; None for tiers without a deadline."""

    policy: str
    deadline_ms: int | None
    deadline_local: str | None


class Score(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A lead's score as of `as_of_ms` under the model `model_fingerprint`."""

    total: float
    fit_score: float
    engagement_score: float
    tier: str
    action: str
    follow_up: FollowUp
    components: tuple[ComponentScore, ...]
    is_test: bool
    model_fingerprint: str
    as_of_ms: int

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict (tuples become lists)."""
        plain = _plain(msgspec.to_builtins(self))
        assert isinstance(plain, dict)
        return plain


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
