"""Seeded draws shared by the planners: weighted choices, ids and log-normal durations."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def weighted(rng: random.Random, options: Sequence[tuple[T, float]]) -> T:
    """One option, chosen in proportion to its weight."""
    return rng.choices([o for o, _ in options], [w for _, w in options])[0]


def random_hex(rng: random.Random, digits: int = 32) -> str:
    """`digits` random hex digits; used for visitor and session keys."""
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def event_id(rng: random.Random) -> uuid.UUID:
    """A version-4 UUID drawn from `rng`, so a replay sends the same ids."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    """A log-normal draw described by its median, which is how latencies read naturally."""
    return median * math.exp(rng.gauss(0.0, sigma))
