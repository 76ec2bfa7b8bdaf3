"""Funnel definitions: the steps, their validation, the config/API form, and `implies`.

See the package docstring for what a funnel counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sitepulse.analyse.base import DAY_MS, AnalysisError

MIN_STEPS: Final = 2
MAX_STEPS: Final = 20
MAX_WINDOW_MS: Final = 366 * DAY_MS
DEFAULT_WINDOW_MS: Final = DAY_MS
NOT_EXPOSED: Final = "(not exposed)"
# Event types a step may match; a stored lead is `LeadStep`, which drops test leads.
EVENT_TYPES: Final = frozenset(
    {"pageview", "engagement", "vital", "form", "click", "exposure", "custom"}
)
_PROP_KEY = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class Order(StrEnum):
    """How steps must follow each other; see the module docstring."""

    STRICT = "strict"
    ANY = "any"


class Unit(StrEnum):
    """What a funnel counts."""

    VISITOR = "visitor"
    SESSION = "session"


class Breakdown(StrEnum):
    """What a funnel's segments are."""

    CHANNEL = "channel"
    DEVICE = "device"
    VARIANT = "variant"


def _text(value: object, field_: str, *, max_len: int = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AnalysisError(field_, f"must be a non-empty string (got {value!r})")
    if len(value) > max_len:
        raise AnalysisError(field_, f"must be at most {max_len} characters (got {len(value)})")
    return value


@dataclass(frozen=True, slots=True)
class PageStep:
    """Page views of `path` (exact, or a glob with `*` and `?`) or of `page_group`; any
    page view when neither is given."""

    name: str
    path: str | None = None
    page_group: str | None = None

    def check(self, where: str) -> None:
        _text(self.name, f"{where}.name")
        if self.path is not None and self.page_group is not None:
            raise AnalysisError(f"{where}.path", "give path or page_group, not both")
        if self.path is not None:
            path = _text(self.path, f"{where}.path", max_len=2048)
            if not path.startswith(("/", "*")):
                raise AnalysisError(f"{where}.path", f"must start with '/' or '*' (got {path!r})")
        if self.page_group is not None:
            group = _text(self.page_group, f"{where}.page_group", max_len=2048)
            if not group.startswith("/"):
                raise AnalysisError(f"{where}.page_group", f"must start with '/' (got {group!r})")


@dataclass(frozen=True, slots=True)
class EventStep:
    """Events of `type`, optionally of name `event` and with every `props` key=value."""

    name: str
    type: str
    event: str | None = None
    props: tuple[tuple[str, str], ...] = ()

    def check(self, where: str) -> None:
        _text(self.name, f"{where}.name")
        if self.type == "lead":
            raise AnalysisError(
                f"{where}.type", "'lead' events include test leads: use a lead step"
            )
        if not isinstance(self.type, str) or self.type not in EVENT_TYPES:
            raise AnalysisError(
                f"{where}.type",
                f"must be one of {', '.join(sorted(EVENT_TYPES))} (got {self.type!r})",
            )
        if self.event is not None:
            _text(self.event, f"{where}.event")
        seen = set()
        for key, value in self.props:
            if not isinstance(key, str) or not _PROP_KEY.match(key):
                raise AnalysisError(
                    f"{where}.props", f"keys are letters, digits, _ or - (got {key!r})"
                )
            if key in seen:
                raise AnalysisError(f"{where}.props.{key}", "repeated")
            if not isinstance(value, str):
                raise AnalysisError(f"{where}.props.{key}", f"must be a string (got {value!r})")
            seen.add(key)


@dataclass(frozen=True, slots=True)
class LeadStep:
    """A lead stored (not a test lead), optionally from form `form`."""

    name: str
    form: str | None = None

    def check(self, where: str) -> None:
        _text(self.name, f"{where}.name")
        if self.form is not None:
            _text(self.form, f"{where}.form")


FunnelStep = PageStep | EventStep | LeadStep


@dataclass(frozen=True, slots=True)
class FunnelDefinition:
    """A named funnel; construction validates it (errors name the field and the value)."""

    name: str
    steps: tuple[FunnelStep, ...]
    window_ms: int = DEFAULT_WINDOW_MS
    order: Order = Order.STRICT
    unit: Unit = Unit.VISITOR

    def __post_init__(self) -> None:
        _text(self.name, "name")
        if not isinstance(self.steps, tuple) or not MIN_STEPS <= len(self.steps) <= MAX_STEPS:
            count = len(self.steps) if isinstance(self.steps, Sequence) else self.steps
            raise AnalysisError(
                "steps", f"must be {MIN_STEPS} to {MAX_STEPS} steps (got {count!r})"
            )
        names: set[str] = set()
        for i, step in enumerate(self.steps):
            where = f"steps[{i}]"
            if not isinstance(step, PageStep | EventStep | LeadStep):
                raise AnalysisError(where, f"must be a page, event or lead step (got {step!r})")
            step.check(where)
            if step.name in names:
                raise AnalysisError(f"{where}.name", f"repeated step name {step.name!r}")
            names.add(step.name)
        window = self.window_ms
        if (
            isinstance(window, bool)
            or not isinstance(window, int)
            or not 0 < window <= MAX_WINDOW_MS
        ):
            raise AnalysisError(
                "window_ms", f"must be an integer in 1..{MAX_WINDOW_MS} (got {window!r})"
            )
        if not isinstance(self.order, Order):
            raise AnalysisError("order", f"must be one of strict, any (got {self.order!r})")
        if not isinstance(self.unit, Unit):
            raise AnalysisError("unit", f"must be one of visitor, session (got {self.unit!r})")

    def to_dict(self) -> dict[str, Any]:
        """The plain-dict form that `parse_funnel` reads."""
        return {
            "name": self.name,
            "steps": [_step_dict(step) for step in self.steps],
            "window_ms": self.window_ms,
            "order": self.order.value,
            "unit": self.unit.value,
        }


def _step_dict(step: FunnelStep) -> dict[str, Any]:
    out: dict[str, Any] = {"name": step.name}
    if isinstance(step, PageStep):
        if step.path is not None:
            out["path"] = step.path
        if step.page_group is not None:
            out["page_group"] = step.page_group
    elif isinstance(step, EventStep):
        out["type"] = step.type
        if step.event is not None:
            out["event"] = step.event
        if step.props:
            out["props"] = dict(step.props)
    else:
        out["lead"] = True
        if step.form is not None:
            out["form"] = step.form
    return out


_DEFINITION_KEYS = frozenset({"name", "steps", "window_ms", "order", "unit"})
_PAGE_KEYS = frozenset({"name", "path", "page_group"})
_EVENT_KEYS = frozenset({"name", "type", "event", "props"})
_LEAD_KEYS = frozenset({"name", "lead", "form"})


def parse_funnel(data: Mapping[str, Any]) -> FunnelDefinition:
    """A funnel from config/API data; unknown keys and bad values raise AnalysisError."""
    if not isinstance(data, Mapping):
        raise AnalysisError("funnel", f"must be a mapping (got {type(data).__name__})")
    _no_unknown(data, _DEFINITION_KEYS, "")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, Sequence) or isinstance(raw_steps, str):
        raise AnalysisError("steps", f"must be a list of steps (got {raw_steps!r})")
    steps = tuple(_parse_step(raw, f"steps[{i}]") for i, raw in enumerate(raw_steps))
    order = data.get("order", Order.STRICT.value)
    unit = data.get("unit", Unit.VISITOR.value)
    if order not in {o.value for o in Order}:
        raise AnalysisError("order", f"must be one of strict, any (got {order!r})")
    if unit not in {u.value for u in Unit}:
        raise AnalysisError("unit", f"must be one of visitor, session (got {unit!r})")
    name: Any = data.get("name")  # the definition validates it
    return FunnelDefinition(
        name=name,
        steps=steps,
        window_ms=data.get("window_ms", DEFAULT_WINDOW_MS),
        order=Order(order),
        unit=Unit(unit),
    )


