"""Lead-intelligence KPIs as Prometheus gauges, recomputed in the background.

Scrapes must stay cheap, so the analyses run every `analysis.kpi_refresh_secs`
on a thread of their own and the gauges hold the last answer.
"""

from __future__ import annotations

import logging
import threading

from sitepulse.analyse.base import DAY_MS, LEAD_FILTER, Period, Reader
from sitepulse.analyse.kpis import kpi_report
from sitepulse.analyse.vitals import vitals_summary
from sitepulse.clock import Clock
from sitepulse.config.models import Settings
from sitepulse.export.metrics import Metrics

log = logging.getLogger(__name__)


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
        metrics.kpi_window.set(self._window_ms / 1000)

    def refresh(self) -> None:
        """Recompute every gauge now."""
        now = self._clock()
        tiers = [tier.name for tier in self._settings.scoring.tiers]
        m = self._metrics
        for site in self._settings.sites:
            period = Period(site.id, now - self._window_ms, now)
            kpis = kpi_report(self._reader, period, top=1)
            rate = kpis.kpi("conversion_rate").overall.value
            m.kpi_conversion_rate.labels(site.id).set(rate if rate is not None else float("nan"))
            score = kpis.kpi("avg_lead_score").overall.value
            m.kpi_average_score.labels(site.id).set(score if score is not None else float("nan"))
            share = vitals_summary(self._reader, period, by=None).overall.compliance.share
            m.kpi_cwv_pass_rate.labels(site.id).set(share if share is not None else float("nan"))
            counts = dict.fromkeys(tiers, 0)
            rows = self._reader.query(
                f"SELECT coalesce(tier, 'unscored'), count(*) FROM leads WHERE {LEAD_FILTER}"
                " GROUP BY 1",
                period.params,
            )
            counts.update({str(tier): int(n) for tier, n in rows})
            for tier, n in counts.items():
                m.kpi_leads.labels(site.id, tier).set(n)

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
