"""Lead-intelligence KPIs as Prometheus gauges, recomputed in the background.

Scrapes must stay cheap, so the analyses run every `analysis.kpi_refresh_secs`
on a thread of their own and the gauges hold the last answer.

The gauges are the built-in UI's own analyses (KPIs, Web Vitals, attribution, the
lead funnel) over the trailing `analysis.kpi_window_days`, so an exported Grafana
panel (export/dashboards.py) and the built-in view show the same number. A labelled
child that a refresh no longer produces (a channel without traffic in the window) is
removed rather than left at its old value. `sitepulse_kpi_last_refresh_timestamp_seconds`
is set after every site was refreshed, so a stale number can be told from a current one.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import zoneinfo
from collections.abc import Mapping

from prometheus_client import Gauge

from sitepulse.analyse.attribution import NOT_SET, Dimension
from sitepulse.analyse.base import DAY_MS, LEAD_FILTER, Period, Reader
from sitepulse.analyse.funnels import DEFAULT_LEAD_FUNNEL, funnel, parse_funnel
from sitepulse.analyse.kpis import kpi_report
from sitepulse.analyse.touchpoints import attribution_report
from sitepulse.analyse.vitals import vitals_summary
from sitepulse.clock import Clock
from sitepulse.config.models import Settings, SiteConfig
from sitepulse.export.metrics import Metrics

log = logging.getLogger(__name__)

_LEADS_BY_CHANNEL_TIER = (
    f"SELECT coalesce(channel, '{NOT_SET}'), coalesce(tier, 'unscored'), count(*) FROM leads"
    f" WHERE {LEAD_FILTER}"
    " GROUP BY 1, 2"
)
_LEADS = f"SELECT count(*) FROM leads WHERE {LEAD_FILTER}"


def _number(value: float | None) -> float:
    # Rates and means of nothing do not exist: NaN, which Prometheus keeps as a value.
    return float("nan") if value is None else float(value)


class _Children:
    """A labelled gauge (site first) whose children for a site are replaced on each refresh."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._keys: dict[str, set[tuple[str, ...]]] = {}

    def publish(self, site: str, values: Mapping[tuple[str, ...], float]) -> None:
        for key, value in values.items():
            self._gauge.labels(site, *key).set(value)
        for key in self._keys.get(site, set()) - values.keys():
            self._gauge.remove(site, *key)
        self._keys[site] = set(values)


def local_midnight_ms(now_ms: int, timezone: str) -> int:
    """The start of `now_ms`'s day in `timezone`, in epoch ms."""
    zone = zoneinfo.ZoneInfo(timezone)
    day = dt.datetime.fromtimestamp(now_ms / 1000, zone).date()
    return int(dt.datetime.combine(day, dt.time(), zone).timestamp() * 1000)


