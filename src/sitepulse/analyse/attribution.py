"""Marketing attribution: how much of each lead every touchpoint earns, under six models.

Pure functions over `LeadJourney` records (a lead plus its visitor's sessions); no I/O.

Window: a touchpoint counts for a lead when `lead.ts - lookback <= started_at <= lead.ts`.
Order: counted touchpoints sort by `(started_at, session_id)`, then input order (a stable
sort), so "first", "last" and every tie are the same on every run.

Exactness: credit is fixed-point. One lead is `ONE = 2**32` integer units and a share is
`units / 2**32`, a float that is exact. Each model floors its ideal shares to whole units and
gives the leftover (fewer units than touchpoints, so under 5e-9 of a lead) to the largest
share, the earliest on a tie. Hence a lead's shares sum to exactly 1.0 in any order, and a
report column (a sum of multiples of 2**-32, exact while below 2**53 units, i.e. for up to
two million leads) sums to exactly the number of leads.

Speed: leads are attributed in batches. Columns are pulled out of the structs once, then
windowing, ordering, every model and the report's aggregation are numpy operations over all
touchpoints at once, so a report over 5,000 leads of up to 20 touchpoints takes milliseconds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain
from operator import attrgetter
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

CREDIT_BITS: Final = 32
ONE: Final = 1 << CREDIT_BITS
"""One lead's worth of credit, in units."""
_UNIT: Final = 1.0 / ONE  # a power of two, so `units * _UNIT` is exact

DAY_MS: Final = 86_400_000
DIRECT: Final = "Direct"
UNATTRIBUTED: Final = "(unattributed)"
NOT_SET: Final = "(not set)"  # what GA4 shows, and what enrichment stores, for an empty value


class AttributionModel(StrEnum):
    """The attribution models; values are the JSON names."""

    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"
    LAST_NON_DIRECT = "last_non_direct"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"


ALL_MODELS: Final[tuple[AttributionModel, ...]] = tuple(AttributionModel)


class Dimension(StrEnum):
    """What a report groups credit by."""

    CHANNEL = "channel"
    SOURCE = "source"
    SOURCE_MEDIUM = "source_medium"
    CAMPAIGN = "campaign"


class Touchpoint(msgspec.Struct, frozen=True, gc=False):
    """One session of the lead's visitor; `started_at` is epoch ms, UTC."""

    started_at: int
    channel: str
    source: str
    medium: str
    campaign: str
    session_id: int = 0


# Stands in for a lead with no touchpoint in its window. Its own label rather than GA4's
# "Unassigned", which means "sessions we saw but could not classify", a different problem.
UNATTRIBUTED_TOUCHPOINT: Final = Touchpoint(
    started_at=0,
    channel=UNATTRIBUTED,
    source=UNATTRIBUTED,
    medium=UNATTRIBUTED,
    campaign=UNATTRIBUTED,
)


class LeadJourney(msgspec.Struct, frozen=True):
    """A lead (`ts` epoch ms, UTC; `score` None when unscored) and its visitor's sessions."""

    lead_id: str
    ts: int
    score: float | None
    touchpoints: tuple[Touchpoint, ...] = ()


