"""The analysis benchmark's data: the demo's generated traffic, enriched and stored for real.

Visits come from the demo's own generator (`plan_traffic`, `plan_visit`); each one goes
through `Enricher.server` and its lead through `Enricher.lead`, exactly as the demo's
backfill sends them to `/api/v1/events` and `/api/v1/leads`, only in-process instead of
over HTTP. The rows go into a real `DuckDBStore` in loader-sized batches, with the
loader's session refresh and housekeeping in between, and a checkpoint at the end.

Generation and enrichment are pure Python and the slow part, so the period is split into
`parts` consecutive spans that worker processes generate side by side (each with its own
seeded generator and visitor pool), spooling their rows to files. The main process loads
part 0 while it is produced, then part 1 and so on, so rows land in time order, as a
running server stores them. A visitor never returns across a part boundary; with two
parts that loses a handful of journeys out of hundreds of thousands.

A finished dataset leaves a marker file with its parameters; a later run with the same
parameters reuses the folder as it is.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import multiprocessing
import random
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from sitepulse.analyse.lead_scores import LeadScoreKeeper
from sitepulse.clock import ManualClock
from sitepulse.config.models import IngestConfig, Settings, SiteConfig, StorageConfig
from sitepulse.demo.catalog import DEFAULT_HOST, DEFAULT_TIMEZONE
from sitepulse.demo.schedule import VisitorPool, plan_traffic
from sitepulse.demo.traffic import backfill_lead, server_events
from sitepulse.enrich.channel import ChannelClassifier
from sitepulse.enrich.geo import GeoLookup, bundled_database
from sitepulse.enrich.pipeline import Client, Enricher
from sitepulse.enrich.privacy import DailySalt
from sitepulse.errors import InvalidInput
from sitepulse.model.records import StoredEvent, StoredLead
from sitepulse.store.duckdb import DuckDBStore

DAY_MS = 86_400_000
END_MS = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a Monday: fixed, so a seed is one story
MARKER = "dataset.json"
FORMAT = 1  # bump when the way a dataset is built changes, so old caches are rebuilt
BATCH_EVENTS = 20_000  # the loader's max_events
REFRESH_EVERY = 10  # batches between session refreshes and housekeeping (~the loader's 5 s)
PILOT_VISITS = 6_000
_HEADER = struct.Struct("<Q")
# The demo's site (sitepulse.cli.demo.DEMO_SITE), without importing the web server.
SITE = SiteConfig(
    id="demo",
    name="Northwind Consulting (demo)",
    public_key="pk_demo",
    hosts=(DEFAULT_HOST,),
    timezone=DEFAULT_TIMEZONE,
)

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """What to generate: about `events` events over the `days` before `end_ms`."""

    events: int
    seed: int = 7
    days: int = 90
    end_ms: int = END_MS
    parts: int = 2

    def __post_init__(self) -> None:
        if self.events < 1_000:
            raise ValueError(f"events must be >= 1000, got {self.events}")
        if not 1 <= self.days <= 365:
            raise ValueError(f"days must be 1..365, got {self.days}")
        if self.parts < 1:
            raise ValueError(f"parts must be >= 1, got {self.parts}")

    @property
    def start_ms(self) -> int:
        return self.end_ms - self.days * DAY_MS

    @property
    def label(self) -> str:
        """The event count in short form: 10m, 200k, 1500."""
        for unit, size in (("m", 1_000_000), ("k", 1_000)):
            if self.events % size == 0:
                return f"{self.events // size}{unit}"
        return str(self.events)

    def default_folder(self) -> Path:
        """Where the dataset is cached unless told otherwise."""
        name = f"sitepulse-bench-{self.label}-seed{self.seed}"
        if self.days != 90:
            name += f"-{self.days}d"
        return Path(tempfile.gettempdir()) / name

    def key(self) -> dict[str, Any]:
        """The parameters a cached dataset must match to be reused."""
        return {"format": FORMAT, **asdict(self)}


@dataclass(frozen=True, slots=True)
class Dataset:
    """A complete dataset on disk and what is in it."""

    folder: Path
    spec: DatasetSpec
    site: str
    events: int
    leads: int
    sessions: int
    visits: int
    bot_visits: int
    rejected: int
    events_per_visit_planned: float
    build_seconds: float
    generate_events_per_second: float
    reused: bool = False

    @property
    def start_ms(self) -> int:
        return self.spec.start_ms

    @property
    def end_ms(self) -> int:
        return self.spec.end_ms

    def facts(self) -> dict[str, Any]:
        """JSON-ready facts for the benchmark's report."""
        return {
            "folder": str(self.folder),
            "seed": self.spec.seed,
            "site": self.site,
            "days": self.spec.days,
            "start": _iso(self.start_ms),
            "end": _iso(self.end_ms),
            "events": self.events,
            "leads": self.leads,
            "sessions": self.sessions,
            "visits": self.visits,
            "bot_visits": self.bot_visits,
            "rejected_visits": self.rejected,
            "reused": self.reused,
            # The build figures are the ones measured when the dataset was made.
            "build_seconds": round(self.build_seconds, 1),
            "build_events_per_second": round(self.events / self.build_seconds)
            if self.build_seconds
            else None,
            "generate_events_per_second_per_process": round(self.generate_events_per_second),
            "parts": self.spec.parts,
        }


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


