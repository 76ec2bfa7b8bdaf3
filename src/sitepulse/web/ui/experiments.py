"""The Experiments pages: every experiment's verdict, one experiment's readout, and the form.

Experiments come from sitepulse.yaml (read-only here), from this form, or only from
their exposures (read with default settings until someone defines them). The numbers
and the verdict sentence are the analysis's own (`analyse/experiments.py`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sitepulse.analyse.base import AnalysisError, Period
from sitepulse.analyse.definitions import (
    ExperimentEntry,
    InvalidDefinition,
    all_experiments,
    load_definitions,
)
from sitepulse.config.analysis import ExperimentSettings
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

if TYPE_CHECKING:
    from sitepulse.analyse.experiment_looks import Look
    from sitepulse.analyse.experiments import ExperimentReport

SOURCE_LABELS: Final = {
    "config": "from sitepulse.yaml",
    "stored": "defined here",
    "seen": "seen in exposures (default settings)",
}
FIELDS: Final = ("name", "control", "split", "metric", "mde_relative", "baseline_rate", "alpha")


@dataclass(frozen=True, slots=True)
class ExperimentForm:
    """The experiment form's fields as typed; numbers stay text until the validator reads them."""

    name: str = ""
    control: str = "control"
    split: str = ""  # "control=50, bold=50"
    metric: str = "lead"
    mde_relative: str = "0.1"
    baseline_rate: str = ""
    alpha: str = "0.05"

    @classmethod
    def of(cls, settings: ExperimentSettings) -> ExperimentForm:
        """The form filled in from an experiment's settings."""
        return cls(
            name=settings.name,
            control=settings.control,
            split=", ".join(f"{k}={v:g}" for k, v in settings.split.items()),
            metric=settings.metric,
            mde_relative=f"{settings.mde_relative:g}",
            baseline_rate="" if settings.baseline_rate is None else f"{settings.baseline_rate:g}",
            alpha=f"{settings.alpha:g}",
        )

    @classmethod
    def posted(cls, form: Mapping[str, str]) -> ExperimentForm:
        """The form as posted."""
        values = {}
        for key in FIELDS:
            value = form.get(key)
            values[key] = value.strip() if isinstance(value, str) else ""
        return cls(**values)

    def body(self) -> dict[str, Any]:
        """The config form for the validator; a split it cannot even read is named here."""
        split: dict[str, str] = {}
        for part in self.split.replace(";", ",").split(","):
            if not part.strip():
                continue
            variant, eq, weight = part.partition("=")
            if not eq or not variant.strip() or not weight.strip():
                raise InvalidDefinition(
                    {"split": f"write the split as variant=weight, variant=weight (got {part!r})"}
                )
            split[variant.strip()] = weight.strip()
        return {
            "name": self.name,
            "control": self.control,
            "split": split,
            "metric": self.metric,
            "mde_relative": self.mde_relative,
            "baseline_rate": self.baseline_rate or None,
            "alpha": self.alpha,
        }


@dataclass(frozen=True, slots=True)
class VariantLine:
    """One variant against the control, as the pages show it."""

    name: str
    decision: str
    lift: float | None  # relative, e.g. 0.12 for +12 %
    p_value: float  # always-valid, Holm-adjusted: what the verdict uses
    significant: bool
    progress: float | None  # share of the planned sample seen (None: cannot be sized)


@dataclass(frozen=True, slots=True)
class Summary:
    """One experiment for the list and the readout header."""

    name: str
    source: str
    metric: str
    verdict: str
    problem: str | None
    srm: bool
    variants: tuple[VariantLine, ...] = field(default=())
    visitors: int = 0


def summarise(report: ExperimentReport, source: str) -> Summary:
    """The verdict, lifts, significance, SRM flag and sample progress of one readout."""
    readout = report.readout
    if readout is None:
        return Summary(report.name, source, report.metric, "", report.problem, False)
    arms = {arm.name: arm for arm in readout.arms}
    lines = []
    for variant in readout.variants:
        seen = min(arms[variant.name].visitors, arms[variant.control].visitors)
        needed = variant.more_visitors_needed
        progress = None if needed is None else (1.0 if needed == 0 else seen / (seen + needed))
        lines.append(
            VariantLine(
                name=variant.name,
                decision=variant.decision,
                lift=variant.frequentist.relative_lift,
                p_value=variant.sequential_p_adjusted,
                significant=variant.sequential_p_adjusted <= readout.alpha,
                progress=progress,
            )
        )
    return Summary(
        name=report.name,
        source=source,
        metric=report.metric,
        verdict=readout.verdict,
        problem=None,
        srm=readout.sample_ratio.mismatch,
        variants=tuple(lines),
        visitors=sum(arm.visitors for arm in readout.arms),
    )


