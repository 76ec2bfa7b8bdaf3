"""The sample lead-generation site of the fictional Northwind Consulting, mounted at `/site`.

Every page loads `/sp.js`, so clicking through it feeds the same pipeline the
generated traffic does; the contact form becomes a lead through sp.js alone.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from typing import Any

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from sitepulse.demo.catalog import (
    COMPANY,
    OUTBOUND_LINKS,
    PAGES,
    POSTS,
    SERVICES,
)
from sitepulse.demo.clients import (
    COUNTRIES,
)
from sitepulse.demo.leads import BUDGETS, COMPANY_SIZES, HOW_HEARD, INDUSTRIES, TIMELINES


@dataclass(frozen=True)
class Service:
    """One service page: its pitch, what the engagement covers and what it changes."""

    slug: str
    title: str
    tagline: str
    summary: str
    includes: tuple[str, ...]
    outcome: str
    duration: str


SERVICE_DETAILS: tuple[Service, ...] = (
    Service(
        "data-strategy",
        dict(SERVICES)["data-strategy"],
        "Turn scattered spreadsheets into numbers your board trusts.",
        "We assess where your data lives today, design a warehouse and semantic layer that "
        "fit your team, and build the first dashboards with the people who will use them.",
        (
            "Data maturity assessment",
            "Warehouse on BigQuery, Snowflake or Postgres",
            "dbt models, tests and a documented semantic layer",
            "Dashboards people open daily",
        ),
        "Month-end reporting in days, not weeks.",
        "6 to 12 weeks",
    ),
    Service(
        "cloud-migration",
        dict(SERVICES)["cloud-migration"],
        "Move to AWS or Azure without the surprise bill.",
        "A landing zone defined as code, migrations planned wave by wave, and FinOps "
        "guardrails from day one, so the cloud costs what the business case said.",
        (
            "Landing zone and infrastructure as code",
            "Lift-and-improve migration waves",
            "Cost guardrails, budgets and tagging",
            "Runbooks and a calm handover",
        ),
        "A typical client cuts hosting cost by a third.",
        "8 to 20 weeks",
    ),
    Service(
        "ai-automation",
        dict(SERVICES)["ai-automation"],
        "Ship AI features that pay for themselves.",
        "We triage use cases by value and risk, build the one that matters with an "
        "evaluation harness, and leave you able to run and improve it.",
        (
            "Use-case triage workshop",
            "Document and intake automation",
            "Evaluation harness before launch",
            "MLOps your team can own",
        ),
        "From pilot to production in one quarter.",
        "4 to 12 weeks",
    ),
)
SERVICES_BY_SLUG = {s.slug: s for s in SERVICE_DETAILS}

CASE_STUDIES: tuple[dict[str, str], ...] = (
    {
        "client": "Harbourline Freight",
        "industry": "Logistics",
        "service": "data-strategy",
        "headline": "Month-end close from nine days to three",
        "body": "Forty reports moved off an on-premises SQL Server into a cloud warehouse with "
        "tested models; finance now closes the month in three days.",
        "metric": "-67%",
        "metric_label": "time to close",
    },
    {
        "client": "Meridian Health Clinics",
        "industry": "Healthcare",
        "service": "ai-automation",
        "headline": "Patient intake that reads its own paperwork",
        "body": "Referral letters are classified and summarised before a nurse opens them, "
        "with every model decision logged for audit.",
        "metric": "-62%",
        "metric_label": "manual triage steps",
    },
    {
        "client": "Copperleaf Retail",
        "industry": "Retail & e-commerce",
        "service": "cloud-migration",
        "headline": "A cloud bill that went down, not up",
        "body": "Right-sized clusters, storage lifecycles and budgets per team after a "
        "rushed migration had doubled hosting costs.",
        "metric": "-38%",
        "metric_label": "monthly AWS spend",
    },
)

PLANS: tuple[dict[str, Any], ...] = (
    {
        "name": "Discovery Sprint",
        "monthly": 7500,
        "annual": 7500,
        "unit": "fixed price",
        "blurb": "Two weeks to map your data, cloud or AI opportunity and leave with a plan.",
        "features": (
            "Stakeholder interviews",
            "Current-state assessment",
            "Prioritised roadmap",
            "Costed next steps",
        ),
    },
    {
        "name": "Delivery Team",
        "monthly": 18000,
        "annual": 16200,
        "unit": "per month",
        "featured": True,
        "blurb": "A senior engineer, an analyst and a lead who ship every two weeks.",
        "features": (
            "Fortnightly demos",
            "Infrastructure as code",
            "Tests and documentation",
            "Knowledge transfer",
        ),
    },
    {
        "name": "Advisory Retainer",
        "monthly": 3900,
        "annual": 3500,
        "unit": "per month",
        "blurb": "A principal on call for architecture reviews and hiring decisions.",
        "features": (
            "Two days a month",
            "Architecture reviews",
            "Hiring support",
            "Quarterly roadmap review",
        ),
    },
)


BUDGET_LABELS = dict(
    zip(BUDGETS, ("Under £5k", "£5k to £20k", "£20k to £50k", "£50k or more"), strict=True)
)
TIMELINE_LABELS = dict(
    zip(
        TIMELINES,
        ("As soon as possible", "In 1 to 3 months", "In 3 to 6 months", "Just exploring"),
        strict=True,
    )
)
COUNTRY_NAMES = {
    "US": "United States",
    "GB": "United Kingdom",
    "DE": "Germany",
    "FR": "France",
    "NL": "Netherlands",
    "CA": "Canada",
    "AU": "Australia",
    "IN": "India",
    "ES": "Spain",
    "SE": "Sweden",
    "IE": "Ireland",
    "PL": "Poland",
    "SG": "Singapore",
}


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sitepulse.demo", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


@functools.cache
def _asset(name: str) -> bytes:
    return (importlib.resources.files("sitepulse.demo") / "templates" / name).read_bytes()


def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


@functools.cache
def case_study_pdf() -> bytes:
    """A one-page case study as a small, valid PDF, built here so no binary file ships."""
    lines = [
        ("F2", 22, f"{COMPANY}: case study"),
        ("F2", 15, CASE_STUDIES[0]["client"] + ": " + CASE_STUDIES[0]["headline"]),
        *(
            ("F1", 11, part)
            for part in (
                "Harbourline Freight ran forty finance reports from an on-premises SQL Server.",
                "Month-end close took nine working days and nobody trusted the margin numbers.",
                "We moved the reports to a cloud warehouse with tested dbt models, a documented",
                "semantic layer and three dashboards built with the finance team.",
                "Result: month-end close in three days, one definition of margin, and a data",
                "team of two that runs it without us.",
                "",
                "This document is part of the sitepulse demo; the company is fictional.",
            )
        ),
    ]
    text, y = [], 720
    for font, size, line in lines:
        text.append(f"BT /{font} {size} Tf 72 {y} Td ({_pdf_text(line)}) Tj ET")
        y -= 34 if size > 12 else 18
    stream = "\n".join(text).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def site_routes(site_key: str) -> list[BaseRoute]:
    """The sample site's routes, to be mounted at `/site`; pages report to `site_key`."""
    env = _environment()

    def render(
        request: Request, template: str, path: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        html = env.get_template(template).render(
            site_key=site_key,
            base=base,
            path=path,
            title=PAGES[path].title,
            company=COMPANY,
            services=SERVICE_DETAILS,
            posts=POSTS,
            outbound=OUTBOUND_LINKS,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    async def home(request: Request) -> Response:
        return render(request, "home.html", "/", case_studies=CASE_STUDIES)

    async def services(request: Request) -> Response:
        return render(request, "services.html", "/services")

    async def service(request: Request) -> Response:
        found = SERVICES_BY_SLUG.get(request.path_params["slug"])
        if found is None:
            raise HTTPException(404)
        studies = [c for c in CASE_STUDIES if c["service"] == found.slug]
        return render(
            request, "service.html", f"/services/{found.slug}", service=found, case_studies=studies
        )

    async def pricing(request: Request) -> Response:
        return render(request, "pricing.html", "/pricing", plans=PLANS)

    async def case_studies(request: Request) -> Response:
        return render(request, "case_studies.html", "/case-studies", case_studies=CASE_STUDIES)

    async def contact(request: Request) -> Response:
        # Without sp.js the browser posts the form here; say plainly that nothing was sent.
        not_sent = request.method == "POST"
        return render(
            request,
            "contact.html",
            "/contact",
            not_sent=not_sent,
            sizes=COMPANY_SIZES,
            industries=INDUSTRIES,
            budgets=BUDGET_LABELS.items(),
            timelines=TIMELINE_LABELS.items(),
            how_heard=HOW_HEARD,
            countries=sorted(
                ((c.code, COUNTRY_NAMES[c.code]) for c in COUNTRIES), key=lambda pair: pair[1]
            ),
        )

    async def blog(request: Request) -> Response:
        return render(request, "blog.html", "/blog")

    async def post(request: Request) -> Response:
        slug = request.path_params["slug"]
        if slug not in dict(POSTS):
            raise HTTPException(404)
        return render(request, f"posts/{slug}.html", f"/blog/{slug}", slug=slug)

    async def css(request: Request) -> Response:
        return Response(
            _asset("site.css"),
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    async def js(request: Request) -> Response:
        return Response(
            _asset("site.js"),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    async def pdf(request: Request) -> Response:
        return Response(
            case_study_pdf(),
            media_type="application/pdf",
            headers={
                "Content-Disposition": 'inline; filename="northwind-case-study.pdf"',
            },
        )

    return [
        Route("/", home, methods=["GET"]),
        Route("/services", services, methods=["GET"]),
        Route("/services/{slug}", service, methods=["GET"]),
        Route("/pricing", pricing, methods=["GET"]),
        Route("/case-studies", case_studies, methods=["GET"]),
        Route("/contact", contact, methods=["GET", "POST"]),
        Route("/blog", blog, methods=["GET"]),
        Route("/blog/{slug}", post, methods=["GET"]),
        Route("/static/site.css", css, methods=["GET"]),
        Route("/static/site.js", js, methods=["GET"]),
        Route("/static/case-study.pdf", pdf, methods=["GET"]),
    ]
