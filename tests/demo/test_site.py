"""The sample site: every page renders, reports to sitepulse and links within the mount."""

from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from sitepulse.demo.catalog import FORM_FIELDS, OUTBOUND_LINKS, PAGES
from sitepulse.demo.site import case_study_pdf, site_routes

SP_TAG = '<script defer src="/sp.js" data-site="pk_test"></script>'


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(Starlette(routes=[Mount("/site", routes=site_routes("pk_test"))]))


# The generator's page catalog and the site agree, so generated URLs are real pages.
@pytest.mark.parametrize("path", sorted(PAGES))
def test_every_page_renders_with_the_collector(client: TestClient, path: str) -> None:
    response = client.get("/site" + path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert SP_TAG in html
    assert f"<title>{PAGES[path].title.replace('&', '&amp;')}</title>" in html
    # Internal links stay inside the mount; nothing loads from a CDN.
    for href in re.findall(r'(?:href|src)="(/[^"]*)"', html):
        assert href.startswith("/site/") or href == "/sp.js", href
    assert "fonts.googleapis" not in html and "cdn." not in html


def test_contact_form_is_a_lead_form_with_every_field(client: TestClient) -> None:
    html = client.get("/site/contact").text
    form = re.search(r"<form [^>]*>", html)
    assert form is not None
    tag = form.group(0)
    assert "data-sp-lead" in tag and 'data-sp-success="#thanks"' in tag and 'id="contact"' in tag
    assert re.search(r'<div id="thanks"[^>]*hidden', html)
    for name, kind, _, _ in FORM_FIELDS:
        assert f'name="{name}"' in html, name
        if kind == "select-one":
            assert f'<select id="{name}" name="{name}">' in html
    assert re.search(r'<input id="email" name="email" type="email"[^>]*required', html)
    assert 'type="checkbox" name="consent"' in html
    for value in ("1-10", "1000+", "&lt;5k", "50k+", "asap", "exploring"):
        assert f'value="{value}"' in html, value


def test_posting_the_form_without_sp_js_says_nothing_was_sent(client: TestClient) -> None:
    response = client.post("/site/contact", data={"email": "a@b.example"})
    assert response.status_code == 200
    assert "nothing was recorded" in response.text


def test_pricing_runs_the_pricing_cta_experiment(client: TestClient) -> None:
    html = client.get("/site/pricing").text
    assert 'data-experiment="pricing_cta"' in html
    assert 'data-variant="control"' in html and 'data-variant="bold"' in html
    script = client.get("/site/static/site.js")
    assert script.status_code == 200
    assert "Math.random()" in script.text and "'exposure'" in script.text


def test_home_runs_the_hero_copy_experiment(client: TestClient) -> None:
    html = client.get("/site/").text
    variants = re.findall(r'data-variant="([a-z_]+)"', html)
    assert variants == ["control", "outcomes", "social_proof"]


def test_case_studies_link_the_pdf_and_it_is_a_valid_pdf(client: TestClient) -> None:
    assert 'href="/site/static/case-study.pdf"' in client.get("/site/case-studies").text
    response = client.get("/site/static/case-study.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    body = response.content
    assert body == case_study_pdf()
    assert body.startswith(b"%PDF-1.4") and body.rstrip().endswith(b"%%EOF")
    # The cross-reference table must point at each object, or readers repair or refuse it.
    startxref = int(body.rsplit(b"startxref", 1)[1].split()[0])
    assert body[startxref:].startswith(b"xref")
    entries = re.findall(rb"(\d{10}) 00000 n ", body[startxref:])
    assert len(entries) == 6
    for number, offset in enumerate(entries, 1):
        assert body[int(offset) :].startswith(b"%d 0 obj" % number)


def test_outbound_links_and_stylesheet(client: TestClient) -> None:
    html = client.get("/site/").text
    assert any(link in html for link in OUTBOUND_LINKS)
    css = client.get("/site/static/site.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "@import" not in css.text and "url(" not in css.text


def test_unknown_pages_are_404(client: TestClient) -> None:
    assert client.get("/site/services/astrology").status_code == 404
    assert client.get("/site/blog/nope").status_code == 404


def test_templates_escape_what_they_render() -> None:
    app = Starlette(routes=[Mount("/site", routes=site_routes('"><script>x</script>'))])
    html = TestClient(app).get("/site/").text
    assert "<script>x</script>" not in html
    assert 'data-site="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in html
