"""Scoring stored leads agrees with the pure model, and the scorer's memos with a fresh scorer.

`score_stored_leads` gathers each lead's facts with one SQL statement and scores them with a
shared `LeadScorer`; whatever it does for speed, each score must be exactly the one
`score_lead` gives for the same facts (the facts written down independently here, while the
journeys are generated).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sitepulse.analyse.lead_scores import score_stored_leads
from sitepulse.analyse.scoring import (
    CustomEvent,
    Download,
    EngagedTime,
    EngagementFacts,
    LeadFacts,
    LeadScorer,
    PageView,
    Session,
    score_lead,
)
from sitepulse.config.models import Settings
from sitepulse.config.scoring import ScoringConfig
from tests.analyse.journeys import DAY, MINUTE, SITE, T0, Journeys

NOW = T0 + 60 * DAY
ZONE = "Europe/Berlin"
CUSTOM = ("cta_click", "pricing_toggle", "video_play", "newsletter_signup", "not_in_the_model")
# Values a form field may hold: blank ones (Unicode spaces too), listed and unlisted ones.
TEXTS = ("", " ", "\u00a0\t", "11-50", "1000+", "Healthcare", "Mining", "US", "fr", "x")
MESSAGES = ("", "hi", " " * 30, "We would like a quote for the whole platform, please.")


@dataclass
class _Visitor:
    """What one visitor did, as the pure model takes it."""

    sessions: list[Session] = field(default_factory=list)
    pageviews: list[PageView] = field(default_factory=list)
    engaged: list[EngagedTime] = field(default_factory=list)
    downloads: list[Download] = field(default_factory=list)
    custom_events: list[CustomEvent] = field(default_factory=list)

    def facts(self) -> EngagementFacts:
        return EngagementFacts(
            tuple(self.sessions),
            tuple(self.pageviews),
            tuple(self.engaged),
            tuple(self.downloads),
            tuple(self.custom_events),
        )


def _journeys(seed: int) -> tuple[Journeys, dict[bytes, tuple[LeadFacts, EngagementFacts]]]:
    """Random visits and leads over the 55 days before NOW, and each lead's expected facts."""
    rng = random.Random(seed)
    book = Journeys()
    expected: dict[bytes, tuple[LeadFacts, EngagementFacts]] = {}
    for visitor_id in range(1, 25):
        seen = _Visitor()
        visits = []
        for _ in range(rng.randint(1, 4)):
            visit = book.visit(visitor_id, channel=rng.choice(["Direct", "Paid Search", "Email"]))
            ts = T0 + rng.randrange(55 * DAY)
            seen.sessions.append(Session(ts))
            for page in range(rng.randint(1, 6)):
                visit.page(ts, f"/p{page}")
                seen.pageviews.append(PageView(ts))
                engaged, at = 0, ts
                for _ in range(rng.randint(0, 3)):  # running totals: the largest counts
                    engaged, at = engaged + rng.randint(10_000, 150_000), at + 1000
                    visit.engaged(at, engaged)
                if engaged:
                    seen.engaged.append(EngagedTime(at, engaged))
                if rng.random() < 0.2:
                    visit.event(ts + 5000, "click", "download", props={"href": "/a.pdf"})
                    seen.downloads.append(Download(ts + 5000))
                if rng.random() < 0.4:
                    name = rng.choice(CUSTOM)
                    visit.custom(ts + 6000, name)
                    seen.custom_events.append(CustomEvent(ts + 6000, name))
                ts += rng.randint(1, 10) * MINUTE
            visits.append((visit, ts))
        for visit, ts in rng.sample(visits, rng.randint(1, min(2, len(visits)))):
            form: dict[str, Any] = {
                name: rng.choice(TEXTS)
                for name in ("email", "phone", "company", "company_size", "industry", "country")
            }
            visit.lead(ts, message=rng.choice(MESSAGES), budget=rng.choice(TEXTS), **form)
            stored = book.leads[-1]
            lead = LeadFacts(
                ts=ts,
                channel=str(visit.context["channel"]),
                email=stored.email,
                phone=stored.phone,
                company=stored.company,
                company_size=stored.company_size,
                industry=stored.industry,
                country=stored.country or stored.geo_country,
                budget=stored.budget,
                message=stored.message,
                consent=stored.consent,
            )
            expected[stored.lead_id] = (lead, seen.facts())
    return book, expected


