"""Funnels and experiments defined in the UI, stored beside those in sitepulse.yaml.

A stored definition is validated by exactly the code that validates the config file
(`parse_funnel`, `ExperimentSettings`), and kept in its config form, so a definition
copied from the UI into sitepulse.yaml (or back) means the same. Configured names win:
the UI cannot create, and the analyses never read, a stored definition whose name the
file (or the built-in lead funnel) already uses.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from pydantic import ValidationError

from sitepulse.analyse.base import AnalysisError, Reader
from sitepulse.analyse.funnels import DEFAULT_LEAD_FUNNEL, FunnelDefinition, parse_funnel
from sitepulse.config.analysis import ExperimentSettings
from sitepulse.config.models import Settings

log = logging.getLogger(__name__)

Kind = Literal["funnel", "experiment"]
KINDS: Final[tuple[Kind, ...]] = ("funnel", "experiment")
Source = Literal["built-in", "config", "stored"]
# Names appear in page URLs (/funnels/<name>), where a slash would start a new segment.
_URL_UNSAFE: Final = re.compile(r"[/\\]")
_URL_WORDS: Final = ("new",)  # /funnels/new is the form


class InvalidDefinition(ValueError):
    """A definition the validators refuse; `problems` maps each bad field to why."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        first = next(iter(self.problems.items()), ("definition", "is not valid"))
        super().__init__(f"{first[0]}: {first[1]}")
        self.field, self.message = first


@dataclass(frozen=True, slots=True)
class StoredDefinition:
    """One row of the definitions table; times are epoch ms, UTC."""

    kind: Kind
    name: str
    body: Mapping[str, Any]
    created_by: str
    created_ms: int
    updated_by: str
    updated_ms: int


@dataclass(frozen=True, slots=True)
class FunnelEntry:
    """A funnel the analyses know, and where it is defined (only "stored" is editable)."""

    definition: FunnelDefinition
    source: Source
    stored: StoredDefinition | None = None


@dataclass(frozen=True, slots=True)
class ExperimentEntry:
    """An experiment's settings and where they are defined (only "stored" is editable)."""

    settings: ExperimentSettings
    source: Source
    stored: StoredDefinition | None = None


def validate_funnel(body: Mapping[str, Any]) -> FunnelDefinition:
    """The funnel `body` defines, by the config file's rules; InvalidDefinition names the field."""
    try:
        return parse_funnel(body)
    except AnalysisError as exc:
        raise InvalidDefinition({exc.field: exc.message}) from exc


def validate_experiment(body: Mapping[str, Any]) -> ExperimentSettings:
    """The experiment `body` defines, by the config file's rules; every bad field is named."""
    try:
        return ExperimentSettings.model_validate(dict(body))
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            loc = error.get("loc", ())
            message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
            name = str(loc[0]) if loc else _mentioned(message)
            problems.setdefault(name, message)
        raise InvalidDefinition(problems) from exc


def _mentioned(message: str) -> str:
    """The first experiment field a whole-model error mentions (e.g. control vs split)."""
    fields = ExperimentSettings.model_fields
    words = re.findall(r"[a-z_]+", message)
    return next((word for word in words if word in fields), "experiment")


