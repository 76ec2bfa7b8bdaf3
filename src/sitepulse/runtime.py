"""The one place that wires the stages together: config → store → enrich → ingest."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from sitepulse.alerting.delivery import DeliveryWorker
from sitepulse.alerting.lead_webhooks import LeadRouter
from sitepulse.alerting.outbox import Outbox
from sitepulse.analyse.archive import DashboardArchive, ViewKey
from sitepulse.analyse.dashboards import DASHBOARDS
from sitepulse.analyse.lead_scores import LeadScoreKeeper, ScoredLead
from sitepulse.analyse.reports import Request as ReportRequest
from sitepulse.auth import AuthDB
from sitepulse.clock import Clock, iso_ms, system_clock
from sitepulse.collect.ingest import IngestService
from sitepulse.config.models import Settings
from sitepulse.enrich.channel import ChannelClassifier
from sitepulse.enrich.geo import GeoLookup, bundled_database
from sitepulse.enrich.pipeline import Enricher
from sitepulse.enrich.privacy import DailySalt
from sitepulse.enrich.useragent import parse_agent
from sitepulse.export.kpi_gauges import KpiGauges
from sitepulse.export.metrics import Metrics
from sitepulse.store.duckdb import DuckDBStore
from sitepulse.store.journal import Journal
from sitepulse.store.writer import Writer

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a running sitepulse holds; `start` and `stop` bracket its life."""

    settings: Settings
    store: DuckDBStore
    writer: Writer
    ingest: IngestService
    metrics: Metrics
    geo: GeoLookup
    scores: LeadScoreKeeper
    kpis: KpiGauges
    delivery: DeliveryWorker
    # Users, sessions, API tokens and the audit log (SQLite beside the store: see auth/db.py).
    auth: AuthDB
    # The dashboards' last answers, kept fresh off the request path (analyse/archive.py).
    archive: DashboardArchive
    tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        registry: CollectorRegistry | None = None,
    ) -> Runtime:
        """Open the store, apply migrations and assemble the pipeline (nothing started)."""
        cfg = settings.storage
        store = DuckDBStore(cfg.path, memory_limit_mb=cfg.memory_limit_mb, threads=cfg.threads)
        applied = store.migrate()
        if applied:
            log.info("applied schema migrations %s", ", ".join(applied))
        metrics = Metrics(registry if registry is not None else CollectorRegistry())
        tokens = {
            site.id: site.token or store.site_token(site.id, "sk_" + secrets.token_urlsafe(24))
            for site in settings.sites
        }
        geo_path = settings.geo.mmdb_path
        if geo_path is None and settings.geo.use_bundled:
            geo_path = bundled_database()
        geo = GeoLookup(geo_path)
        salt = DailySalt(lambda day, new: store.daily_salt(day, new, keep_days=1))
        enricher = Enricher(settings.ingest, geo=geo, salt=salt, classifier=ChannelClassifier())
        ing = settings.ingest
        outbox = Outbox(store.cursor(), clock=clock, registry=metrics.registry)
        delivery = DeliveryWorker(
            outbox,
            secrets={hook.url: hook.secret for hook in settings.lead_webhooks if hook.secret},
            clock=clock,
        )
        router = LeadRouter(settings, store, outbox)

        def scored(leads: list[ScoredLead]) -> None:
            metrics.observe_scores(leads)
            router.route(leads)

        scores = LeadScoreKeeper(store, settings, clock=clock, on_scored=scored)
        writer = Writer(
            store,
            Journal(cfg.path / "journal"),
            clock=clock,
            max_queue_events=ing.queue_max_events,
            commit_max_events=ing.commit_max_events,
            dedupe_window_ms=ing.dedupe_window_secs * 1000,
            dedupe_max_ids=ing.dedupe_max_ids,
            on_commit=metrics.observe_commit,
            on_error=lambda exc: metrics.store_errors.inc(),
            on_load=metrics.observe_load,
            observers=[scores],
        )
        metrics.queue_capacity.set(ing.queue_max_events)
        metrics.queue_depth.set_function(lambda: writer.queued_events)
        metrics.unloaded.set_function(lambda: writer.unloaded_events)

        def lead_score(lead_id: bytes) -> dict[str, Any] | None:
            # Scores are computed once sessions and page loads cover the lead.
            if not writer.flush(5.0, sessions=True):
                return None
            rows = store.query(
                "SELECT score, tier, epoch_ms(follow_up_due) FROM leads WHERE lead_id = ?",
                [uuid.UUID(bytes=lead_id)],
            )
            if not rows or rows[0][0] is None:
                return None
            score, tier, due = rows[0]
            return {"score": score, "tier": tier, "follow_up_due": iso_ms(due)}

        service = IngestService(
            settings,
            enricher=enricher,
            writer=writer,
            metrics=metrics,
            clock=clock,
            tokens=tokens,
            lead_score=lead_score,
        )
        kpis = KpiGauges(store, settings, metrics, clock)
        auth = AuthDB.in_folder(cfg.path, clock=clock)
        archive = dashboard_archive(settings, store, writer, clock)
        return cls(
            settings,
            store,
            writer,
            service,
            metrics,
            geo,
            scores,
            kpis,
            delivery,
            auth,
            archive,
            tokens,
        )

    def start(self) -> None:
        # ua-parser compiles its rule set on first use (~0.25 s): pay it now,
        # not in the first visitor's request.
        parse_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36")
        self.writer.recover()
        # Session ids are numbered in order: continue after the last one stored.
        self.ingest.enricher.sessions.resume_after(self.store.last_session_seq())
        self.scores.prime()
        self.writer.start()
        self.kpis.start()
        self.delivery.start()
        self.archive.start()

    def warm_dashboards(self) -> None:
        """Compute every site's dashboards for their default view into the archive, with
        what was acknowledged so far (the demo does this after its backfill)."""
        for site in self.settings.sites:
            for name in DASHBOARDS:
                self.archive.answer(
                    (name, site.id, ()), lambda: self.writer.flush(60.0, sessions=True)
                )

    def stop(self) -> None:
        """Commit what is queued, checkpoint and close."""
        self.archive.stop()
        self.kpis.stop()
        self.delivery.stop()
        self.writer.stop()
        try:
            self.store.checkpoint()
        finally:
            self.store.close()
            self.geo.close()
            self.auth.close()


def dashboard_archive(
    settings: Settings, store: DuckDBStore, writer: Writer, clock: Clock
) -> DashboardArchive:
    """The archive of the dashboards: a view key is (dashboard, site id, sorted report
    parameters as pairs), and its data is computed as of the clock's now."""
    sites = {site.id: site for site in settings.sites}

    def compute(key: ViewKey) -> dict[str, Any]:
        name, site_id, params = key
        assert isinstance(name, str) and isinstance(site_id, str) and isinstance(params, tuple)
        now = clock()
        data = DASHBOARDS[name](store, ReportRequest(settings, sites[site_id], dict(params), now))
        data["generated_at"] = iso_ms(now)
        return data

    return DashboardArchive(
        compute,
        lambda: writer.analysed_offset,
        max_age_secs=settings.analysis.dashboard_max_age_secs,
    )