MODELS: list[dict[str, Any]] = [
    {},
    {"engagement": {"half_life_days": 7.5, "engaged_page": {"min_engaged_secs": 45}}},
    {
        "engagement": {"half_life_days": None, "extra_page": {"after_pages": 0}},
        "form_completion": {"min_message_chars": 0, "field_points": {"email": 5, "consent": 5}},
    },
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stored_leads_score_as_the_pure_model(tmp_path: Path, seed: int) -> None:
    book, expected = _journeys(seed)
    store = book.save(tmp_path)
    for model in MODELS:
        settings = Settings.model_validate(
            {"sites": [{"id": SITE, "timezone": ZONE}], "scoring": model}
        )
        scored = score_stored_leads(store, settings, None, NOW)
        assert sorted(s.lead_id for s in scored) == sorted(expected)
        decayed = 0
        for stored in scored:
            lead, facts = expected[stored.lead_id]
            pure = score_lead(settings.scoring, lead, facts, now_ms=NOW, zone=ZONE)
            assert stored.site == SITE
            assert stored.score == pure, stored.lead_id.hex()
            assert stored.score.to_dict() == pure.to_dict()
            decayed += sum(hit.decay_factor < 1 for c in pure.components for hit in c.hits)
        # The data exercise decay (or the model turns it off).
        assert decayed > 0 or model.get("engagement", {}).get("half_life_days", 30) is None
    store.close()


def test_stored_leads_come_in_the_order_they_were_submitted(tmp_path: Path) -> None:
    book, expected = _journeys(4)
    store = book.save(tmp_path)
    scored = score_stored_leads(store, Settings(), None, NOW)
    times = [expected[s.lead_id][0].ts for s in scored]
    assert times == sorted(times) and len(times) == len(expected)
    store.close()


# Leads whose form fields differ only in ways the form-completion memo must tell apart.
_FORM_LEADS = [
    LeadFacts(ts=NOW, channel="Direct", email="a@b.c", message="short"),
    LeadFacts(ts=NOW, channel="Direct", email="a@b.c", message="long enough to count, surely"),
    LeadFacts(ts=NOW, channel="Direct", email="\u2003", message="\u3000" * 25),
    LeadFacts(ts=NOW, channel="Direct", email=" a ", phone="\n"),
    LeadFacts(ts=NOW, channel="Direct", consent=True, fields={"budget_range": "10k"}),
    LeadFacts(ts=NOW, channel="Direct", consent=False, fields={"budget_range": " "}),
    LeadFacts(ts=NOW, channel="Direct", fields={"budget_range": 0}),
    LeadFacts(ts=NOW, channel="Direct", fields={"budget_range": False}),
    # Not text where text is expected: still scored as score_lead scores it.
    LeadFacts(ts=NOW, channel="Direct", phone=5, company=None),  # type: ignore[arg-type]
]
_FORM_MODELS: list[dict[str, Any]] = [
    {},
    {
        "form_completion": {
            "field_points": {"email": 10, "phone": 10, "company": 5, "consent": 5, "message": 5},
            "custom_field_points": {"budget_range": 20},
            "min_message_chars": 20,
        }
    },
    {"form_completion": {"field_points": {"consent": 50}, "min_message_chars": 0}},
]


@pytest.mark.parametrize("model", _FORM_MODELS)
def test_a_shared_scorer_tells_form_fields_apart(model: dict[str, Any]) -> None:
    config = ScoringConfig.model_validate(model)
    scorer = LeadScorer(config)
    for _ in range(2):
        for lead in _FORM_LEADS:
            shared = scorer.score(lead, EngagementFacts(), now_ms=NOW, zone=ZONE)
            assert shared == score_lead(config, lead, EngagementFacts(), now_ms=NOW, zone=ZONE)