def _no_unknown(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            raise AnalysisError(name, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _parse_step(raw: object, where: str) -> FunnelStep:
    if not isinstance(raw, Mapping):
        raise AnalysisError(where, f"must be a mapping (got {raw!r})")
    name: Any = raw.get("name")  # each step validates its own fields
    if "lead" in raw:
        _no_unknown(raw, _LEAD_KEYS, where)
        if raw["lead"] is not True:
            raise AnalysisError(f"{where}.lead", f"must be true (got {raw['lead']!r})")
        return LeadStep(name, form=raw.get("form"))
    if "type" in raw:
        _no_unknown(raw, _EVENT_KEYS, where)
        props = raw.get("props") or {}
        if not isinstance(props, Mapping):
            raise AnalysisError(f"{where}.props", f"must be a mapping (got {props!r})")
        pairs = tuple(
            (key, _prop_text(value, f"{where}.props.{key}")) for key, value in props.items()
        )
        return EventStep(name, type=raw["type"], event=raw.get("event"), props=pairs)
    _no_unknown(raw, _PAGE_KEYS, where)
    return PageStep(name, path=raw.get("path"), page_group=raw.get("page_group"))


def _prop_text(value: object, where: str) -> str:
    # Props hold JSON scalars; `->>` renders them as text, so compare with that text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    raise AnalysisError(where, f"must be a string, integer or boolean (got {value!r})")


DEFAULT_LEAD_FUNNEL: Final = FunnelDefinition(
    name="lead",
    steps=(
        PageStep("landing"),
        PageStep("service page", path="/services*"),
        PageStep("contact page", path="/contact*"),
        EventStep("form start", type="form", event="form_start"),
        EventStep("form submit", type="form", event="submit"),
        LeadStep("lead stored"),
    ),
)


def _literal_prefix(pattern: str) -> str:
    cut = min((i for i, ch in enumerate(pattern) if ch in "*?"), default=len(pattern))
    return pattern[:cut]


def implies(later: FunnelStep, earlier: FunnelStep) -> bool:
    """Whether every event matching `later` also matches `earlier` (sound, not complete)."""
    if later == earlier or (
        type(later) is type(earlier) and _match_key(later) == _match_key(earlier)
    ):
        return True
    if isinstance(later, PageStep) and isinstance(earlier, PageStep):
        if earlier.path is None and earlier.page_group is None:
            return True
        pattern = earlier.path
        if pattern is not None and later.path is not None and pattern.endswith("*"):
            prefix = pattern[:-1]
            return (
                "*" not in prefix
                and "?" not in prefix
                and (_literal_prefix(later.path).startswith(prefix))
            )
        return False
    if isinstance(later, EventStep) and isinstance(earlier, EventStep):
        return (
            later.type == earlier.type
            and earlier.event in (None, later.event)
            and set(earlier.props) <= set(later.props)
        )
    if isinstance(later, LeadStep) and isinstance(earlier, LeadStep):
        return earlier.form in (None, later.form)
    return False


def _match_key(step: FunnelStep) -> tuple[object, ...]:
    if isinstance(step, PageStep):
        return (step.path, step.page_group)
    if isinstance(step, EventStep):
        return (step.type, step.event, frozenset(step.props))
    return (step.form,)