def normalised(kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` validated and in its canonical config form (what is stored)."""
    if kind == "funnel":
        return validate_funnel(body).to_dict()
    settings = validate_experiment(body)
    return settings.model_dump(mode="json")


def reserved_names(settings: Settings, kind: Kind) -> frozenset[str]:
    """Names the config file (or the built-in lead funnel) holds; stored ones may not use them."""
    if kind == "funnel":
        configured = {str(raw.get("name")) for raw in settings.funnels}
        return frozenset({DEFAULT_LEAD_FUNNEL.name, *configured})
    return frozenset(e.name for e in settings.experiments)


_SELECT = (
    "SELECT kind, name, body::VARCHAR, created_by, epoch_ms(created_at), updated_by,"
    " epoch_ms(updated_at) FROM definitions"
)


def _stored(row: Sequence[Any]) -> StoredDefinition:
    kind, name, body, created_by, created, updated_by, updated = row
    return StoredDefinition(
        kind, name, json.loads(body), created_by, int(created), updated_by, int(updated)
    )


def load_definitions(reader: Reader, kind: Kind) -> list[StoredDefinition]:
    """Every stored definition of `kind`, by name."""
    rows = reader.query(f"{_SELECT} WHERE kind = ? ORDER BY name", [kind])
    return [_stored(row) for row in rows]


def load_definition(reader: Reader, kind: Kind, name: str) -> StoredDefinition | None:
    """The stored definition of `kind` called `name`, if there is one."""
    rows = reader.query(f"{_SELECT} WHERE kind = ? AND name = ?", [kind, name])
    return _stored(rows[0]) if rows else None


def all_funnels(settings: Settings, reader: Reader) -> list[FunnelEntry]:
    """The built-in lead funnel, the configured funnels, then the stored ones."""
    out = [FunnelEntry(DEFAULT_LEAD_FUNNEL, "built-in")]
    out += [FunnelEntry(parse_funnel(raw), "config") for raw in settings.funnels]
    taken = {entry.definition.name for entry in out}
    for stored in load_definitions(reader, "funnel"):
        if stored.name in taken:
            continue  # the file defines it now: the file wins
        try:
            definition = parse_funnel(stored.body)
        except AnalysisError as exc:
            # Saved under older rules: the analyses skip it; the UI lists it to be fixed.
            log.warning("stored funnel %r no longer validates: %s", stored.name, exc)
            continue
        out.append(FunnelEntry(definition, "stored", stored))
    return out


def all_experiments(settings: Settings, reader: Reader) -> list[ExperimentEntry]:
    """The configured experiments, then the stored ones."""
    out = [ExperimentEntry(e, "config") for e in settings.experiments]
    taken = {entry.settings.name for entry in out}
    for stored in load_definitions(reader, "experiment"):
        if stored.name in taken:
            continue
        try:
            experiment = ExperimentSettings.model_validate(dict(stored.body))
        except ValidationError as exc:
            log.warning("stored experiment %r no longer validates: %s", stored.name, exc)
            continue
        out.append(ExperimentEntry(experiment, "stored", stored))
    return out


class Cursor(Protocol):
    """A DuckDB cursor (`DuckDBStore.cursor()`): `execute` then `fetchall` on the result."""

    def execute(self, query: str, parameters: object = None) -> Any: ...


class DefinitionStore:
    """Saves and deletes stored definitions through a cursor of its own.

    Requests run on a thread pool and a DuckDB cursor is not for concurrent use, so a
    lock serialises them; the check that a name is free and the write are one transaction.
    """

    def __init__(
        self, cursor: Cursor, settings: Settings, on_change: Callable[[], object] | None = None
    ) -> None:
        self._cursor = cursor
        self._settings = settings
        self._lock = threading.Lock()
        # Told after every save and delete (the dashboard archive forgets its answers).
        self._on_change = on_change

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Reader over the same cursor, so a page reads what it has just written."""
        with self._lock:
            rows: list[tuple[Any, ...]] = self._cursor.execute(sql, list(params)).fetchall()
            return rows

    def save(
        self,
        kind: Kind,
        body: Mapping[str, Any],
        *,
        actor: str,
        now_ms: int,
        replacing: str | None = None,
    ) -> StoredDefinition:
        """Validate and store `body` (a new name, or an edit of `replacing`, maybe renamed)."""
        clean = normalised(kind, body)
        name = str(clean["name"])
        if _URL_UNSAFE.search(name) or name in _URL_WORDS:
            why = f"must not contain / or \\ nor be {' or '.join(_URL_WORDS)} (got {name!r})"
            raise InvalidDefinition({"name": why})
        reserved = reserved_names(self._settings, kind)
        for taken in (name, replacing):
            if taken in reserved:
                raise InvalidDefinition(
                    {"name": f"{taken!r} is defined in sitepulse.yaml; it cannot be changed here"}
                )
        text = json.dumps(clean, separators=(",", ":"), sort_keys=True)
        cur = self._cursor
        with self._lock:
            cur.execute("BEGIN TRANSACTION")
            try:
                existing = cur.execute(
                    "SELECT name, created_by, epoch_ms(created_at) FROM definitions"
                    " WHERE kind = ? AND name IN (?, ?)",
                    [kind, name, replacing if replacing is not None else name],
                ).fetchall()
                found = {row[0]: row for row in existing}
                if name in found and name != replacing:
                    raise InvalidDefinition({"name": f"a {kind} named {name!r} exists already"})
                if replacing is not None and replacing not in found:
                    raise InvalidDefinition({"name": f"no stored {kind} {replacing!r} to edit"})
                origin = found.get(replacing if replacing is not None else name)
                created_by, created_ms = (actor, now_ms) if origin is None else origin[1:]
                if replacing is not None:
                    cur.execute(
                        "DELETE FROM definitions WHERE kind = ? AND name = ?", [kind, replacing]
                    )
                cur.execute(
                    "INSERT INTO definitions VALUES (?, ?, ?::JSON, ?,"
                    " make_timestamp(?::BIGINT * 1000), ?, make_timestamp(?::BIGINT * 1000))",
                    [kind, name, text, created_by, created_ms, actor, now_ms],
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        if self._on_change is not None:
            self._on_change()
        return StoredDefinition(kind, name, clean, created_by, int(created_ms), actor, now_ms)

    def delete(self, kind: Kind, name: str) -> StoredDefinition | None:
        """Remove the stored definition; what was removed, or None if there was none."""
        with self._lock:
            rows = self._cursor.execute(
                f"{_SELECT} WHERE kind = ? AND name = ?", [kind, name]
            ).fetchall()
            if not rows:
                return None
            self._cursor.execute(
                "DELETE FROM definitions WHERE kind = ? AND name = ?", [kind, name]
            )
        if self._on_change is not None:
            self._on_change()
        return _stored(rows[0])