def rates_chart(report: ExperimentReport) -> dict[str, Any]:
    """Conversion by variant, and each variant's difference from the control with the
    always-valid interval the verdict rests on."""
    readout = report.readout
    if readout is None:
        return {"data": [], "empty": report.problem or "No readout yet."}
    arms = list(readout.arms)
    data: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": "conversion rate",
            "x": [arm.name for arm in arms],
            "y": [arm.rate for arm in arms],
            "text": [f"{arm.conversions} of {arm.visitors}" for arm in arms],
            "hovertemplate": "%{x}: %{y:.2%} (%{text})<extra></extra>",
        }
    ]
    base = next(arm for arm in arms if arm.name == readout.control)
    variants = list(readout.variants)
    data.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": f"vs {readout.control}, {1 - readout.alpha:.0%} always-valid interval",
            "x": [v.name for v in variants],
            "y": [base.rate + v.sequential.difference for v in variants],
            "error_y": {
                "type": "data",
                "symmetric": False,
                "array": [v.sequential.ci_high - v.sequential.difference for v in variants],
                "arrayminus": [v.sequential.difference - v.sequential.ci_low for v in variants],
            },
            "hovertemplate": "%{x}: %{y:.2%}<extra></extra>",
        }
    )
    return {"data": data, "layout": {"yaxis": {"tickformat": ".1%", "rangemode": "tozero"}}}


def looks_chart(looks: Sequence[Look], alpha: float) -> dict[str, Any]:
    """Cumulative conversion by variant per day, and each variant's running p-value."""
    if not looks:
        return {"data": [], "empty": "No daily looks yet."}
    days = [iso_day(look.day_ms) for look in looks]
    data: list[dict[str, Any]] = []
    for i, arm in enumerate(looks[0].arms):
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"{arm.name} conversion",
                "x": days,
                "y": [look.arms[i].rate for look in looks],
                "hovertemplate": "%{x}: %{y:.2%}<extra>" + arm.name + "</extra>",
            }
        )
    for name in looks[0].p_values:
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "line": {"dash": "dot"},
                "name": f"{name} p-value",
                "x": days,
                "y": [look.p_values[name] for look in looks],
                "yaxis": "y2",
            }
        )
    layout = {
        "margin": {"r": 56},
        "xaxis": {"type": "category"},
        "yaxis": {"tickformat": ".1%", "title": {"text": "conversion"}},
        "yaxis2": {"overlaying": "y", "side": "right", "range": [0, 1], "showgrid": False,
                   "title": {"text": "p-value"}},
        "shapes": [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y2",
                    "y0": alpha, "y1": alpha, "line": {"dash": "dash", "width": 1}}],
    }  # fmt: skip
    return {"data": data, "layout": layout}


