"""The Funnels pages: the list, one funnel's steps and drop-offs, and the define/edit form.

Funnels from sitepulse.yaml (and the built-in lead funnel) are shown but not editable;
admins define more here. The form has no JavaScript: blank step rows are ignored, and
"More steps" posts the form back with more blank rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sitepulse.analyse import funnels
from sitepulse.analyse.base import AnalysisError, Period
from sitepulse.analyse.definitions import (
    FunnelEntry,
    InvalidDefinition,
    all_funnels,
    load_definitions,
)
from sitepulse.runtime import Runtime
from sitepulse.web.ui.editing import (
    AuditSink,
    Editing,
    admin_form,
    delete_routes,
    denied,
    open_page,
    see_other,
)
from sitepulse.web.ui.render import (
    View,
    error_page,
    render,
)

STEP_KINDS: Final = ("page", "page_group", "event", "lead")
WINDOW_UNITS: Final[Mapping[str, int]] = {"minutes": 60_000, "hours": 3_600_000, "days": 86_400_000}
BLANK_ROWS: Final = 2
BREAKDOWNS: Final = ("none", "channel", "device")


@dataclass(frozen=True, slots=True)
class StepRow:
    """One step as the form shows it; `pattern` is the path, page group, event or form name."""

    name: str = ""
    kind: str = "page"
    pattern: str = ""
    event_type: str = "custom"
    props: str = ""  # "key=value; key=value"

    @property
    def blank(self) -> bool:
        return not (self.name.strip() or self.pattern.strip() or self.props.strip())


@dataclass(frozen=True, slots=True)
class FunnelForm:
    """The funnel form's fields, as typed (so a form with errors shows what was sent)."""

    name: str = ""
    window: str = "1"
    window_unit: str = "days"
    order: str = "strict"
    unit: str = "visitor"
    steps: tuple[StepRow, ...] = ()

    @classmethod
    def of(cls, definition: funnels.FunnelDefinition) -> FunnelForm:
        """The form filled in from a definition."""
        unit = next(
            u for u in ("days", "hours", "minutes", "ms") if definition.window_ms % _ms(u) == 0
        )
        return cls(
            name=definition.name,
            window=str(definition.window_ms // _ms(unit)),
            window_unit=unit,
            order=definition.order.value,
            unit=definition.unit.value,
            steps=tuple(_row_of(step) for step in definition.steps),
        )

    @classmethod
    def posted(cls, form: Mapping[str, str]) -> FunnelForm:
        """The form as posted; blank step rows are dropped."""

        def text(key: str, default: str = "") -> str:
            value = form.get(key)
            return value if isinstance(value, str) else default

        rows = []
        for i in range(funnels.MAX_STEPS + 10):
            if f"steps-{i}-name" not in form:
                continue
            row = StepRow(
                name=text(f"steps-{i}-name"),
                kind=text(f"steps-{i}-kind", "page"),
                pattern=text(f"steps-{i}-pattern"),
                event_type=text(f"steps-{i}-type", "custom"),
                props=text(f"steps-{i}-props"),
            )
            if not row.blank:
                rows.append(row)
        return cls(
            name=text("name").strip(),
            window=text("window").strip(),
            window_unit=text("window_unit", "days"),
            order=text("order", "strict"),
            unit=text("unit", "visitor"),
            steps=tuple(rows),
        )

    def body(self) -> dict[str, Any]:
        """The config form of the funnel; InvalidDefinition for what the validator cannot see."""
        problems: dict[str, str] = {}
        window_ms: object = self.window
        try:
            amount = float(self.window)
            window_ms = round(amount * _ms(self.window_unit))
        except (ValueError, KeyError):
            problems["window_ms"] = f"must be a number of {self.window_unit} (got {self.window!r})"
        steps = []
        for i, row in enumerate(self.steps):
            step: dict[str, Any] = {"name": row.name.strip()}
            pattern = row.pattern.strip()
            if row.kind == "page_group":
                step["page_group"] = pattern or None
            elif row.kind == "event":
                step["type"] = row.event_type
                if pattern:
                    step["event"] = pattern
                props, problem = _props(row.props)
                if problem:
                    problems[f"steps[{i}].props"] = problem
                if props:
                    step["props"] = props
            elif row.kind == "lead":
                step["lead"] = True
                if pattern:
                    step["form"] = pattern
            elif row.kind == "page":
                if pattern:
                    step["path"] = pattern
            else:
                problems[f"steps[{i}].kind"] = f"must be one of {', '.join(STEP_KINDS)}"
            steps.append(step)
        if problems:
            raise InvalidDefinition(problems)
        body = {"name": self.name, "steps": steps, "window_ms": window_ms}
        return body | {"order": self.order, "unit": self.unit}

    def rows(self, extra: int = BLANK_ROWS) -> tuple[StepRow, ...]:
        """The steps and `extra` blank rows to fill in (never past the step limit)."""
        room = max(0, funnels.MAX_STEPS - len(self.steps))
        return self.steps + (StepRow(),) * min(extra, room)


def _ms(unit: str) -> int:
    return 1 if unit == "ms" else WINDOW_UNITS[unit]


def _row_of(step: funnels.FunnelStep) -> StepRow:
    if isinstance(step, funnels.PageStep):
        if step.page_group is not None:
            return StepRow(step.name, "page_group", step.page_group)
        return StepRow(step.name, "page", step.path or "")
    if isinstance(step, funnels.EventStep):
        props = "; ".join(f"{k}={v}" for k, v in step.props)
        return StepRow(step.name, "event", step.event or "", step.type, props)
    return StepRow(step.name, "lead", step.form or "")


def _props(text: str) -> tuple[dict[str, str], str | None]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            return {}, f"write props as key=value; key=value (got {part.strip()!r})"
        out[key.strip()] = value.strip()
    return out, None


def describe(step: funnels.FunnelStep) -> str:
    """A step's rule in words, for the list and the readout."""
    if isinstance(step, funnels.PageStep):
        if step.page_group is not None:
            return f"page view in group {step.page_group}"
        return f"page view of {step.path}" if step.path else "any page view"
    if isinstance(step, funnels.EventStep):
        what = f"{step.type} event" + (f" {step.event}" if step.event else "")
        props = ", ".join(f"{k}={v}" for k, v in step.props)
        return what + (f" with {props}" if props else "")
    return "a stored lead" + (f" from form {step.form}" if step.form else "")


def window_text(window_ms: int) -> str:
    """A funnel's window in the largest whole unit ("1 day", "30 minutes")."""
    for unit, size in (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000)):
        if window_ms % size == 0:
            count = window_ms // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{window_ms} ms"