class KpiGauges:
    """Keeps the sitepulse_kpi_* gauges of every site current."""

    def __init__(self, reader: Reader, settings: Settings, metrics: Metrics, clock: Clock) -> None:
        self._reader = reader
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._window_ms = settings.analysis.kpi_window_days * DAY_MS
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        configured = {d.name: d for d in map(parse_funnel, settings.funnels)}
        # The funnel the built-in UI shows by default: "lead", unless configuration redefines it.
        self._lead_funnel = configured.get(DEFAULT_LEAD_FUNNEL.name, DEFAULT_LEAD_FUNNEL)
        self._channel_sessions = _Children(metrics.kpi_channel_sessions)
        self._channel_conversion = _Children(metrics.kpi_channel_conversion_rate)
        self._channel_score = _Children(metrics.kpi_channel_average_score)
        self._channel_leads = _Children(metrics.kpi_channel_leads)
        self._attributed_leads = _Children(metrics.kpi_attributed_leads)
        self._attributed_value = _Children(metrics.kpi_attributed_value)
        self._funnel = _Children(metrics.kpi_funnel_units)
        self._lcp = _Children(metrics.kpi_lcp_conversion_rate)
        metrics.kpi_window.set(self._window_ms / 1000)
        for site in settings.sites:
            # No synthetic checks exist yet; the uptime panel says so instead of guessing.
            metrics.synthetic_checks.labels(site.id).set(0)

    def refresh(self) -> None:
        """Recompute every gauge now."""
        now = self._clock()
        for site in self._settings.sites:
            self._refresh_site(site, now)
        self._metrics.kpi_refreshed.set(now / 1000)

    def _refresh_site(self, site: SiteConfig, now: int) -> None:
        m = self._metrics
        period = Period(site.id, now - self._window_ms, now)
        kpis = kpi_report(self._reader, period, top=1)
        m.kpi_conversion_rate.labels(site.id).set(
            _number(kpis.kpi("conversion_rate").overall.value)
        )
        m.kpi_average_score.labels(site.id).set(_number(kpis.kpi("avg_lead_score").overall.value))
        m.kpi_email_signup_rate.labels(site.id).set(
            _number(kpis.kpi("email_signup_rate").overall.value)
        )
        m.kpi_engaged_seconds.labels(site.id).set(
            _number(kpis.kpi("engaged_time_per_session").overall.value)
        )

        def by_channel(name: str) -> dict[tuple[str, ...], float]:
            # Channels seen only in the previous period read 0 sessions / no rate: left out.
            return {
                (r.channel or NOT_SET,): float(r.value)
                for r in kpis.kpi(name).by_channel
                if r.value is not None and (r.value or name != "sessions")
            }

        self._channel_sessions.publish(site.id, by_channel("sessions"))
        self._channel_conversion.publish(site.id, by_channel("conversion_rate"))
        self._channel_score.publish(site.id, by_channel("avg_lead_score"))

        vitals = vitals_summary(self._reader, period, by=None)
        m.kpi_cwv_pass_rate.labels(site.id).set(_number(vitals.overall.compliance.share))
        self._lcp.publish(
            site.id,
            {
                (b.bucket,): b.conversion_rate
                for b in vitals.lcp_by_range
                if b.conversion_rate is not None
            },
        )

        # Every label each time, "unscored" included: a lead unscored at one refresh and
        # scored at the next must not stay counted under the old label.
        tiers = dict.fromkeys((*(t.name for t in self._settings.scoring.tiers), "unscored"), 0)
        by_channel_tier: dict[tuple[str, ...], float] = {}
        for channel, tier, n in self._reader.query(_LEADS_BY_CHANNEL_TIER, period.params):
            tiers[str(tier)] = tiers.get(str(tier), 0) + int(n)
            by_channel_tier[(str(channel), str(tier))] = int(n)
        for tier, n in tiers.items():
            m.kpi_leads.labels(site.id, tier).set(n)
        self._channel_leads.publish(site.id, by_channel_tier)

        midnight = local_midnight_ms(now, site.timezone)
        today = Period(site.id, midnight, max(now, midnight + 1))
        m.kpi_leads_today.labels(site.id).set(int(self._reader.query(_LEADS, today.params)[0][0]))

        credit = attribution_report(
            self._reader, period, self._settings.attribution, Dimension.CHANNEL
        )
        self._attributed_leads.publish(
            site.id,
            {(row.key, model.value): x for row in credit.rows for model, x in row.leads.items()},
        )
        self._attributed_value.publish(
            site.id,
            {(row.key, model.value): x for row in credit.rows for model, x in row.value.items()},
        )

        steps = funnel(self._reader, period, self._lead_funnel).steps
        # Zero-padded numbers sort in step order wherever labels are sorted as text.
        self._funnel.publish(site.id, {(f"{s.step:02d}", s.name): s.units for s in steps})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sitepulse-kpis", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        interval = self._settings.analysis.kpi_refresh_secs
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # a failed refresh keeps the last values; logged, retried
                log.exception("refreshing the KPI gauges failed")
            self._stop.wait(interval)
