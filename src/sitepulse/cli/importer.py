"""`sitepulse import`: events from JSONL or CSV through the same ingest path as the API."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sitepulse.collect.ingest import field_of
from sitepulse.collect.payloads import ServerEvent
from sitepulse.config import Settings
from sitepulse.enrich.pipeline import Client
from sitepulse.errors import InvalidInput
from sitepulse.model.records import StoredEvent
from sitepulse.runtime import Runtime

CHUNK = 2000
MAX_REPORTED = 50


@dataclass
class ImportReport:
    lines: int = 0
    stored: int = 0
    duplicates: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


def _csv_value(key: str, raw: str) -> Any:
    if raw == "":
        return None
    if key in ("ts",):
        return int(raw)
    if key == "value":
        return float(raw)
    if key == "props":
        return json.loads(raw)
    return raw


def read_records(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """(line number, decoded object or the error text) for every non-blank line."""
    with path.open(encoding="utf-8", newline="") as handle:
        if fmt == "jsonl":
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, msgspec.json.decode(line)
                except msgspec.DecodeError as exc:
                    yield number, f"invalid JSON: {exc}"
        else:
            reader = csv.DictReader(handle)
            for row in reader:
                number = reader.line_num
                try:
                    obj: dict[str, Any] = {}
                    for key, raw in row.items():
                        if key is None:
                            raise ValueError("more fields than the header names")
                        if key.startswith("props."):
                            obj.setdefault("props", {})[key[6:]] = raw
                            continue
                        value = _csv_value(key, raw or "")
                        if value is not None:
                            obj[key] = value
                    yield number, obj
                except ValueError as exc:
                    yield number, f"invalid value: {exc}"


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


async def import_file(
    runtime: Runtime, path: Path, site_id: str, fmt: str, progress: Progress | None = None
) -> ImportReport:
    """Decode, validate and enrich each record; store good ones in chunks, report bad lines."""
    site = runtime.ingest.sites_by_id[site_id]
    enricher = runtime.ingest.enricher
    clock = runtime.ingest.clock
    report = ImportReport()
    task = progress.add_task("importing", total=_count_lines(path)) if progress else None
    pending: list[StoredEvent] = []
    nobody = Client("", "")

    async def flush() -> None:
        if not pending:
            return
        result = await runtime.writer.submit(list(pending), [])
        report.stored += len(result.stored_events)
        report.duplicates += result.duplicate_events
        pending.clear()

    for number, obj in read_records(path, fmt):
        report.lines += 1
        if progress is not None and task is not None:
            progress.update(task, completed=number)
        if isinstance(obj, str):
            report.bad.append((number, obj))
            continue
        try:
            event = msgspec.convert(obj, ServerEvent)
            pending.extend(enricher.server(site, [event], nobody, clock()))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            where, message = field_of(exc)
            report.bad.append((number, f"{where}: {message}"))
            continue
        except InvalidInput as exc:
            report.bad.append((number, f"{exc.field.removeprefix('events[0].')}: {exc.message}"))
            continue
        if len(pending) >= CHUNK:
            await flush()
    await flush()
    return report


def run_import(
    settings: Settings, path: Path, *, site_id: str | None, fmt: str | None, console: Console
) -> int:
    """Import a file; exit code 0 when every line was stored, 1 when some were skipped."""
    kind = (fmt or path.suffix.lstrip(".")).lower()
    if kind in ("json", "ndjson"):
        kind = "jsonl"
    if kind not in ("jsonl", "csv"):
        console.print(f"[red]unknown format {kind!r}[/]: use --format jsonl or --format csv")
        return 2
    sid = site_id or settings.sites[0].id
    runtime = Runtime.build(settings)
    if sid not in runtime.ingest.sites_by_id:
        console.print(f"[red]unknown site {sid!r}[/]")
        runtime.store.close()
        return 2
    runtime.start()
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            report = asyncio.run(import_file(runtime, path, sid, kind, progress))
    finally:
        runtime.stop()
    for number, message in report.bad[:MAX_REPORTED]:
        console.print(f"{path}:{number}: {message}", markup=False, highlight=False, soft_wrap=True)
    if len(report.bad) > MAX_REPORTED:
        console.print(f"… and {len(report.bad) - MAX_REPORTED} more bad lines")
    console.print(
        f"{report.lines} lines: {report.stored} stored, {report.duplicates} duplicates,"
        f" {len(report.bad)} skipped"
    )
    return 1 if report.bad else 0
