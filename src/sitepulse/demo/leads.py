"""The people behind the demo's leads: names, companies, budgets and what they write."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence

from sitepulse.collect.payloads import LeadSubmission
from sitepulse.demo.catalog import (
    AI_ASSISTANTS,
    EMAIL,
    ORGANIC_SEARCH,
    PAID_SEARCH,
    REFERRAL,
    SERVICES,
)
from sitepulse.demo.clients import (
    COUNTRIES_BY_CODE,
)

COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
BUDGETS = ("<5k", "5k-20k", "20k-50k", "50k+")
TIMELINES = ("asap", "1-3 months", "3-6 months", "exploring")
INDUSTRIES = (
    "Software & SaaS",
    "Financial services",
    "Healthcare",
    "Manufacturing",
    "Retail & e-commerce",
    "Logistics & transport",
    "Professional services",
    "Education",
    "Energy & utilities",
    "Public sector",
    "Non-profit",
)
SERVICE_INTERESTS = (*(slug for slug, _ in SERVICES), "not-sure")
HOW_HEARD = (
    "Google",
    "LinkedIn",
    "A colleague",
    "Podcast",
    "Conference talk",
    "ChatGPT",
    "Clutch",
)

_FIRST = (
    "Emma",
    "Liam",
    "Olivia",
    "Noah",
    "Amelia",
    "Oliver",
    "Sophie",
    "Lucas",
    "Mia",
    "Ethan",
    "Hannah",
    "Jonas",
    "Léa",
    "Thomas",
    "Priya",
    "Arjun",
    "Chloé",
    "Daan",
    "Sanne",
    "Jürgen",
    "Björn",
    "Elin",
    "José",
    "Lucía",
    "Zoë",
    "Aoife",
    "Ciarán",
    "Marta",
    "Piotr",
    "Wei",
    "Mei",
    "Rahul",
    "Ananya",
    "Grace",
    "Jack",
    "Isabella",
    "Mateo",
    "Renée",
    "François",
    "Kai",
)
_LAST = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Taylor",
    "Wilson",
    "Davies",
    "Evans",
    "Müller",
    "Schmidt",
    "Schneider",
    "Dubois",
    "Martin",
    "Bernard",
    "de Vries",
    "Jansen",
    "Bakker",
    "Tremblay",
    "Roy",
    "Nguyen",
    "Patel",
    "Sharma",
    "Iyer",
    "García",
    "Fernández",
    "López",
    "Andersson",
    "Johansson",
    "Lindqvist",
    "Murphy",
    "O'Brien",
    "Kowalski",
    "Nowak",
    "Tan",
    "Lim",
    "Chen",
    "Walsh",
    "Hughes",
    "Moreau",
    "Fischer",
)
_WORD_A = (
    "Blue",
    "Harbor",
    "Summit",
    "Cedar",
    "Bright",
    "North",
    "Silver",
    "Granite",
    "Maple",
    "Copper",
    "Oak",
    "Signal",
    "Atlas",
    "Lumen",
    "Vector",
    "Riverstone",
    "Kestrel",
    "Helix",
)
_WORD_B = (
    "Logistics",
    "Health",
    "Analytics",
    "Foods",
    "Retail",
    "Labs",
    "Energy",
    "Finance",
    "Robotics",
    "Learning",
    "Freight",
    "Clinics",
    "Software",
    "Insurance",
    "Works",
    "Systems",
)
_SUFFIX = {
    "US": "Inc.",
    "GB": "Ltd",
    "DE": "GmbH",
    "FR": "SAS",
    "NL": "B.V.",
    "CA": "Corp.",
    "AU": "Pty Ltd",
    "IN": "Pvt Ltd",
    "ES": "S.L.",
    "SE": "AB",
    "IE": "Ltd",
    "PL": "Sp. z o.o.",
    "SG": "Pte Ltd",
}
_TLD = {
    "US": ".com",
    "GB": ".co.uk",
    "DE": ".de",
    "FR": ".fr",
    "NL": ".nl",
    "CA": ".ca",
    "AU": ".com.au",
    "IN": ".in",
    "ES": ".es",
    "SE": ".se",
    "IE": ".ie",
    "PL": ".pl",
    "SG": ".sg",
}
_FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "hotmail.co.uk", "gmx.de")

_MESSAGES = (
    "We're planning a move of our reporting stack to the cloud and would like a second "
    "opinion on the architecture before we commit.",
    "Our {industry} team spends days every month reconciling spreadsheets. Can you help us "
    "build a proper data platform?",
    "Looking for a partner for {service}. Timeline is {timeline}; budget is roughly {budget}.",
    "Saw your case study on the logistics migration. We have a similar setup (on-prem SQL "
    "Server, ~40 reports) and want to understand cost and timeline.",
    "We have three AI pilots that never made it to production. Could we book a call to "
    "talk about how you approach this?",
    "Can you share rates for a two-week discovery engagement?",
    "Our AWS bill doubled this year. Do you do cost reviews?",
    "Interested in {service} for a company of {size} people. Please send more information.",
    "Hi, I lead data at {company}. We're hiring our first analytics engineers and want help "
    "setting up dbt and a warehouse the right way.",
    "Please call me to discuss a project starting {timeline}.",
    "We need to migrate off a legacy ERP by Q3 and are evaluating consultancies.",
    "Following up on the webinar. Would love the slides and a short intro call.",
)
_SPAM_MESSAGES = (
    "Get your website on Google page #1 in 7 days!!! Guaranteed. Visit http://rank-boost.example",
    "Hello dear, we offer cheap backlinks packages, reply for price list",
    "Increase your sales 300% with our crypto marketing bot http://bit.example/x9",
)


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _phone(rng: random.Random, country: str) -> str:
    prefix = COUNTRIES_BY_CODE[country].phone_prefix if country in COUNTRIES_BY_CODE else "+44"
    if prefix == "+1":
        # 555-01xx numbers are reserved for fiction in North America.
        area = rng.choice(("212", "415", "617", "416", "604"))
        return f"+1 {area} 555 01{rng.randrange(100):02d}"
    if prefix == "+44":
        # Ofcom keeps 020 7946 0xxx for drama; nobody answers it.
        return f"+44 20 7946 0{rng.randrange(1000):03d}"
    digits = f"{rng.randrange(10**9):09d}"
    return f"{prefix} {digits[:3]} {digits[3:6]} {digits[6:]}"


def _budget(rng: random.Random, size_index: int, channel: str) -> str:
    weights = [max(0.08, 1.0 - abs(b - size_index * 0.8) / 2.2) for b in range(len(BUDGETS))]
    if channel in (PAID_SEARCH, REFERRAL):
        weights[-1] *= 1.4
        weights[-2] *= 1.2
    return rng.choices(BUDGETS, weights)[0]


def plan_lead(
    rng: random.Random,
    *,
    ts_ms: int,
    country: str,
    channel: str,
    service: str,
    url: str,
    referrer: str,
    is_test: bool = False,
) -> LeadSubmission:
    """One plausible contact-form lead from a visitor of `country` who arrived via `channel`."""
    if is_test:
        return LeadSubmission(
            email=f"qa+{rng.randrange(10_000)}@northwind-consulting.example",
            name="Test Submission",
            company="Northwind QA",
            message="Testing the contact form after deploy, please ignore.",
            consent=True,
            form="contact",
            ts=ts_ms,
            url=url,
            referrer=referrer,
            is_test=True,
        )
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    word_a, word_b = rng.choice(_WORD_A), rng.choice(_WORD_B)
    company = f"{word_a} {word_b} {_SUFFIX.get(country, 'Ltd')}"
    if rng.random() < 0.78:
        domain = f"{_ascii(word_a)}{_ascii(word_b)}{_TLD.get(country, '.com')}"
        local = rng.choice(
            (f"{_ascii(first)}.{_ascii(last)}", f"{_ascii(first)[0]}{_ascii(last)}", _ascii(first))
        )
    else:
        domain = rng.choice(_FREE_MAIL)
        number = str(rng.randrange(10, 99)) if rng.random() < 0.5 else ""
        local = f"{_ascii(first)}.{_ascii(last)}{number}"
    size_index = rng.choices(range(len(COMPANY_SIZES)), (18, 30, 27, 16, 9))[0]
    size = COMPANY_SIZES[size_index]
    budget = _budget(rng, size_index, channel) if rng.random() < 0.85 else ""
    timeline_weights = [18.0, 35.0, 25.0, 22.0]
    if channel in (PAID_SEARCH, AI_ASSISTANTS):
        timeline_weights[0] *= 1.8
    if channel in (ORGANIC_SEARCH, EMAIL):
        timeline_weights[3] *= 1.4
    timeline = rng.choices(TIMELINES, timeline_weights)[0]
    industry = rng.choice(INDUSTRIES)
    service_title = dict(SERVICES).get(service, "a data project").lower()
    message = ""
    if rng.random() < 0.88:
        message = rng.choice(_MESSAGES).format(
            industry=industry.lower(),
            service=service_title,
            timeline=timeline,
            budget=budget or "flexible",
            size=size,
            company=company,
        )
    # Custom form fields arrive as text, the way sp.js reads them off the form.
    fields: dict[str, str | int | float | bool | None] = {
        "service_interest": service if service in SERVICE_INTERESTS else "not-sure",
    }
    if rng.random() < 0.4:
        fields["how_heard"] = rng.choice(HOW_HEARD)
    return LeadSubmission(
        email=f"{local}@{domain}",
        phone=_phone(rng, country) if rng.random() < 0.58 else "",
        name=f"{first} {last}",
        company=company if rng.random() < 0.93 else "",
        company_size=size if rng.random() < 0.9 else "",
        industry=industry if rng.random() < 0.85 else "",
        country=country,
        budget=budget,
        timeline=timeline,
        message=message,
        consent=rng.random() < 0.82,
        fields=fields,
        form="contact",
        ts=ts_ms,
        url=url,
        referrer=referrer,
    )


def plan_spam_lead(rng: random.Random, *, ts_ms: int, url: str) -> LeadSubmission:
    """A form-filling bot's submission: throwaway address, no company, a link in the message."""
    handle = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))
    return LeadSubmission(
        email=f"{handle}@{rng.choice(('mailinator.com', 'guerrillamail.com', 'yopmail.com'))}",
        name=rng.choice(("SEO Expert", "Mark Rank", handle)),
        message=rng.choice(_SPAM_MESSAGES),
        form="contact",
        ts=ts_ms,
        url=url,
    )