class Credit(msgspec.Struct, frozen=True, gc=False):
    """The share of one lead a touchpoint earns under one model."""

    touchpoint: Touchpoint
    share: float


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class AttributionConfig:
    """Window and model parameters; position weights are first / each-middle-total / last."""

    lookback_days: int = 30
    half_life_days: float = 7.0
    position_first_weight: float = 0.4
    position_middle_weight: float = 0.2
    position_last_weight: float = 0.4

    def __post_init__(self) -> None:
        days = self.lookback_days
        if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
            raise ValueError(f"lookback_days must be a positive whole number, got {days!r}")
        half = self.half_life_days
        if not _is_number(half) or not math.isfinite(half) or half <= 0:
            raise ValueError(f"half_life_days must be a positive finite number, got {half!r}")
        weights = {
            "position_first_weight": self.position_first_weight,
            "position_middle_weight": self.position_middle_weight,
            "position_last_weight": self.position_last_weight,
        }
        for name, weight in weights.items():
            # `not 0 <= weight <= 1` also rejects NaN
            if not _is_number(weight) or not 0.0 <= weight <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {weight!r}")
        total = sum(weights.values())
        if not math.isclose(total, 1.0, rel_tol=0.0, abs_tol=1e-9):
            listed = ", ".join(f"{name}={weight!r}" for name, weight in weights.items())
            raise ValueError(f"position weights must sum to 1, got {listed} (sum {total!r})")
        if self.position_first_weight + self.position_last_weight <= 0:
            # A two-touch journey splits first:last, which would be 0:0.
            raise ValueError(
                "position_first_weight + position_last_weight must be > 0, got "
                f"{self.position_first_weight!r} + {self.position_last_weight!r}"
            )

    @property
    def lookback_ms(self) -> int:
        return self.lookback_days * DAY_MS

    @property
    def half_life_ms(self) -> float:
        return self.half_life_days * DAY_MS


DEFAULT_CONFIG: Final = AttributionConfig()


@dataclass(frozen=True, slots=True)
class _Batch:
    """The counted touchpoints of many leads, in attribution order, one segment per lead.

    `index` points into the journeys' touchpoints flattened in input order. Only leads with
    a counted touchpoint have a segment; `counts` covers every lead.
    """

    index: npt.NDArray[np.intp]
    started_at: npt.NDArray[np.int64]
    direct: npt.NDArray[np.bool_]
    lead: npt.NDArray[np.intp]
    counts: npt.NDArray[np.intp]
    seg_lead: npt.NDArray[np.intp]
    seg_start: npt.NDArray[np.intp]
    seg_len: npt.NDArray[np.intp]


def _session_keys(session_ids: list[int]) -> npt.NDArray[np.uint64] | npt.NDArray[np.int64]:
    """Session ids as a sortable array; ids outside uint64 (e.g. negative) sort by rank."""
    try:
        return np.array(session_ids, dtype=np.uint64)
    except OverflowError:
        rank = {sid: r for r, sid in enumerate(sorted(set(session_ids)))}
        return np.array([rank[sid] for sid in session_ids], dtype=np.int64)


_TOUCHPOINTS: Final = attrgetter("touchpoints")
_STARTED_AT: Final = attrgetter("started_at")
_CHANNEL: Final = attrgetter("channel")


def _flatten(journeys: Sequence[LeadJourney]) -> list[Touchpoint]:
    return list(chain.from_iterable(map(_TOUCHPOINTS, journeys)))


def _batch(
    journeys: Sequence[LeadJourney], flat: list[Touchpoint], config: AttributionConfig
) -> _Batch:
    """Window, order and segment the touchpoints; `flat` is `_flatten(journeys)`."""
    # Columns come out of the structs through map() over C getters, the cheapest way in
    # CPython; everything after that is numpy.
    size = len(flat)
    lead_all = np.repeat(
        np.arange(len(journeys), dtype=np.intp),
        np.fromiter(map(len, map(_TOUCHPOINTS, journeys)), dtype=np.intp, count=len(journeys)),
    )
    started_all = np.fromiter(map(_STARTED_AT, flat), dtype=np.int64, count=size)
    lead_ts = np.fromiter((j.ts for j in journeys), dtype=np.int64, count=len(journeys))
    window_start = lead_ts[lead_all] - config.lookback_ms
    offset = started_all - window_start
    kept = np.flatnonzero((offset >= 0) & (offset <= config.lookback_ms))
    lead = lead_all[kept]
    span = config.lookback_ms + 1
    order: npt.NDArray[np.intp] | None = None
    if len(journeys) * span < 2**62:
        # One int64 key (lead, then time in window) sorts several times faster than lexsort;
        # session ids are only needed when two touchpoints of a lead start at the same ms.
        key = lead.astype(np.int64) * span + offset[kept]
        order = np.argsort(key, kind="stable")
        if np.any(np.diff(key[order]) == 0):
            order = None
    if order is None:
        sessions = _session_keys([flat[i].session_id for i in kept.tolist()])
        # Stable, so full ties keep input order; the last key is the primary one.
        order = np.lexsort((sessions, started_all[kept], lead))
    index = kept[order]
    lead = lead[order]
    direct_all = np.fromiter(map(DIRECT.__eq__, map(_CHANNEL, flat)), dtype=np.bool_, count=size)
    counts = np.bincount(lead, minlength=len(journeys)).astype(np.intp)
    seg_lead = np.flatnonzero(counts)
    seg_len = counts[seg_lead]
    return _Batch(
        index=index,
        started_at=started_all[index],
        direct=direct_all[index],
        lead=lead,
        counts=counts,
        seg_lead=seg_lead,
        seg_start=np.cumsum(seg_len) - seg_len,
        seg_len=seg_len,
    )