SOURCE_LABELS: Final = {
    "built-in": "built in",
    "config": "from sitepulse.yaml",
    "stored": "defined here",
}


@dataclass(frozen=True, slots=True)
class FormPage:
    """What the form template needs besides the view."""

    form: FunnelForm
    editing: str | None  # the stored name being edited; None for a new funnel
    problems: Mapping[str, str] = field(default_factory=dict)
    extra_rows: int = BLANK_ROWS

    def step_problems(self, i: int) -> list[str]:
        """Messages about row `i` (e.g. `steps[2].path: must start with '/'`), field first."""
        prefix = f"steps[{i}]"
        return [
            f"{key.removeprefix(prefix).lstrip('.') or 'step'}: {message}"
            for key, message in self.problems.items()
            if key.startswith(prefix)
        ]


def _funnel_chart(report: funnels.FunnelReport, previous: funnels.FunnelReport | None) -> Any:
    names = [step.name for step in report.steps]
    data: list[dict[str, Any]] = [
        {
            "type": "funnel",
            "name": "this period",
            "y": names,
            "x": [step.units for step in report.steps],
            "textinfo": "value+percent initial",
            "hovertemplate": "%{y}: %{x} (%{percentPrevious:.1%} of the step before)"
            "<extra></extra>",
        }
    ]
    if previous is not None:
        data.append(
            {
                "type": "funnel",
                "name": "previous period",
                "y": names,
                "x": [step.units for step in previous.steps],
                "textinfo": "value",
                "opacity": 0.55,
            }
        )
    empty = "No visitor entered this funnel in this period."
    if report.total.entered == 0 and (previous is None or previous.total.entered == 0):
        data = []
    return {"data": data, "layout": {"margin": {"l": 140}}, "empty": empty}


def _segments_chart(report: funnels.FunnelReport) -> Any:
    segments = [s for s in report.segments if s.entered]
    data = []
    if segments:
        data.append(
            {
                "type": "bar",
                "x": [s.value for s in segments],
                "y": [s.conversion_rate for s in segments],
                "text": [f"{s.converted} of {s.entered}" for s in segments],
                "hovertemplate": "%{x}: %{y:.1%} (%{text})<extra></extra>",
            }
        )
    return {"data": data, "layout": {"yaxis": {"tickformat": ".0%"}}}


