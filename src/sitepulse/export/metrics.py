"""sitepulse's Prometheus metrics: its own health and the site's business signals.

Cardinality-safe by construction: labels carry sites, page groups, channels,
devices and outcomes only — never URLs, ids or user agents — and every
visitor-derived label goes through a bounded set that folds overflow into
"other".
"""

from __future__ import annotations

import threading
from collections import Counter as Counter_
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from sitepulse.model.records import StoredEvent, StoredLead
from sitepulse.store.writer import WriteResult

if TYPE_CHECKING:
    from sitepulse.analyse.lead_scores import ScoredLead

# Bucket bounds include Google's good / poor thresholds for each Web Vital, so
# "share of good" is an exact bucket ratio in PromQL.
VITAL_BUCKETS: dict[str, tuple[float, ...]] = {
    "LCP": (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0),
    "INP": (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0),
    "CLS": (0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0),
    "FCP": (0.5, 1.0, 1.8, 2.4, 3.0, 4.0, 6.0),
    "TTFB": (0.1, 0.2, 0.4, 0.8, 1.2, 1.8, 3.0),
}
# Thresholds as (good upper bound, poor lower bound), in the unit of the metric.
VITAL_THRESHOLDS: dict[str, tuple[float, float]] = {
    "LCP": (2.5, 4.0),
    "INP": (0.2, 0.5),
    "CLS": (0.1, 0.25),
    "FCP": (1.8, 3.0),
    "TTFB": (0.8, 1.8),
}
# *_created series double the exposition for no use to Prometheus users.
disable_created_metrics()  # type: ignore[no-untyped-call]

COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def vital_histogram_name(metric: str) -> str:
    """The histogram of Web Vital `metric` (LCP, INP, CLS, FCP, TTFB); seconds but for CLS."""
    return f"sitepulse_web_vitals_{metric.lower()}" + ("" if metric == "CLS" else "_seconds")


