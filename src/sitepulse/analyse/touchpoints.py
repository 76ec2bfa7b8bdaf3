"""Lead journeys for attribution: each lead with its visitor's sessions in the lookback."""

from __future__ import annotations

from sitepulse.analyse.attribution import (
    AttributionConfig,
    AttributionReport,
    Dimension,
    LeadJourney,
    Touchpoint,
    report,
)
from sitepulse.analyse.base import LEAD_FILTER, Period, Reader
from sitepulse.config.analysis import AttributionSettings

# Leads of the period (by the lead's time) and every session of their visitor
# that started within the lookback before the lead, in one pass.
_JOURNEYS = f"""
WITH l AS (
    SELECT lead_id, site, visitor_id, ts, score FROM leads WHERE {LEAD_FILTER}
)
SELECT l.lead_id::VARCHAR, epoch_ms(l.ts), l.score, epoch_ms(s.started_at), s.channel,
       s.source, s.medium, s.campaign, s.session_id
FROM l LEFT JOIN sessions s
  ON s.site = l.site AND s.visitor_id = l.visitor_id AND l.visitor_id <> 0
 AND s.started_at <= l.ts AND s.started_at >= l.ts - to_milliseconds(?::BIGINT)
 AND NOT s.is_bot
ORDER BY l.ts, l.lead_id, s.started_at, s.session_id
"""


def attribution_config(settings: AttributionSettings) -> AttributionConfig:
    """The attribution models' parameters from configuration."""
    first, middle, last = settings.position_weights
    return AttributionConfig(
        lookback_days=settings.lookback_days,
        half_life_days=settings.half_life_days,
        position_first_weight=first,
        position_middle_weight=middle,
        position_last_weight=last,
    )


def lead_journeys(reader: Reader, period: Period, config: AttributionConfig) -> list[LeadJourney]:
    """Every counted lead of the period with its touchpoints, oldest lead first."""
    rows = reader.query(_JOURNEYS, [*period.params, config.lookback_ms])
    journeys: list[LeadJourney] = []
    current: str | None = None
    ts = 0
    score: float | None = None
    touches: list[Touchpoint] = []
    for lead_id, lead_ts, lead_score, started, channel, source, medium, campaign, sid in rows:
        if lead_id != current:
            if current is not None:
                journeys.append(LeadJourney(current, ts, score, tuple(touches)))
            current, ts, score, touches = lead_id, lead_ts, lead_score, []
        if started is not None:
            touches.append(Touchpoint(started, channel, source, medium, campaign, int(sid)))
    if current is not None:
        journeys.append(LeadJourney(current, ts, score, tuple(touches)))
    return journeys


def attribution_report(
    reader: Reader, period: Period, settings: AttributionSettings, dimension: Dimension
) -> AttributionReport:
    """All six models side by side for the period's leads, by `dimension`."""
    config = attribution_config(settings)
    return report(lead_journeys(reader, period, config), dimension, config)