def _quantise(weights: npt.NDArray[np.float64], b: _Batch) -> npt.NDArray[np.int64]:
    """Units proportional to `weights` within each segment, summing to exactly ONE per segment."""
    scale = ONE / np.add.reduceat(weights, b.seg_start)
    units = (weights * np.repeat(scale, b.seg_len)).astype(np.int64)  # floors: weights >= 0
    # Flooring leaves 0..n-1 units over per segment (float error is far below one unit at
    # 2**32 scale); they go to the segment's largest share, the earliest on a tie.
    short = ONE - np.add.reduceat(units, b.seg_start)
    top = np.repeat(np.maximum.reduceat(units, b.seg_start), b.seg_len)
    index = np.arange(len(units))
    first_top = np.minimum.reduceat(np.where(units == top, index, len(units)), b.seg_start)
    units[first_top] += short
    return units


def _allocate(
    model: AttributionModel, b: _Batch, config: AttributionConfig
) -> npt.NDArray[np.int64]:
    """Units per counted touchpoint under `model`; each lead's segment sums to ONE."""
    size = len(b.index)
    units = np.zeros(size, dtype=np.int64)
    if size == 0:
        return units
    last = b.seg_start + b.seg_len - 1
    if model is AttributionModel.FIRST_TOUCH:
        units[b.seg_start] = ONE
    elif model is AttributionModel.LAST_TOUCH:
        units[last] = ONE
    elif model is AttributionModel.LAST_NON_DIRECT:
        index = np.arange(size)
        latest = np.maximum.reduceat(np.where(b.direct, -1, index), b.seg_start)
        units[np.where(latest >= 0, latest, last)] = ONE
    elif model is AttributionModel.LINEAR:
        base = ONE // b.seg_len
        units = np.repeat(base, b.seg_len).astype(np.int64)
        units[b.seg_start] += ONE - base * b.seg_len
    elif model is AttributionModel.TIME_DECAY:
        # Relative to the latest touch rather than the lead: the same ratios, and the latest
        # weight is 1, so a tiny half-life cannot underflow a whole segment to 0.
        latest_at = np.repeat(b.started_at[last], b.seg_len)
        units = _quantise(np.exp2((b.started_at - latest_at) / config.half_life_ms), b)
    elif model is AttributionModel.POSITION_BASED:
        n = np.repeat(b.seg_len, b.seg_len)
        pos = np.arange(size) - np.repeat(b.seg_start, b.seg_len)
        middle = config.position_middle_weight / np.maximum(n - 2, 1)
        weights = np.where(
            pos == 0,
            config.position_first_weight,
            np.where(pos == n - 1, config.position_last_weight, middle),
        )
        weights[n == 1] = 1.0
        units = _quantise(weights, b)
    else:
        raise ValueError(f"unknown attribution model {model!r}")
    return units


