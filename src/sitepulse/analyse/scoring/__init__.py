"""Lead scoring: a 0–100 score with its breakdown, a tier and a follow-up deadline.

Pure: facts, the model and `now` come in as parameters. Components are scored 0–100 and
weighted. The total is rounded half up to one decimal and the weighted contributions are
rounded to tenths by largest remainder, so the breakdown adds up to exactly the total
shown; the tier is chosen from that rounded total. Fit (form completion, demographics) is
who the lead is; engagement (traffic source, on-site engagement) is what they did: how they
arrived is behaviour, not identity. Each sub-score is its components' weighted mean, 0–100.

Modules: `inputs` (what a lead is scored on), `components` (the four components and their
rules), `scorer` (`score_lead`, and `LeadScorer` for many leads under one model, kept fast),
`follow_up` (tiers and deadlines in business hours), `result` (the score and breakdown).
"""

from sitepulse.analyse.scoring.follow_up import (
    add_business_minutes,
    follow_up_deadline,
    is_business_day,
    tier_for,
)
from sitepulse.analyse.scoring.inputs import (
    Activity,
    CustomEvent,
    Download,
    EngagedTime,
    EngagementFacts,
    FieldValue,
    LeadFacts,
    PageView,
    Session,
)
from sitepulse.analyse.scoring.result import (
    CapApplied,
    ComponentScore,
    FollowUp,
    Group,
    RuleHit,
    Score,
)
from sitepulse.analyse.scoring.scorer import LeadScorer, score_lead

__all__ = [
    "Activity",
    "CapApplied",
    "ComponentScore",
    "CustomEvent",
    "Download",
    "EngagedTime",
    "EngagementFacts",
    "FieldValue",
    "FollowUp",
    "Group",
    "LeadFacts",
    "LeadScorer",
    "PageView",
    "RuleHit",
    "Score",
    "Session",
    "add_business_minutes",
    "follow_up_deadline",
    "is_business_day",
    "score_lead",
    "tier_for",
]