class _Frame(msgspec.Struct, array_like=True, gc=False):
    """A batch of rows from a worker; the last frame of a part carries its totals."""

    events: list[StoredEvent]
    leads: list[StoredLead]
    last: bool = False
    visits: int = 0
    bot_visits: int = 0
    rejected: int = 0
    seconds: float = 0.0


def _tune_gc() -> None:
    # As `sitepulse serve` does (cli/serving.py): millions of short-lived objects, no cycles.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def events_per_visit(spec: DatasetSpec) -> float:
    """The generator's mean events per visit, from a pilot spread thinly over the period."""
    rng = random.Random(f"pilot:{spec.seed}")
    visits = plan_traffic(
        rng,
        spec.start_ms,
        spec.end_ms,
        visits_per_day=PILOT_VISITS / spec.days,
        timezone=SITE.timezone,
        host=SITE.hosts[0],
    )
    count = events = 0
    for visit in visits:
        count += 1
        events += len(visit.events)
        if count >= PILOT_VISITS:
            break
    return events / max(count, 1)


def _enricher() -> Enricher:
    salts: dict[str, bytes] = {}
    # Backend events carry the visitor's id, so the cookieless salt is never needed;
    # a local table stands in for the store's.
    salt = DailySalt(lambda day, new: salts.setdefault(day, new))
    geo = GeoLookup(bundled_database())
    return Enricher(IngestConfig(), geo=geo, salt=salt, classifier=ChannelClassifier())


def _write_frame(out: BinaryIO, frame: _Frame, encode: Callable[[Any], bytes]) -> None:
    body = encode(frame)
    out.write(_HEADER.pack(len(body)))
    out.write(body)
    out.flush()


def generate_part(spec: DatasetSpec, part: int, visits_per_day: float, spool: Path) -> None:
    """Plan, enrich and spool the visits starting in span `part` of the period (a worker)."""
    _tune_gc()
    span = (spec.end_ms - spec.start_ms) // spec.parts
    start = spec.start_ms + part * span
    end = spec.end_ms if part == spec.parts - 1 else start + span
    rng = random.Random(f"bench:{spec.seed}:{part}")
    site = SITE
    enricher = _enricher()
    nobody = Client("", "")
    encode = msgspec.msgpack.Encoder().encode
    events: list[StoredEvent] = []
    leads: list[StoredLead] = []
    visits = bots = rejected = 0
    started = time.process_time()
    visits_iter = plan_traffic(
        rng,
        start,
        end,
        visits_per_day=visits_per_day,
        timezone=site.timezone,
        host=site.hosts[0],
        pool=VisitorPool(rng),
    )
    with spool.open("wb") as out:
        for visit in visits_iter:
            visits += 1
            bots += visit.is_bot
            # Stamped when the visit's last beacon would have reached a relaying backend.
            received_at = max(b.send_ms for b in visit.beacons)
            try:
                rows = enricher.server(
                    site, server_events(visit, until_ms=spec.end_ms), nobody, received_at
                )
                sub = backfill_lead(visit)
                if sub is not None and sub.ts is not None and sub.ts <= spec.end_ms:
                    who = Client(visit.visitor.ip, visit.visitor.user_agent)
                    lead, lead_event = enricher.lead(site, sub, who, max(sub.ts, received_at))
                    rows.append(lead_event)
                    leads.append(lead)
            except InvalidInput:
                # What the server would answer 400 to; the demo does not produce any today.
                rejected += 1
                continue
            events.extend(rows)
            if len(events) >= BATCH_EVENTS:
                _write_frame(out, _Frame(events, leads), encode)
                events, leads = [], []
        seconds = time.process_time() - started
        _write_frame(out, _Frame(events, leads, True, visits, bots, rejected, seconds), encode)