def touchpoints_in_window(
    journey: LeadJourney, config: AttributionConfig = DEFAULT_CONFIG
) -> list[Touchpoint]:
    """The touchpoints that count for the lead, oldest first (ties: session_id, input order)."""
    flat = list(journey.touchpoints)
    return [flat[i] for i in _batch([journey], flat, config).index.tolist()]


_UNATTRIBUTED_CREDITS: Final[tuple[Credit, ...]] = (Credit(UNATTRIBUTED_TOUCHPOINT, 1.0),)


def attribute_many(
    journeys: Sequence[LeadJourney],
    config: AttributionConfig = DEFAULT_CONFIG,
    models: Sequence[AttributionModel] = ALL_MODELS,
) -> list[dict[AttributionModel, tuple[Credit, ...]]]:
    """Each lead's credits under each model, oldest touchpoint first; zero shares left out."""
    flat = _flatten(journeys)
    b = _batch(journeys, flat, config)
    table = [dict.fromkeys(models, _UNATTRIBUTED_CREDITS) for _ in journeys]
    segments = list(zip(b.seg_lead.tolist(), b.seg_start.tolist(), b.seg_len.tolist(), strict=True))
    touchpoints = [flat[i] for i in b.index.tolist()]
    for model in models:
        units = _allocate(model, b, config).tolist()
        for lead, start, n in segments:
            table[lead][model] = tuple(
                Credit(touchpoints[i], units[i] * _UNIT)
                for i in range(start, start + n)
                if units[i]
            )
    return table


def attribute_all(
    journey: LeadJourney,
    config: AttributionConfig = DEFAULT_CONFIG,
    models: Sequence[AttributionModel] = ALL_MODELS,
) -> dict[AttributionModel, tuple[Credit, ...]]:
    """One lead's credits under each of `models`."""
    return attribute_many([journey], config, models)[0]


def attribute(
    journey: LeadJourney, model: AttributionModel, config: AttributionConfig = DEFAULT_CONFIG
) -> tuple[Credit, ...]:
    """One lead's credits under `model`, oldest touchpoint first; zero shares are left out."""
    return attribute_many([journey], config, (model,))[0][model]


_RAW_KEY: Final[Mapping[Dimension, Callable[[Touchpoint], str | tuple[str, str]]]] = {
    Dimension.CHANNEL: attrgetter("channel"),
    Dimension.SOURCE: attrgetter("source"),
    Dimension.SOURCE_MEDIUM: attrgetter("source", "medium"),
    Dimension.CAMPAIGN: attrgetter("campaign"),
}


def _label(raw: str | tuple[str, str]) -> str:
    if isinstance(raw, str):
        return raw or NOT_SET
    source, medium = raw
    if source == UNATTRIBUTED:
        return UNATTRIBUTED
    return f"{source or NOT_SET} / {medium or NOT_SET}"


def dimension_value(touchpoint: Touchpoint, dimension: Dimension) -> str:
    """The report row a touchpoint's credit lands in; empty values become "(not set)"."""
    return _label(_RAW_KEY[dimension](touchpoint))


class AttributionRow(msgspec.Struct, frozen=True):
    """One dimension value across models: attributed leads, their share, score-weighted value.

    `disagreement` is the largest minus the smallest `share` across the models (0 = all agree).
    """

    key: str
    leads: dict[AttributionModel, float]
    share: dict[AttributionModel, float]
    value: dict[AttributionModel, float]
    disagreement: float

    def to_dict(self) -> dict[str, object]:
        """The row as JSON-ready data."""
        return {
            "key": self.key,
            "leads": {model.value: x for model, x in self.leads.items()},
            "share": {model.value: x for model, x in self.share.items()},
            "value": {model.value: x for model, x in self.value.items()},
            "disagreement": self.disagreement,
        }