class BoundedLabels:
    """Admits up to `limit` distinct values; later newcomers become 'other'."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return "other"


class Metrics:
    """All of sitepulse's metrics, registered on the registry given."""

    def __init__(self, registry: CollectorRegistry, *, max_page_groups: int = 50) -> None:
        self.registry = registry
        r = registry
        self.requests = Counter(
            "sitepulse_ingest_requests",
            "Ingest requests by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.events = Counter(
            "sitepulse_ingest_events",
            "Ingested events by outcome",
            ["outcome"],
            registry=r,
        )
        self.dropped = Counter(
            "sitepulse_dropped_events",
            "Events not stored, by reason",
            ["reason"],
            registry=r,
        )
        self.bots = Counter(
            "sitepulse_bot_events",
            "Events from bots, by detection reason kind and action",
            ["kind", "action"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "sitepulse_ingest_queue_events",
            "Events waiting for the writer",
            registry=r,
        )
        self.queue_capacity = Gauge(
            "sitepulse_ingest_queue_capacity_events",
            "Bound of the ingest queue",
            registry=r,
        )
        self.commit_seconds = Histogram(
            "sitepulse_store_commit_seconds",
            "Time to make one group of batches durable (journal fsync)",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.commit_events = Histogram(
            "sitepulse_store_commit_events",
            "Records per group commit",
            buckets=(1, 5, 20, 100, 500, 2000, 10000, 50000),
            registry=r,
        )
        self.load_seconds = Histogram(
            "sitepulse_store_load_seconds",
            "Time to load one group of journalled rows into the store",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.unloaded = Gauge(
            "sitepulse_store_unloaded_events",
            "Acknowledged rows waiting in the journal for the store",
            registry=r,
        )
        self.store_errors = Counter(
            "sitepulse_store_errors",
            "Failed commits",
            registry=r,
        )
        self.pageviews = Counter(
            "sitepulse_pageviews",
            "Page views by humans",
            ["site", "page_group", "channel", "device"],
            registry=r,
        )
        self.leads = Counter(
            "sitepulse_leads",
            "Stored leads (tests excluded)",
            ["site", "channel"],
            registry=r,
        )
        self.test_leads = Counter(
            "sitepulse_test_leads",
            "Stored leads marked as tests",
            ["site"],
            registry=r,
        )
        self.form_events = Counter(
            "sitepulse_form_events",
            "Form interactions by step",
            ["site", "page_group", "step"],
            registry=r,
        )
        self.vitals = {
            metric: Histogram(
                vital_histogram_name(metric),
                f"{metric} as reported by browsers (web-vitals)",
                ["site", "page_group", "device"],
                buckets=buckets,
                registry=r,
            )
            for metric, buckets in VITAL_BUCKETS.items()
        }
        self.lead_scorings = Counter(
            "sitepulse_lead_scorings",
            "Leads scored or re-scored, by the tier they landed in",
            ["site", "tier"],
            registry=r,
        )
        # Lead-intelligence KPIs over a trailing window, refreshed in the background.
        self.kpi_conversion_rate = Gauge(
            "sitepulse_kpi_conversion_rate",
            "Share of sessions with a lead (tests excluded), trailing window",
            ["site"],
            registry=r,
        )
        self.kpi_leads = Gauge(
            "sitepulse_kpi_leads",
            "Leads in the trailing window by score tier (tests excluded)",
            ["site", "tier"],
            registry=r,
        )
        self.kpi_average_score = Gauge(
            "sitepulse_kpi_average_lead_score",
            "Average lead score in the trailing window (tests excluded)",
            ["site"],
            registry=r,
        )
        self.kpi_cwv_pass_rate = Gauge(
            "sitepulse_kpi_cwv_pass_rate",
            "Share of page loads passing all Core Web Vitals, trailing window",
            ["site"],
            registry=r,
        )
        self.kpi_window = Gauge(
            "sitepulse_kpi_window_seconds",
            "Length of the trailing window the sitepulse_kpi_* gauges cover",
            registry=r,
        )
        # What the exported Grafana dashboards show (export/dashboards.py): each gauge holds
        # the built-in UI's own analysis of the trailing window, so both show one number.
        self.kpi_refreshed = Gauge(
            "sitepulse_kpi_last_refresh_timestamp_seconds",
            "When the sitepulse_kpi_* gauges were last recomputed (Unix time)",
            registry=r,
        )
        self.kpi_leads_today = Gauge(
            "sitepulse_kpi_leads_today",
            "Leads since midnight in the site's time zone (tests excluded)",
            ["site"],
            registry=r,
        )
        self.kpi_email_signup_rate = Gauge(
            "sitepulse_kpi_email_signup_rate",
            "Share of visitors who signed up for email, trailing window",
            ["site"],
            registry=r,
        )
        self.kpi_engaged_seconds = Gauge(
            "sitepulse_kpi_engaged_seconds_per_session",
            "Engaged time per session in seconds, trailing window",
            ["site"],
            registry=r,
        )
        self.kpi_channel_sessions = Gauge(
            "sitepulse_kpi_channel_sessions",
            "Human sessions in the trailing window by the channel they arrived by",
            ["site", "channel"],
            registry=r,
        )
        self.kpi_channel_conversion_rate = Gauge(
            "sitepulse_kpi_channel_conversion_rate",
            "Share of the channel's sessions with a lead (tests excluded), trailing window",
            ["site", "channel"],
            registry=r,
        )
        self.kpi_channel_average_score = Gauge(
            "sitepulse_kpi_channel_average_lead_score",
            "Average score of the channel's leads (tests excluded), trailing window",
            ["site", "channel"],
            registry=r,
        )
        self.kpi_channel_leads = Gauge(
            "sitepulse_kpi_channel_leads",
            "Leads in the trailing window by the lead's channel and score tier (tests excluded)",
            ["site", "channel", "tier"],
            registry=r,
        )
        self.kpi_attributed_leads = Gauge(
            "sitepulse_kpi_attributed_leads",
            "Lead credit by channel under each attribution model, trailing window",
            ["site", "channel", "model"],
            registry=r,
        )
        self.kpi_attributed_value = Gauge(
            "sitepulse_kpi_attributed_lead_value",
            "Score-weighted lead credit (credit x score) by channel and model, trailing window",
            ["site", "channel", "model"],
            registry=r,
        )
        self.kpi_funnel_units = Gauge(
            "sitepulse_kpi_lead_funnel_units",
            "Units (visitors, unless configured) reaching each lead-funnel step, trailing window",
            ["site", "step", "step_name"],
            registry=r,
        )
        self.kpi_lcp_conversion_rate = Gauge(
            "sitepulse_kpi_lcp_conversion_rate",
            "Share of sessions with a lead among sessions with a page load in the LCP range",
            ["site", "lcp_range"],
            registry=r,
        )
        self.synthetic_checks = Gauge(
            "sitepulse_synthetic_checks_configured",
            "Synthetic checks configured for the site (none exist yet: always 0)",
            ["site"],
            registry=r,
        )
        self._page_groups = BoundedLabels(max_page_groups)
        self._channels = BoundedLabels(40)
        self._form_steps = frozenset(
            {"form_start", "field_focus", "field_blur", "submit", "submit_error"}
        )

    def observe_scores(self, scored: Sequence[ScoredLead]) -> None:
        """Count scorings by tier; called by the lead-score keeper."""
        tally = Counter_((s.site, s.score.tier) for s in scored)
        for (site, tier), n in tally.items():
            self.lead_scorings.labels(site, tier).inc(n)

    def observe_load(self, rows: int, seconds: float) -> None:
        """Called by the loader after each store transaction."""
        self.load_seconds.observe(seconds)

    def observe_commit(self, result: WriteResult, seconds: float) -> None:
        """Count what a commit stored; called by the writer after each commit."""
        self.commit_seconds.observe(seconds)
        self.commit_events.observe(len(result.stored_events) + len(result.stored_leads))
        if result.duplicate_events:
            self.events.labels("duplicate").inc(result.duplicate_events)
        self.events.labels("stored").inc(len(result.stored_events))
        self._business(result.stored_events, result.stored_leads)

    def _business(self, events: Iterable[StoredEvent], leads: Iterable[StoredLead]) -> None:
        # Tally first and touch each labelled child once: this runs on the writer
        # thread for every commit, and labels() takes a lock each time.
        pageviews: Counter_[tuple[str, str, str, str]] = Counter_()
        forms: Counter_[tuple[str, str, str]] = Counter_()
        for ev in events:
            if ev.is_bot:
                continue
            kind = ev.type
            if kind == "pageview":
                pageviews[(ev.site, ev.page_group, ev.channel, ev.device)] += 1
            elif kind == "vital" and ev.value is not None:
                hist = self.vitals.get(ev.name)
                if hist is not None:
                    value = ev.value if ev.name == "CLS" else ev.value / 1000.0
                    hist.labels(ev.site, self._page_groups(ev.page_group), ev.device).observe(value)
            elif kind == "form" and ev.name in self._form_steps:
                forms[(ev.site, ev.page_group, ev.name)] += 1
        for (site, group, channel, device), count in pageviews.items():
            self.pageviews.labels(
                site, self._page_groups(group), self._channels(channel), device
            ).inc(count)
        for (site, group, step), count in forms.items():
            self.form_events.labels(site, self._page_groups(group), step).inc(count)
        for lead in leads:
            if lead.is_test:
                self.test_leads.labels(lead.site).inc()
            elif not lead.is_bot:
                self.leads.labels(lead.site, self._channels(lead.channel)).inc()
