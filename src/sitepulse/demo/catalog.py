"""What the demo traffic is made of: the site's pages, channels, campaigns and referrers.

Plain data, shared by the traffic planner and the sample site so both tell the same story.
"""

from __future__ import annotations

from dataclasses import dataclass

COMPANY = "Northwind Consulting"
DEFAULT_HOST = "www.northwind-consulting.example"
DEFAULT_TIMEZONE = "Europe/London"


@dataclass(frozen=True)
class Page:
    """A page of the sample site; `lcp_factor` and `length` shape its vitals and scrolling."""

    path: str
    title: str
    lcp_factor: float = 1.0
    length: float = 1.0


SERVICES: tuple[tuple[str, str], ...] = (
    ("data-strategy", "Data Strategy & Analytics"),
    ("cloud-migration", "Cloud Migration"),
    ("ai-automation", "AI & Automation"),
)
POSTS: tuple[tuple[str, str], ...] = (
    ("modern-data-stack-checklist", "A practical checklist for your first data platform"),
    ("cloud-cost-traps", "Seven cloud cost traps we see in every migration"),
    ("ai-pilots-that-ship", "Why most AI pilots stall, and how to ship yours"),
)

PAGES: dict[str, Page] = {
    page.path: page
    for page in (
        Page("/", "Northwind Consulting: data, cloud and AI consulting", 1.15, 1.3),
        Page("/services", "Services | Northwind Consulting", 1.0, 1.0),
        *(
            Page(f"/services/{slug}", f"{title} | Northwind Consulting", 1.05, 1.2)
            for slug, title in SERVICES
        ),
        Page("/pricing", "Pricing | Northwind Consulting", 0.95, 0.9),
        Page("/case-studies", "Case studies | Northwind Consulting", 1.3, 1.4),
        Page("/contact", "Contact us | Northwind Consulting", 0.9, 0.8),
        Page("/blog", "Insights | Northwind Consulting", 1.0, 1.0),
        *(
            Page(f"/blog/{slug}", f"{title} | Northwind Consulting", 1.1, 1.8)
            for slug, title in POSTS
        ),
    )
}

SERVICE_PAGES = tuple(f"/services/{slug}" for slug, _ in SERVICES)
POST_PAGES = tuple(f"/blog/{slug}" for slug, _ in POSTS)
CASE_STUDY_PDF = "/static/case-study.pdf"

# Where a visitor goes next from each page: (path, weight).
TRANSITIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "/": (
        ("/services", 3),
        *((p, 1.2) for p in SERVICE_PAGES),
        ("/pricing", 2.2),
        ("/case-studies", 1.6),
        ("/blog", 0.8),
        ("/contact", 1.2),
    ),
    "/services": (
        *((p, 2.5) for p in SERVICE_PAGES),
        ("/pricing", 1.5),
        ("/contact", 0.8),
        ("/case-studies", 0.8),
    ),
    **{
        p: (
            ("/pricing", 3),
            ("/case-studies", 2.5),
            ("/contact", 2.2),
            ("/services", 1),
            *((q, 0.5) for q in SERVICE_PAGES if q != p),
        )
        for p in SERVICE_PAGES
    },
    "/pricing": (("/contact", 4.5), ("/case-studies", 2.5), ("/services", 1.5), ("/", 1)),
    "/case-studies": (
        ("/contact", 4),
        ("/pricing", 2.5),
        *((p, 0.7) for p in SERVICE_PAGES),
        ("/", 1),
    ),
    "/blog": (*((p, 2.3) for p in POST_PAGES), ("/", 1), ("/services", 0.8)),
    **{
        p: (
            *((q, 1.2) for q in SERVICE_PAGES),
            ("/blog", 1.5),
            ("/", 1.5),
            ("/contact", 1),
            *((q, 0.6) for q in POST_PAGES if q != p),
        )
        for p in POST_PAGES
    },
    "/contact": (("/case-studies", 2), ("/pricing", 2), ("/", 1)),
}