class AttributionReport(msgspec.Struct, frozen=True):
    """Credit by dimension value for several models side by side.

    Rows are ordered by credit summed over all models (descending), then key; `total` sums
    the rows, so `total.leads[model] == lead_count` exactly.
    """

    dimension: Dimension
    models: tuple[AttributionModel, ...]
    config: AttributionConfig
    lead_count: int
    rows: tuple[AttributionRow, ...]
    total: AttributionRow

    def to_dict(self) -> dict[str, object]:
        """The report as JSON-ready data for the API."""
        return {
            "dimension": self.dimension.value,
            "models": [model.value for model in self.models],
            "config": dataclasses.asdict(self.config),
            "lead_count": self.lead_count,
            "rows": [row.to_dict() for row in self.rows],
            "total": self.total.to_dict(),
        }


def _row(
    key: str,
    models: tuple[AttributionModel, ...],
    units: list[float],
    value: list[float],
    lead_count: int,
) -> AttributionRow:
    leads = [u * _UNIT for u in units]
    share = [x / lead_count if lead_count else 0.0 for x in leads]
    return AttributionRow(
        key=key,
        leads=dict(zip(models, leads, strict=True)),
        share=dict(zip(models, share, strict=True)),
        value={model: v * _UNIT for model, v in zip(models, value, strict=True)},
        disagreement=max(share) - min(share),
    )


def report(
    journeys: Iterable[LeadJourney],
    dimension: Dimension,
    config: AttributionConfig = DEFAULT_CONFIG,
    models: Sequence[AttributionModel] = ALL_MODELS,
) -> AttributionReport:
    """Aggregate every lead's credits by `dimension` for each of `models`.

    Attributed leads are summed credits; value is credit times score (an unscored lead
    counts as a lead with value 0).
    """
    chosen = tuple(models)
    if not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"models must be non-empty and distinct, got {list(models)!r}")
    leads = list(journeys)
    flat = _flatten(leads)
    b = _batch(leads, flat, config)
    # Label each distinct raw value once, not every touchpoint; labels may merge raw values
    # ("" and "(not set)"), so codes are per label.
    raw = list(map(_RAW_KEY[dimension], flat))
    code_of: dict[str, int] = {}
    code_of_raw = {r: code_of.setdefault(_label(r), len(code_of)) for r in dict.fromkeys(raw)}
    codes = np.fromiter(map(code_of_raw.__getitem__, raw), dtype=np.intp, count=len(raw))
    codes = codes[b.index]
    scores = np.array([j.score or 0.0 for j in leads], dtype=np.float64)
    touch_score = scores[b.lead]
    bare = b.counts == 0
    bare_count = int(bare.sum())
    if bare_count:
        code_of.setdefault(UNATTRIBUTED, len(code_of))
    size = len(code_of)
    # Sums of units in float64 stay exact below 2**53, i.e. for up to 2**21 leads.
    units = np.zeros((size, len(chosen)), dtype=np.float64)
    value = np.zeros((size, len(chosen)), dtype=np.float64)
    for j, model in enumerate(chosen):
        allocation = _allocate(model, b, config)
        units[:, j] = np.bincount(codes, weights=allocation, minlength=size)
        value[:, j] = np.bincount(codes, weights=allocation * touch_score, minlength=size)
    if bare_count:
        units[code_of[UNATTRIBUTED]] += bare_count * ONE
        value[code_of[UNATTRIBUTED]] += float(scores[bare].sum()) * ONE

    keys = list(code_of)
    unit_rows = units.tolist()
    value_rows = value.tolist()
    totals = units.sum(axis=1).tolist()
    order = sorted(range(size), key=lambda k: (-totals[k], keys[k]))
    rows = tuple(_row(keys[k], chosen, unit_rows[k], value_rows[k], len(leads)) for k in order)
    return AttributionReport(
        dimension=dimension,
        models=chosen,
        config=config,
        lead_count=len(leads),
        rows=rows,
        total=_row(
            "(total)", chosen, units.sum(axis=0).tolist(), value.sum(axis=0).tolist(), len(leads)
        ),
    )
