"""Leads that reach a configured tier go to a webhook (a CRM, a chat channel) via the outbox."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence

from sitepulse.alerting.outbox import Outbox, OutboxFull
from sitepulse.analyse.base import Reader
from sitepulse.analyse.lead_scores import ScoredLead
from sitepulse.clock import iso_ms
from sitepulse.config.models import Settings

KIND = "lead_webhook"
log = logging.getLogger(__name__)

_FIELDS = (
    "lead_id",
    "site",
    "ts",
    "email",
    "phone",
    "name",
    "company",
    "company_size",
    "industry",
    "country",
    "budget",
    "timeline",
    "message",
    "consent",
    "fields",
    "form",
    "url",
    "channel",
    "source",
    "medium",
    "campaign",
    "is_test",
)
# One list of columns: the SELECT is built from it, so the two cannot drift apart.
_CASTS = {"lead_id": "lead_id::VARCHAR", "ts": "epoch_ms(ts)", "fields": "fields::VARCHAR"}
_LEAD = f"SELECT {', '.join(_CASTS.get(f, f) for f in _FIELDS)} FROM leads WHERE lead_id = ?"


class LeadRouter:
    """Enqueues a delivery per (lead, webhook) once the lead's tier qualifies."""

    def __init__(self, settings: Settings, reader: Reader, outbox: Outbox) -> None:
        self._hooks = settings.lead_webhooks
        self._reader = reader
        self._outbox = outbox
        self._floor = {tier.name: tier.min_score for tier in settings.scoring.tiers}

    def route(self, scored: Sequence[ScoredLead]) -> None:
        """Called with every (re-)scored lead; the outbox's dedupe key sends each lead once."""
        if not self._hooks:
            return
        for item in scored:
            score = item.score
            wanted = [
                hook
                for hook in self._hooks
                if self._floor[score.tier] >= self._floor[hook.min_tier]
                and (not hook.sites or item.site in hook.sites)
                and (hook.include_test_leads or not score.is_test)
            ]
            if not wanted:
                continue
            rows = self._reader.query(_LEAD, [uuid.UUID(bytes=item.lead_id)])
            if not rows:
                continue
            lead = dict(zip(_FIELDS, rows[0], strict=True))
            lead["ts"] = iso_ms(lead["ts"])
            lead["fields"] = json.loads(lead["fields"]) if lead["fields"] else {}
            payload = {
                "event": "lead.qualified",
                "lead": lead,
                "score": score.total,
                "tier": score.tier,
                "action": score.action,
                "follow_up_due": iso_ms(score.follow_up.deadline_ms),
                "why": [
                    {"component": c.name, "points": c.points, "contribution": c.contribution}
                    for c in score.components
                ],
            }
            for hook in wanted:
                try:
                    self._outbox.enqueue(KIND, hook.url, payload, f"{lead['lead_id']}:{hook.url}")
                except OutboxFull:
                    log.error("outbox full: lead %s not queued for its webhook", lead["lead_id"])