def _frames(spool: Path, worker: multiprocessing.process.BaseProcess) -> Iterator[_Frame]:
    """Follow a spool file as its worker writes it, up to the part's last frame."""
    decode = msgspec.msgpack.Decoder(_Frame).decode
    while not spool.exists():
        if not worker.is_alive():
            raise RuntimeError(f"{worker.name} stopped (exit code {worker.exitcode})")
        time.sleep(0.05)
    exited = False
    with spool.open("rb") as spooled:
        while True:
            at = spooled.tell()
            header = spooled.read(_HEADER.size)
            if len(header) == _HEADER.size:
                (size,) = _HEADER.unpack(header)
                body = spooled.read(size)
                if len(body) == size:
                    frame = decode(body)
                    yield frame
                    if frame.last:
                        return
                    continue
            # The worker has not finished writing this frame yet. Once it has exited,
            # one more read sees everything it wrote.
            spooled.seek(at)
            if exited:
                raise RuntimeError(
                    f"{worker.name} stopped (exit code {worker.exitcode}) before its last frame"
                )
            exited = not worker.is_alive()
            if not exited:
                time.sleep(0.05)


class _Progress:
    def __init__(self, log: Log, target: int) -> None:
        self.log = log
        self.target = target
        self.started = time.perf_counter()
        self.last = self.started
        self.events = 0

    def add(self, rows: int, at_ms: int) -> None:
        self.events += rows
        now = time.perf_counter()
        if now - self.last >= 10:
            self.last = now
            rate = self.events / (now - self.started)
            self.log(
                f"  {self.events:,} / ~{self.target:,} events stored"
                f" ({rate:,.0f}/s, data at {_iso(at_ms)})"
            )


def build(spec: DatasetSpec, folder: Path, log: Log = _stderr) -> Dataset:
    """Generate, enrich and store the dataset in `folder` (emptied first)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    per_visit = events_per_visit(spec)
    visits_per_day = spec.events / spec.days / per_visit
    log(
        f"building {spec.events:,} events over {spec.days} days in {folder}"
        f" ({per_visit:.1f} events/visit → {visits_per_day:,.0f} visits/day,"
        f" {spec.parts} generator processes)"
    )
    spool_dir = folder / "spool"
    spool_dir.mkdir()
    context = multiprocessing.get_context("fork")
    workers = []
    for part in range(spec.parts):
        spool = spool_dir / f"part-{part}.msgpack"
        worker = context.Process(
            target=generate_part,
            args=(spec, part, visits_per_day, spool),
            name=f"generator-{part}",
            daemon=True,
        )
        worker.start()
        workers.append((worker, spool))
    try:
        totals = _store_parts(spec, folder, workers, log)
    finally:
        for worker, _ in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()
        shutil.rmtree(spool_dir, ignore_errors=True)
    seconds = time.perf_counter() - started
    dataset = Dataset(
        folder=folder,
        spec=spec,
        site=SITE.id,
        events_per_visit_planned=per_visit,
        build_seconds=seconds,
        **totals,
    )
    marker = {"spec": spec.key(), "dataset": {**dataset.facts(), **_counts(dataset)}}
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    log(
        f"built {dataset.events:,} events, {dataset.leads:,} leads, {dataset.sessions:,} sessions"
        f" in {seconds:.0f} s ({dataset.events / seconds:,.0f} events/s end to end;"
        f" generation {dataset.generate_events_per_second:,.0f} events/s per process)"
    )
    return dataset


def _counts(dataset: Dataset) -> dict[str, Any]:
    return {
        "visits": dataset.visits,
        "bot_visits": dataset.bot_visits,
        "rejected": dataset.rejected,
        "events_per_visit_planned": dataset.events_per_visit_planned,
        "build_seconds": dataset.build_seconds,
        "generate_events_per_second": dataset.generate_events_per_second,
    }


def _store_parts(
    spec: DatasetSpec,
    folder: Path,
    workers: Sequence[tuple[multiprocessing.process.BaseProcess, Path]],
    log: Log,
) -> dict[str, Any]:
    """Load every part's frames in order the way the loader does; return the totals."""
    storage = StorageConfig()
    ingest = IngestConfig()
    store = DuckDBStore(folder, memory_limit_mb=storage.memory_limit_mb, threads=storage.threads)
    try:
        store.migrate()
        progress = _Progress(log, spec.events)
        touched: dict[int, int] = {}
        loads = 0
        latest = spec.start_ms
        visits = bots = rejected = 0
        cpu = 0.0
        for worker, spool in workers:
            for frame in _frames(spool, worker):
                if frame.events or frame.leads:
                    store.write(frame.events, frame.leads)
                    loads += 1
                for event in frame.events:
                    sid = event.session_id
                    if sid and (sid not in touched or event.ts < touched[sid]):
                        touched[sid] = event.ts
                if frame.events:
                    latest = max(latest, frame.events[-1].received_at)
                    progress.add(len(frame.events), frame.events[-1].ts)
                if loads % REFRESH_EVERY == 0 or frame.last:
                    _refresh(store, touched)
                    touched = {}
                    store.housekeeping(latest, ingest.dedupe_window_secs * 1000)
                if frame.last:
                    visits += frame.visits
                    bots += frame.bot_visits
                    rejected += frame.rejected
                    cpu += frame.seconds
        _refresh(store, touched)
        # What the loader leaves behind: ids older than the dedupe window cleared, all
        # folded into the file.
        store.expire_event_ids(latest - ingest.dedupe_window_secs * 1000)
        store.checkpoint()
        ((events, sessions),) = store.query(
            "SELECT count(*), count(DISTINCT session_id) FROM events"
        )
        ((leads,),) = store.query("SELECT count(*) FROM leads")
        ((session_rows,),) = store.query("SELECT count(*) FROM sessions")
        if session_rows != sessions:
            raise RuntimeError(f"sessions table has {session_rows} rows for {sessions} sessions")
    finally:
        store.close()
    return {
        "events": int(events),
        "leads": int(leads),
        "sessions": int(sessions),
        "visits": visits,
        "bot_visits": bots,
        "rejected": rejected,
        "generate_events_per_second": events / cpu if cpu else 0.0,
    }


