"""`sitepulse report`: any analysis in the terminal, as tables, CSV or JSON.

With a running server (`--url`, or the configured address answering), the
report comes from its API with the site token; otherwise the data folder is
opened read-only and the same analysis runs in-process. Both paths produce
the same JSON, which is then rendered.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sitepulse.analyse.base import AnalysisError
from sitepulse.analyse.reports import Request, run_report
from sitepulse.clock import iso_ms
from sitepulse.config.models import Settings, SiteConfig


class ReportFailed(Exception):
    """The report could not be produced; the message says why and what to do."""


def fetch_remote(url: str, token: str, name: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The report from a running server's API."""
    try:
        resp = httpx.get(
            f"{url.rstrip('/')}/api/v1/{name}",
            params=dict(params),
            headers={"Authorization": f"Bearer {token}"},
            timeout=60.0,
        )
    except httpx.HTTPError as exc:
        raise ReportFailed(f"cannot reach {url}: {exc}") from exc
    if resp.status_code != 200:
        try:
            problem = resp.json()
            detail = f"{problem.get('field', '')}: {problem.get('message', resp.text)}"
        except ValueError:
            detail = resp.text[:200]
        raise ReportFailed(f"{resp.status_code} from the server — {detail}")
    body: dict[str, Any] = resp.json()
    return body


def server_is_up(url: str) -> bool:
    try:
        return httpx.get(f"{url.rstrip('/')}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def run_local(
    settings: Settings, site: SiteConfig, name: str, params: Mapping[str, str]
) -> dict[str, Any]:
    """The report straight from the data folder (the server must not be running)."""
    import duckdb

    from sitepulse.store.duckdb.backend import DB_FILE

    path = settings.storage.path / DB_FILE
    if not path.exists():
        raise ReportFailed(f"no database at {path}: is --data / storage.path right?")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise ReportFailed(
            f"cannot open {path} ({exc}); if sitepulse is serving it, use --url and --token"
        ) from exc
    try:
        from sitepulse.store.duckdb.backend import latest_migration

        ((have,),) = con.execute("SELECT max(version) FROM schema_migrations").fetchall()
        if have != latest_migration():
            raise ReportFailed(
                f"{path} has schema {have}, this sitepulse needs {latest_migration()}:"
                " start `sitepulse serve` once to upgrade it"
            )

        class _Reader:
            def query(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
                return con.execute(sql, list(args)).fetchall()

        return run_report(name, _Reader(), Request(settings, site, params, time.time_ns() // 10**6))
    except AnalysisError as exc:
        raise ReportFailed(f"{exc.field}: {exc.message}") from exc
    except duckdb.Error as exc:
        raise ReportFailed(f"reading {path} failed: {exc}") from exc
    finally:
        con.close()


def _flat(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, name + "."))
        elif not isinstance(value, list | tuple):
            out[name] = value
        elif not any(isinstance(v, Mapping | list | tuple) for v in value):
            out[name] = " → ".join(map(str, value))  # a path of pages, a list of names
    return out


def _records(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


def _walk(node: Any, path: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif _records(node):
        yield path, [_flat(item) for item in node]
        for i, item in enumerate(node[:20]):
            label = item.get("name") or item.get("key") or item.get("channel") or str(i)
            for key, value in item.items():
                yield from _walk(value, f"{path}[{label}].{key}")


def tables(body: Mapping[str, Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Every list of records in a report, flattened to rows of scalars, outermost first."""
    scalars = _flat({k: v for k, v in body.items() if not isinstance(v, list | tuple)})
    if scalars:
        yield "summary", [scalars]
    yield from _walk({k: v for k, v in body.items() if isinstance(v, list | tuple)}, "")


def _shown(rows: list[dict[str, Any]]) -> list[str]:
    """Columns worth a table's width: any row has a value."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return [c for c in columns if any(row.get(c) not in (None, "") for row in rows)]


def _cell(value: Any, column: str = "") -> str:
    if column.endswith("_ms") and isinstance(value, int) and value > 10**11:
        return iso_ms(value) or ""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


# What a terminal table shows of each report: table path -> columns. Everything
# is in --format json; tables not listed here are left out of the table view.
VIEWS: dict[str, dict[str, list[str]]] = {
    "kpis": {
        "kpis": ["name", "unit", "overall.value", "overall.previous", "overall.change_ratio",
                 "overall.status", "target.value"],
        "top_paths": ["steps", "sessions", "share"],
        "drop_offs": ["path", "exits", "pageviews", "exit_rate"],
    },
    "funnel": {
        "steps": ["step", "name", "units", "conversion_from_first", "conversion_from_previous",
                  "drop_off", "drop_off_rate", "median_ms_from_previous"],
        "segments": ["value", "entered", "converted", "conversion_rate"],
    },
    "vitals": {
        "overall.metrics": ["metric", "samples", "p50", "p75", "p90", "p95", "good_share",
                            "needs_improvement_share", "poor_share", "p75_rating"],
        "overall.compliance": ["page_loads", "passing", "share", "target", "met"],
        "groups": ["key", "compliance.page_loads", "compliance.share"],
        "lcp_by_range": ["bucket", "page_loads", "sessions", "converting_sessions",
                         "conversion_rate"],
    },
    "attribution": {
        "rows": ["key", "leads.first_touch", "leads.last_touch", "leads.last_non_direct",
                 "leads.linear", "leads.time_decay", "leads.position_based", "disagreement"],
    },
    "experiments": {
        "experiments": ["name", "metric", "configured", "problem"],
        "experiments.readout.arms": ["name", "visitors", "conversions", "rate"],
        "experiments.readout.variants": ["name", "decision", "verdict"],
    },
    "leads": {
        "leads": ["ts", "name", "company", "channel", "score", "tier", "follow_up_due",
                  "overdue"],
    },
}  # fmt: skip


def _view(report: str, path: str, rows: list[dict[str, Any]]) -> list[str] | None:
    view = VIEWS.get(report)
    if view is None:
        return _shown(rows)
    generic = re.sub(r"\[[^\]]*\]", "", path)
    return view.get(generic)


def render(report: str, body: Mapping[str, Any], fmt: str, out: Console) -> None:
    """Print a report as Rich tables, CSV (its main table) or JSON."""
    if fmt == "json":
        out.print_json(json.dumps(body))
        return
    found = list(tables(body))
    if report in VIEWS and fmt == "table":
        # The summary's period first, then the report's own tables.
        period = found[0][1][0] if found and found[0][0] == "summary" else {}
        if period:
            out.print(
                f"{report} · {period.get('site')} · {period.get('from')} → {period.get('to')}"
            )
        for name, rows in found[1:] if period else found:
            columns = _view(report, name, rows)
            if columns:
                _table(out, name, rows, columns)
        return
    if fmt == "csv":
        name, rows = next(((n, r) for n, r in found if n != "summary"), found[0])
        columns = _shown(rows)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        out.print(buffer.getvalue(), end="", markup=False, highlight=False, soft_wrap=True)
        return
    for name, rows in found:
        columns = _shown(rows)
        if columns:
            _table(out, name, rows, columns)


def _table(out: Console, name: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(title=escape(name), title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(escape(column), overflow="fold")
    for row in rows[:200]:
        # Cells hold visitor-supplied text (paths, names): never markup.
        table.add_row(*(Text(_cell(row.get(c), c)) for c in columns))
    out.print(table)
