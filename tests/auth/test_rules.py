"""The rules behind the middleware: rate limits, redirect targets, origins, form parsing."""

from __future__ import annotations

from typing import Any

import pytest

from sitepulse.auth import SignInLimiter, default_is_public
from sitepulse.auth.httputil import form_fields, safe_next, same_origin
from sitepulse.auth.ratelimit import address_key
from sitepulse.clock import ManualClock

MINUTE = 60_000

# Each case: steps of (ms since start, "fail" | "ok" | "check", address, username) and the
# Retry-After (seconds) each "check" must see.
LIMIT_CASES: list[tuple[str, list[tuple[int, str, str, str]], list[int]]] = [
    (
        "four failures leave room",
        [(i * 1000, "fail", "a", "u") for i in range(4)] + [(5000, "check", "a", "u")],
        [0],
    ),
    (
        "fifth failure blocks until the first leaves the window",
        [(i * 1000, "fail", "a", "u") for i in range(5)]
        + [(5000, "check", "a", "u"), (899_999, "check", "a", "u"), (900_000, "check", "a", "u")],
        [895, 1, 0],
    ),
    (
        "the block is per address",
        [(0, "fail", "a", f"u{i}") for i in range(5)] + [(1, "check", "b", "u0")],
        [0],
    ),
    (
        "success on another address does not lift a block",
        [(0, "fail", "a", "u") for _ in range(5)] + [(1, "ok", "b", "u"), (2, "check", "a", "v")],
        [900],
    ),
    (
        "success clears only that username's failures at that address",
        [(0, "fail", "a", "victim") for _ in range(4)]
        + [(1, "fail", "a", "me"), (2, "ok", "a", "me"), (3, "check", "a", "x")],
        [0],
    ),
    (
        "signing in to one's own account does not wipe guesses at others",
        [(0, "fail", "a", "victim") for _ in range(5)]
        + [(1, "ok", "a", "me"), (2, "check", "a", "victim")],
        [900],
    ),
    (
        "per username across addresses",
        [(i, "fail", f"10.0.0.{i}", "Alice") for i in range(20)]
        + [(30, "check", "10.9.9.9", "alice"), (30, "check", "10.9.9.9", "bob")],
        [900, 0],
    ),
    (
        "IPv6 neighbours in one /64 count together",
        [(0, "fail", f"2001:db8::{i}", f"u{i}") for i in range(5)]
        + [(1, "check", "2001:db8::ffff", "z"), (1, "check", "2001:db8:0:1::1", "z")],
        [900, 0],
    ),
]


@pytest.mark.parametrize(
    ("name", "steps", "expected"), LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES]
)
def test_sign_in_limiter(
    name: str, steps: list[tuple[int, str, str, str]], expected: list[int]
) -> None:
    clock = ManualClock(0)
    limiter = SignInLimiter(clock=clock)
    seen = []
    for at, what, address, username in steps:
        clock.now_ms = at
        if what == "fail":
            limiter.failed(address, username)
        elif what == "ok":
            limiter.succeeded(address, username)
        else:
            seen.append(limiter.retry_after(address, username))
    assert seen == expected


def test_limiter_memory_is_bounded() -> None:
    clock = ManualClock(0)
    limiter = SignInLimiter(clock=clock, max_tracked=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}", f"user{i}")
    assert limiter.tracked == 200
    # The newest are kept: the last address is still counted, the first forgotten.
    for _ in range(4):
        limiter.failed("10.0.3.231", "user999")
    assert limiter.retry_after("10.0.3.231", "x") == 900
    for _ in range(4):
        limiter.failed("10.0.0.0", "x")
    assert limiter.retry_after("10.0.0.0", "y") == 0


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("not an ip", "not an ip"),
    ],
)
def test_address_key(address: str, key: str) -> None:
    assert address_key(address) == key


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "/"),
        ("", "/"),
        ("/", "/"),
        ("/reports", "/reports"),
        ("/reports?site=a&days=7#top", "/reports?site=a&days=7#top"),
        ("/a b", "/a%20b"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        ("//evil.example", "/"),
        ("///evil.example", "/"),
        ("/\\evil.example", "/"),
        ("\\/evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("https://evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example/path", "/"),
        ("/%0d%0aSet-Cookie:x", "/%0d%0aSet-Cookie:x"),  # stays quoted: harmless
    ],
)
def test_safe_next(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def _scope(host: str, scheme: str = "http") -> dict[str, Any]:
    return {"headers": [(b"host", host.encode())], "scheme": scheme, "server": None}


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "same"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "http", True),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", "http", False),
        ("https://pulse.example", "pulse.example", "https", True),
        ("https://pulse.example:443", "pulse.example", "https", True),
        ("http://pulse.example", "pulse.example", "https", False),
        # behind a TLS proxy that does not tell us the scheme
        ("https://pulse.example", "pulse.example", "http", True),
        ("https://pulse.example.evil", "pulse.example", "https", False),
        ("https://evil.example", "pulse.example", "https", False),
        ("null", "pulse.example", "https", False),
        ("", "pulse.example", "https", False),
        ("http://[::1]:8000", "[::1]:8000", "http", True),
        ("HTTP://PULSE.EXAMPLE", "pulse.example", "http", True),
    ],
)
def test_same_origin(origin: str, host: str, scheme: str, same: bool) -> None:
    assert same_origin(origin, _scope(host, scheme)) is same


@pytest.mark.parametrize(
    ("content_type", "body", "fields"),
    [
        (
            "application/x-www-form-urlencoded",
            b"csrf_token=abc&x=1&x=2&empty=",
            {"csrf_token": "abc", "x": "1", "empty": ""},
        ),
        (
            "application/x-www-form-urlencoded; charset=utf-8",
            b"name=caf%C3%A9+bar",
            {"name": "café bar"},
        ),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nabc\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\nfile body\r\n"
            b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nline1\r\nline2\r\n'
            b"--XyZ--\r\n",
            {"csrf_token": "abc", "note": "line1\r\nline2"},
        ),
        ("multipart/form-data", b"--x\r\n\r\n", {}),
        ("application/json", b'{"csrf_token": "abc"}', {}),
    ],
)
def test_form_fields(content_type: str, body: bytes, fields: dict[str, str]) -> None:
    assert form_fields(body, content_type) == fields


@pytest.mark.parametrize(
    ("method", "path", "public"),
    [
        ("GET", "/sp.js", True),
        ("POST", "/api/v1/collect", True),
        ("POST", "/api/v1/events", True),
        ("GET", "/api/v1/events", False),
        ("POST", "/api/v1/leads", True),
        ("OPTIONS", "/api/v1/leads", True),
        ("GET", "/api/v1/leads", False),
        ("GET", "/metrics", True),
        ("GET", "/healthz", True),
        ("GET", "/readyz", True),
        ("GET", "/login", True),
        ("POST", "/login", True),
        ("POST", "/logout", False),
        ("GET", "/static/app.css", True),
        ("GET", "/site/pricing", True),
        ("GET", "/", False),
        ("GET", "/api/v1/reports/kpis", False),
        ("GET", "/openapi.json", False),
        ("GET", "/static/../reports", False),
        ("GET", "/static//reports", False),
        ("GET", "/sitemap", False),
        ("GET", "/staticx", False),
    ],
)
def test_default_public_paths(method: str, path: str, public: bool) -> None:
    assert default_is_public(method, path) is public