# The contact form's fields in page order: (name, input type as sp.js reports it,
# seconds a person spends on it: min, max).
FORM_FIELDS: tuple[tuple[str, str, float, float], ...] = (
    ("email", "email", 4, 12),
    ("name", "text", 2, 6),
    ("company", "text", 2, 7),
    ("phone", "tel", 3, 10),
    ("company_size", "select-one", 1, 4),
    ("industry", "select-one", 1, 5),
    ("country", "select-one", 1, 4),
    ("service_interest", "select-one", 1, 4),
    ("budget", "select-one", 2, 8),
    ("timeline", "select-one", 1, 5),
    ("how_heard", "select-one", 1, 4),
    ("message", "textarea", 15, 120),
    ("consent", "checkbox", 1, 3),
)
FORM_ID = "contact"

EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "pricing_cta": ("control", "bold"),
    "hero_copy": ("control", "outcomes", "social_proof"),
}


@dataclass(frozen=True)
class Channel:
    """How visitors from one channel behave: share, bounce, depth and conversion."""

    name: str
    weight: float
    bounce: float
    continue_p: float
    conversion: float
    landings: tuple[tuple[str, float], ...] = ()


ORGANIC_SEARCH = "Organic Search"
PAID_SEARCH = "Paid Search"
PAID_SOCIAL = "Paid Social"
ORGANIC_SOCIAL = "Organic Social"
EMAIL = "Email"
REFERRAL = "Referral"
DIRECT = "Direct"
AI_ASSISTANTS = "AI Assistants"
DISPLAY = "Display"

# Conversion here is per visit before page-level effects; the planner's multipliers
# (pricing seen, experiment variant, returning) bring the blended rate to ~3.5 %.
CHANNELS: tuple[Channel, ...] = (
    Channel(
        ORGANIC_SEARCH,
        34,
        0.50,
        0.58,
        0.024,
        (
            *((p, 14) for p in POST_PAGES),
            *((p, 10) for p in SERVICE_PAGES),
            ("/", 20),
            ("/pricing", 5),
            ("/case-studies", 5),
        ),
    ),
    Channel(
        DIRECT,
        18,
        0.42,
        0.60,
        0.032,
        (("/", 70), ("/pricing", 10), ("/contact", 8), ("/services", 12)),
    ),
    Channel(PAID_SEARCH, 14, 0.40, 0.62, 0.048),
    Channel(
        REFERRAL,
        7,
        0.36,
        0.64,
        0.046,
        (("/", 35), ("/case-studies", 25), *((p, 8) for p in SERVICE_PAGES), ("/blog", 15)),
    ),
    Channel(
        ORGANIC_SOCIAL,
        6,
        0.62,
        0.48,
        0.011,
        (*((p, 23) for p in POST_PAGES), ("/case-studies", 15), ("/", 16)),
    ),
    Channel(PAID_SOCIAL, 6, 0.66, 0.45, 0.012),
    Channel(EMAIL, 6, 0.35, 0.66, 0.050),
    Channel(
        AI_ASSISTANTS,
        5,
        0.34,
        0.63,
        0.040,
        (*((p, 15) for p in SERVICE_PAGES), ("/", 25), ("/pricing", 20), ("/case-studies", 10)),
    ),
    Channel(DISPLAY, 4, 0.76, 0.40, 0.005),
)
CHANNELS_BY_NAME = {c.name: c for c in CHANNELS}


@dataclass(frozen=True)
class Campaign:
    """A paid or email campaign: its UTM tags, landing pages, keywords and click id."""

    name: str
    channel: str
    source: str
    medium: str
    landings: tuple[str, ...]
    weight: float
    referrer: str = ""
    terms: tuple[str, ...] = ()
    contents: tuple[str, ...] = ()
    click_id: str = ""


CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign(
        "brand-search",
        PAID_SEARCH,
        "google",
        "cpc",
        ("/",),
        3,
        "https://www.google.com/",
        ("northwind consulting", "northwind data consultancy"),
        ("brand-a",),
        "gclid",
    ),
    Campaign(
        "cloud-migration-uk",
        PAID_SEARCH,
        "google",
        "cpc",
        ("/services/cloud-migration",),
        4,
        "https://www.google.com/",
        ("cloud migration consultants", "aws migration partner uk", "azure migration"),
        ("rsa-1", "rsa-2"),
        "gclid",
    ),
    Campaign(
        "data-strategy-emea",
        PAID_SEARCH,
        "google",
        "cpc",
        ("/services/data-strategy",),
        3,
        "https://www.google.com/",
        ("data strategy consulting", "analytics consultancy", "data platform partner"),
        ("rsa-1", "rsa-2"),
        "gclid",
    ),
    Campaign(
        "ai-automation-bing",
        PAID_SEARCH,
        "bing",
        "cpc",
        ("/services/ai-automation",),
        1.5,
        "https://www.bing.com/",
        ("ai automation consulting", "genai consultants"),
        ("text-a",),
        "msclkid",
    ),
    Campaign(
        "pricing-competitor",
        PAID_SEARCH,
        "google",
        "cpc",
        ("/pricing",),
        1.5,
        "https://www.google.com/",
        ("data consultancy pricing", "cloud consultant day rate"),
        ("rsa-1",),
        "gclid",
    ),
    Campaign(
        "linkedin-cfo-guide",
        PAID_SOCIAL,
        "linkedin",
        "cpc",
        ("/blog/cloud-cost-traps",),
        3,
        "https://www.linkedin.com/",
        (),
        ("single-image", "document-ad"),
        "li_fat_id",
    ),
    Campaign(
        "linkedin-abm-q4",
        PAID_SOCIAL,
        "linkedin",
        "cpc",
        ("/case-studies",),
        2,
        "https://www.linkedin.com/",
        (),
        ("carousel",),
        "li_fat_id",
    ),
    Campaign(
        "facebook-retargeting",
        PAID_SOCIAL,
        "facebook",
        "cpc",
        ("/pricing", "/"),
        2,
        "https://l.facebook.com/",
        (),
        ("video-15s", "static"),
        "fbclid",
    ),
    Campaign(
        "newsletter-monthly",
        EMAIL,
        "newsletter",
        "email",
        ("/blog/modern-data-stack-checklist", "/blog/ai-pilots-that-ship"),
        4,
    ),
    Campaign(
        "webinar-data-maturity",
        EMAIL,
        "hubspot",
        "email",
        ("/services/data-strategy",),
        2,
        "",
        (),
        ("invite", "reminder"),
    ),
    Campaign("nurture-case-study", EMAIL, "hubspot", "email", ("/case-studies",), 2),
    Campaign(
        "display-retargeting",
        DISPLAY,
        "google",
        "display",
        ("/pricing", "/"),
        3,
        "",
        (),
        ("300x250", "728x90"),
        "gclid",
    ),
    Campaign(
        "display-prospecting",
        DISPLAY,
        "google",
        "display",
        ("/services/cloud-migration",),
        1.5,
        "",
        (),
        ("300x600",),
        "gclid",
    ),
)

SEARCH_REFERRERS: tuple[tuple[str, float], ...] = (
    ("https://www.google.com/", 84),
    ("https://www.bing.com/", 9),
    ("https://duckduckgo.com/", 4),
    ("https://www.ecosia.org/", 1.5),
    ("https://search.yahoo.com/", 1.5),
)
SOCIAL_REFERRERS: tuple[tuple[str, float], ...] = (
    ("https://www.linkedin.com/", 45),
    ("https://t.co/", 25),
    ("https://lnkd.in/", 10),
    ("https://www.reddit.com/", 12),
    ("https://news.ycombinator.com/", 8),
)
REFERRAL_REFERRERS: tuple[tuple[str, float], ...] = (
    ("https://clutch.co/profile/northwind-consulting", 30),
    ("https://www.goodfirms.co/company/northwind-consulting", 10),
    ("https://blog.stratus-partners.example/2024/partner-spotlight-northwind", 20),
    ("https://www.dataweekly.example/issues/182", 15),
    ("https://www.cloudcostnotes.example/posts/what-we-learned-migrating-to-aws", 15),
    ("https://github.com/northwind-consulting-example/dbt-starter", 10),
)
AI_REFERRERS: tuple[tuple[str, float], ...] = (
    ("https://chatgpt.com/", 55),
    ("https://www.perplexity.ai/", 25),
    ("https://gemini.google.com/", 10),
    ("https://copilot.microsoft.com/", 6),
    ("https://claude.ai/", 4),
)
DISPLAY_REFERRERS: tuple[tuple[str, float], ...] = (
    ("https://www.theguardian.com/", 25),
    ("https://www.forbes.com/", 20),
    ("https://www.techradar.com/", 20),
    ("https://googleads.g.doubleclick.net/", 35),
)
OUTBOUND_LINKS: tuple[str, ...] = (
    "https://www.linkedin.com/company/northwind-consulting-example",
    "https://clutch.co/profile/northwind-consulting",
    "https://github.com/northwind-consulting-example/dbt-starter",
)