def iso_day(ms: int) -> str:
    """The UTC date of epoch ms ("2026-01-05"): looks are by UTC day, as the analysis counts."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class FormPage:
    """What the form template needs besides the view."""

    form: ExperimentForm
    editing: str | None
    problems: Mapping[str, str] = field(default_factory=dict)


def experiment_routes(runtime: Runtime, *, audit: AuditSink | None = None) -> list[BaseRoute]:
    """GET /experiments, /experiments/{name}; the new/edit forms and delete (admins only)."""
    settings = runtime.settings
    store = runtime.store
    editing = Editing.of(runtime, audit)
    configured_names = {e.name for e in settings.experiments}

    def defined() -> dict[str, ExperimentEntry]:
        return {e.settings.name: e for e in all_experiments(settings, editing.definitions)}

    def reports(period: Period) -> tuple[list[ExperimentReport], dict[str, ExperimentEntry]]:
        # scipy is loaded on the first experiment question, not at start (see reports.py).
        from sitepulse.analyse.experiments import experiments_report

        entries = defined()
        found = experiments_report(store, period, [e.settings for e in entries.values()])
        return found, entries

    async def list_page(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        _, view = opened
        await run_in_threadpool(lambda: runtime.writer.flush(2.0, sessions=True))
        found, entries = await run_in_threadpool(reports, view.period)
        rows = [
            summarise(r, entries[r.name].source if r.name in entries else "seen") for r in found
        ]
        stored = await run_in_threadpool(load_definitions, editing.definitions, "experiment")
        broken = [s.name for s in stored if s.name not in entries]
        context = {
            "view": view,
            "nav_active": "experiments",
            "rows": rows,
            "broken": broken,
            "sources": SOURCE_LABELS,
        }
        return render(request, "experiments.html", context)

    async def experiment_page(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        _, view = opened
        name = request.path_params["name"]
        await run_in_threadpool(lambda: runtime.writer.flush(2.0, sessions=True))

        def read() -> tuple[ExperimentReport, str, list[Look]] | None:
            from sitepulse.analyse.experiment_looks import daily_looks

            found, entries = reports(view.period)
            report = next((r for r in found if r.name == name), None)
            if report is None:
                return None
            entry = entries.get(name)
            looks: list[Look] = []
            if report.readout is not None:
                plan = entry.settings if entry else ExperimentSettings(
                    name=name, control=report.readout.control
                )  # fmt: skip
                looks = daily_looks(store, view.period, plan, mixing_sd=report.readout.mixing_sd)
            return report, entry.source if entry else "seen", looks

        result = await run_in_threadpool(read)
        if result is None:
            what = AnalysisError("name", "names no experiment with exposures or a definition")
            return error_page(request, 404, what)
        report, source, looks = result
        alpha = report.readout.alpha if report.readout else 0.05
        context = {
            "view": view,
            "nav_active": "experiments",
            "report": report,
            "summary": summarise(report, source),
            "looks": looks,
            "sources": SOURCE_LABELS,
            "iso_day": iso_day,
            "rates_chart": rates_chart(report),
            "looks_chart": looks_chart(looks, alpha),
        }
        return render(request, "experiment.html", context)

    def form_page(request: Request, view: View, page: FormPage, status: int = 200) -> Response:
        context = {"view": view, "nav_active": "experiments", "page": page}
        return render(request, "experiment_form.html", context, status)

    async def new_form(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        principal, view = opened
        if not principal.is_admin:
            return denied(request, view, "Only admins can define experiments.")
        query = request.query_params
        start = ExperimentForm(
            name=query.get("name", "")[:100], control=query.get("control", "control")[:100]
        )
        return form_page(request, view, FormPage(start, None))

    async def edit_form(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        principal, view = opened
        if not principal.is_admin:
            return denied(request, view, "Only admins can edit experiments.")
        name = request.path_params["name"]
        stored = await run_in_threadpool(load_definitions, editing.definitions, "experiment")
        found = next((s for s in stored if s.name == name), None)
        if found is None:
            what = AnalysisError("name", f"names no experiment defined here ({name!r})")
            return error_page(request, 404, what)
        try:
            form = ExperimentForm.of(ExperimentSettings.model_validate(dict(found.body)))
        except ValueError:
            form = ExperimentForm(name=name)
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
        form = ExperimentForm.posted(posted)
        try:
            body = form.body()
            saved = await run_in_threadpool(
                lambda: editing.definitions.save(
                    "experiment",
                    body,
                    actor=principal.actor,
                    now_ms=editing.now(),
                    replacing=replacing,
                )
            )
        except InvalidDefinition as exc:
            return form_page(request, view, FormPage(form, replacing, exc.problems), 400)
        detail: dict[str, Any] = {"body": dict(saved.body), "created": replacing is None}
        if replacing is not None and replacing != saved.name:
            detail["renamed_from"] = replacing
        editing.record(request, principal, "experiment.save", saved.name, detail)
        return see_other(f"/experiments/{quote(saved.name, safe='')}{view.qs()}")

    return [
        Route("/experiments", list_page, methods=["GET"]),
        Route("/experiments/new", new_form, methods=["GET"]),
        Route("/experiments/new", save, methods=["POST"]),
        Route("/experiments/{name}", experiment_page, methods=["GET"]),
        Route("/experiments/{name}/edit", edit_form, methods=["GET"]),
        Route("/experiments/{name}/edit", save, methods=["POST"]),
        *delete_routes(editing, "experiment", "experiments", lambda name: name in configured_names),
    ]