def _refresh(store: DuckDBStore, touched: dict[int, int]) -> None:
    if touched:
        # Sessions never span a UTC day: a day before the earliest event covers them.
        store.refresh_sessions(list(touched), min(touched.values()) - DAY_MS)


def load(folder: Path, spec: DatasetSpec) -> Dataset | None:
    """The complete dataset cached in `folder` for `spec`, or None."""
    marker = folder / MARKER
    if not marker.exists():
        return None
    saved = json.loads(marker.read_text(encoding="utf-8"))
    if saved.get("spec") != spec.key():
        return None
    facts = saved["dataset"]
    return Dataset(
        folder=folder,
        spec=spec,
        site=facts["site"],
        events=facts["events"],
        leads=facts["leads"],
        sessions=facts["sessions"],
        visits=facts["visits"],
        bot_visits=facts["bot_visits"],
        rejected=facts["rejected"],
        events_per_visit_planned=facts["events_per_visit_planned"],
        build_seconds=facts["build_seconds"],
        generate_events_per_second=facts["generate_events_per_second"],
        reused=True,
    )


def ensure(spec: DatasetSpec, folder: Path | None = None, log: Log = _stderr) -> Dataset:
    """The dataset for `spec`: reused from `folder` when complete, else built there."""
    folder = folder or spec.default_folder()
    cached = load(folder, spec)
    if cached is not None:
        log(f"reusing the dataset in {folder} ({cached.events:,} events)")
        return cached
    return build(spec, folder, log)


def settings(folder: Path) -> Settings:
    """The configuration a server on this dataset would run with: defaults, the demo's site."""
    return Settings(sites=(SITE,), storage=StorageConfig(path=folder))


def open_store(
    dataset: Dataset,
    *,
    memory_limit_mb: int | None = None,
    threads: int | None = None,
    log: Log = _stderr,
) -> DuckDBStore:
    """Open the dataset's store as `sitepulse serve` starts: migrate, then score stale leads.

    A running server scores leads as they load and re-scores them as they age; starting it
    on this folder scores every lead whose score is missing or from another model, as of
    the end of the data. That keeps a cached dataset current with the code.
    """
    config = settings(dataset.folder)
    storage = config.storage
    store = DuckDBStore(
        dataset.folder,
        memory_limit_mb=memory_limit_mb or storage.memory_limit_mb,
        threads=threads or storage.threads,
    )
    applied = store.migrate()
    if applied:
        log(f"applied migrations {', '.join(applied)}")
    keeper = LeadScoreKeeper(store, config, clock=ManualClock(dataset.end_ms))
    keeper.prime()
    if applied or keeper.scored:
        log(f"scored {keeper.scored:,} leads as of {_iso(dataset.end_ms)}")
        store.checkpoint()
    return store