def funnel_routes(runtime: Runtime, *, audit: AuditSink | None = None) -> list[BaseRoute]:
    """GET /funnels, /funnels/{name}; the new/edit forms and delete (POST, admins only)."""
    settings = runtime.settings
    store = runtime.store
    editing = Editing.of(runtime, audit)

    def known() -> dict[str, FunnelEntry]:
        return {e.definition.name: e for e in all_funnels(settings, editing.definitions)}

    async def list_page(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        _, view = opened

        def read() -> tuple[list[tuple[FunnelEntry, funnels.FunnelSegment]], list[str]]:
            entries = known()
            rows = [
                (entry, funnels.funnel(store, view.period, entry.definition).total)
                for entry in entries.values()
            ]
            stored = load_definitions(editing.definitions, "funnel")
            broken = [s.name for s in stored if s.name not in entries]
            return rows, broken

        await run_in_threadpool(lambda: runtime.writer.flush(2.0, sessions=True))
        rows, broken = await run_in_threadpool(read)
        context = {
            "view": view,
            "nav_active": "funnels",
            "rows": rows,
            "broken": broken,
            "sources": SOURCE_LABELS,
            "window_text": window_text,
        }
        return render(request, "funnels.html", context)

    async def funnel_page(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        view = opened[1]
        breakdown = request.query_params.get("breakdown", "channel")
        if breakdown not in BREAKDOWNS:
            choices = ", ".join(BREAKDOWNS)
            wrong = AnalysisError("breakdown", f"must be one of {choices} (got {breakdown!r})")
            return error_page(request, 400, wrong)
        name = request.path_params["name"]
        entry = (await run_in_threadpool(known)).get(name)
        if entry is None:
            return error_page(request, 404, AnalysisError("name", f"names no funnel ({name!r})"))
        by = None if breakdown == "none" else breakdown

        def read(period: Period, segments: str | None) -> funnels.FunnelReport:
            return funnels.funnel(store, period, entry.definition, breakdown=segments)

        await run_in_threadpool(lambda: runtime.writer.flush(2.0, sessions=True))
        report = await run_in_threadpool(read, view.period, by)
        previous = None
        if view.compare:
            previous = await run_in_threadpool(read, view.period.previous(), None)
        context = {
            "view": view,
            "nav_active": "funnels",
            "entry": entry,
            "report": report,
            "previous": previous,
            "breakdown": breakdown,
            "breakdowns": BREAKDOWNS,
            "sources": SOURCE_LABELS,
            "describe": describe,
            "window_text": window_text,
            "funnel_chart": _funnel_chart(report, previous),
            "segments_chart": _segments_chart(report),
        }
        return render(request, "funnel.html", context)

    def form_page(request: Request, view: View, page: FormPage, status: int = 200) -> Response:
        context = {
            "view": view,
            "nav_active": "funnels",
            "page": page,
            "kinds": STEP_KINDS,
            "event_types": sorted(funnels.EVENT_TYPES),
            "units": tuple(WINDOW_UNITS),
        }
        return render(request, "funnel_form.html", context, status)

    async def new_form(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        principal, view = opened
        if not principal.is_admin:
            return denied(request, view, "Only admins can define funnels.")
        start = FunnelForm(steps=(StepRow("landing"), StepRow("lead", kind="lead")))
        return form_page(request, view, FormPage(start, None))

    async def edit_form(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        principal, view = opened
        if not principal.is_admin:
            return denied(request, view, "Only admins can edit funnels.")
        name = request.path_params["name"]
        stored = await run_in_threadpool(
            lambda: next(
                (s for s in load_definitions(editing.definitions, "funnel") if s.name == name),
                None,
            )
        )
        if stored is None:
            what = AnalysisError("name", f"names no funnel defined here ({name!r})")
            return error_page(request, 404, what)
        try:
            form = FunnelForm.of(funnels.parse_funnel(stored.body))
        except AnalysisError:
            # Saved under older rules: start again from its name (the audit log has the body).
            form = FunnelForm(name=name)
        return form_page(request, view, FormPage(form, name))

    async def save(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        checked = await admin_form(request, opened[1])
        if isinstance(checked, Response):
            return checked
        view = opened[1]
        principal, posted = checked
        replacing = request.path_params.get("name")
        form = FunnelForm.posted(posted)
        if "more" in posted:
            page = FormPage(form, replacing, extra_rows=BLANK_ROWS + 3)
            return form_page(request, view, page)
        try:
            body = form.body()
            saved = await run_in_threadpool(
                lambda: editing.definitions.save(
                    "funnel", body, actor=principal.actor, now_ms=editing.now(), replacing=replacing
                )
            )
        except InvalidDefinition as exc:
            return form_page(request, view, FormPage(form, replacing, exc.problems), 400)
        detail: dict[str, Any] = {"body": dict(saved.body), "created": replacing is None}
        if replacing is not None and replacing != saved.name:
            detail["renamed_from"] = replacing
        editing.record(request, principal, "funnel.save", saved.name, detail)
        return see_other(f"/funnels/{_quote(saved.name)}{view.qs()}")

    def configured(name: str) -> bool:
        entry = known().get(name)
        return entry is not None and entry.source != "stored"

    return [
        Route("/funnels", list_page, methods=["GET"]),
        Route("/funnels/new", new_form, methods=["GET"]),
        Route("/funnels/new", save, methods=["POST"]),
        Route("/funnels/{name}", funnel_page, methods=["GET"]),
        Route("/funnels/{name}/edit", edit_form, methods=["GET"]),
        Route("/funnels/{name}/edit", save, methods=["POST"]),
        *delete_routes(editing, "funnel", "funnels", configured),
    ]


def _quote(name: str) -> str:
    return quote(name, safe="")
