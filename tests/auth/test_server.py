"""Sign-in, sessions, CSRF, roles, tokens and headers through a real server on loopback."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.routing import Route

from sitepulse.auth import audit, default_is_public
from sitepulse.auth.middleware import CONTENT_SECURITY_POLICY
from sitepulse.auth.routes import SIGN_IN_FAILED
from tests.auth.conftest import (
    DEFAULT_ADDRESS,
    PASSWORD,
    SITE_TOKEN,
    AuthServer,
    Browser,
    build_app,
    cookies_set,
    serve,
)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def _refused(response: httpx.Response, path: str) -> bool:
    if path.startswith("/api/"):
        return response.status_code == 401 and response.json()["error"] == "unauthorized"
    return response.status_code == 303 and response.headers["location"].startswith("/login")


def test_every_non_public_route_refuses_anonymous_requests(auth_server: AuthServer) -> None:
    app = build_app(auth_server.db, auth_server.limiter)
    starlette_app = app.app  # type: ignore[attr-defined]
    checked = []
    for route in starlette_app.routes:
        assert isinstance(route, Route)
        path = route.path.replace("{token_id:int}", "1")
        for method in sorted(route.methods or ()):
            if method == "HEAD" or default_is_public(method, path):
                continue
            response = auth_server.request(method, path)
            assert _refused(response, path), (method, path, response.status_code, response.text)
            checked.append((method, path))
    # The table above is what the generic walk must have covered.
    assert set(checked) >= {
        ("GET", "/"),
        ("POST", "/admin-action"),
        ("GET", "/api/v1/thing"),
        ("POST", "/api/v1/thing"),
        ("GET", "/stream"),
        ("GET", "/api/v1/events"),
        ("POST", "/logout"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/1"),
    }


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/sp.js", 200),
        ("GET", "/static/app.css", 200),
        ("GET", "/site/index", 200),
        ("POST", "/api/v1/collect", 200),
        ("OPTIONS", "/api/v1/collect", 200),
        ("POST", "/api/v1/events", 200),
        ("POST", "/api/v1/leads", 200),
        ("OPTIONS", "/api/v1/leads", 200),
        ("GET", "/login", 200),
        # dot segments never borrow a public prefix
        ("GET", "/static/../api/v1/thing", 401),
    ],
)
def test_public_routes_need_no_sign_in(
    auth_server: AuthServer, method: str, path: str, status: int
) -> None:
    response = auth_server.request(method, path)
    assert response.status_code == status, response.text


def test_anonymous_page_redirect_keeps_path_and_query(auth_server: AuthServer) -> None:
    response = auth_server.request("GET", "/stream?site=acme&days=7")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=" + quote("/stream?site=acme&days=7", "")


def test_sign_in_sets_a_hardened_session_cookie(auth_server: AuthServer) -> None:
    auth_server.add_user("alice", "admin")
    response = auth_server.post_login("alice")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = cookies_set(response)["sitepulse_session"]
    assert len(cookie["value"]) == 43
    assert "httponly" in cookie and "secure" in cookie  # Secure: 127.0.0.1 is loopback
    assert cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert cookie["max-age"] == str(7 * 24 * 3600)
    login_cookie = cookies_set(response)["sitepulse_login_csrf"]
    assert login_cookie["max-age"] == "0"
    # The database keeps only a hash of the cookie's value.
    stored = auth_server.db.query("SELECT id_hash FROM sessions")
    assert len(stored) == 1 and cookie["value"] not in stored[0][0]
    page = auth_server.request("GET", "/", cookies={"sitepulse_session": cookie["value"]})
    assert page.json()["user"] == "alice" and page.json()["role"] == "admin"


@pytest.mark.parametrize(
    ("headers", "secure"),
    [
        ({}, True),
        ({"Host": "localhost:8000"}, True),
        ({"Host": "sitepulse.example"}, False),
        ({"Host": "sitepulse.example", "X-Forwarded-Proto": "https"}, True),
    ],
)
def test_secure_flag_follows_scheme_and_host(
    auth_server: AuthServer, headers: dict[str, str], secure: bool
) -> None:
    auth_server.add_user("alice")
    response = auth_server.post_login("alice", headers=headers)
    assert response.status_code == 303, response.text
    assert ("secure" in cookies_set(response)["sitepulse_session"]) is secure


def test_wrong_password_reads_like_unknown_user(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    wrong = auth_server.post_login("alice", "not the password")
    unknown = auth_server.post_login("mallory", "not the password")
    assert wrong.status_code == unknown.status_code == 400
    assert SIGN_IN_FAILED in wrong.text

    def page(response: httpx.Response, username: str) -> str:
        text = response.text.replace(f'value="{username}"', 'value="NAME"')
        return re.sub(r'name="csrf_token" value="[^"]+"', "", text)

    assert page(wrong, "alice") == page(unknown, "mallory")
    assert "sitepulse_session" not in cookies_set(wrong)
    failed = auth_server.audit.recent(action=audit.SIGNIN_FAILED)
    assert [(e.target, e.address) for e in failed] == [
        ("mallory", DEFAULT_ADDRESS),
        ("alice", DEFAULT_ADDRESS),
    ]


def test_disabled_user_cannot_sign_in_and_loses_sessions(auth_server: AuthServer) -> None:
    auth_server.add_user("alice", "admin")
    auth_server.add_user("bob")
    browser = auth_server.sign_in("bob")
    auth_server.users.set_disabled("bob", True, actor="alice")
    assert browser.request("GET", "/").status_code == 303
    assert auth_server.post_login("bob").status_code == 400


def test_login_form_csrf_is_double_submit(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    kept, token = auth_server.login_form()
    fields = {"username": "alice", "password": PASSWORD, "csrf_token": token}
    cases = [
        ({}, fields, {}),  # no cookie
        ({"sitepulse_login_csrf": kept}, fields | {"csrf_token": "x" * 43}, {}),
        ({"sitepulse_login_csrf": kept}, fields, {"Origin": "https://evil.example"}),
    ]
    for cookies, data, headers in cases:
        response = auth_server.request(
            "POST", "/login", cookies=cookies, data=data, headers=headers
        )
        assert response.status_code == 403, (cookies, data, headers)
        assert "expired or was sent from another site" in response.text
    ok = auth_server.request("POST", "/login", cookies={"sitepulse_login_csrf": kept}, data=fields)
    assert ok.status_code == 303


def test_rate_limit_per_address_with_retry_after(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    attacker, other = "203.0.113.9", "203.0.113.10"
    for _ in range(5):
        assert auth_server.post_login("alice", "guess guess", address=attacker).status_code == 400
        auth_server.clock.advance(1000)
    # Fifth failure was at +4 s; the window of 15 min frees at +900 s from the first.
    blocked = auth_server.post_login("alice", address=attacker)
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == str(900 - 5)
    assert "Too many failed sign-ins" in blocked.text
    # Another address signs in; that does not lift the block on the first.
    assert auth_server.post_login("alice", address=other).status_code == 303
    assert auth_server.post_login("alice", address=attacker).status_code == 429
    auth_server.clock.advance(900_000 - 5000 - 1)
    assert auth_server.post_login("alice", address=attacker).headers["retry-after"] == "1"
    auth_server.clock.advance(1)
    assert auth_server.post_login("alice", address=attacker).status_code == 303
    # Refused attempts were not checked, so not logged as failures either.
    assert len(auth_server.audit.recent(action=audit.SIGNIN_FAILED)) == 5


def test_rate_limit_per_username_slows_distributed_guessing(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    auth_server.add_user("bob")
    for i in range(20):
        response = auth_server.post_login("alice", "guess guess", address=f"192.0.2.{i}")
        assert response.status_code == 400
    assert auth_server.post_login("alice", address="192.0.2.100").status_code == 429
    assert auth_server.post_login("bob", address="192.0.2.100").status_code == 303


def test_sign_out_ends_the_session(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    browser = auth_server.sign_in("alice")
    assert browser.request("POST", "/logout").status_code == 403  # CSRF-protected
    response = browser.request("POST", "/logout", data={"csrf_token": browser.csrf})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert cookies_set(response)["sitepulse_session"]["max-age"] == "0"
    assert browser.request("GET", "/").status_code == 303
    assert auth_server.db.query("SELECT count(*) FROM sessions") == [(0,)]
    assert [e.action for e in auth_server.audit.recent(2)] == [audit.SIGNOUT, audit.SIGNIN]


def test_sign_in_rotates_the_session(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    first = auth_server.sign_in("alice")
    kept, token = auth_server.login_form()
    again = auth_server.request(
        "POST",
        "/login",
        cookies={"sitepulse_login_csrf": kept, "sitepulse_session": first.session},
        data={"username": "alice", "password": PASSWORD, "csrf_token": token},
    )
    assert cookies_set(again)["sitepulse_session"]["value"] != first.session
    assert first.request("GET", "/").status_code == 303


CSRF_CASES = [
    # (description, request kwargs with {csrf} to fill in, expected status)
    ("no token", {"data": {"x": "1"}}, 403),
    ("wrong form field", {"data": {"x": "1", "csrf_token": "wrong"}}, 403),
    ("wrong header", {"headers": {"X-CSRF-Token": "wrong"}, "json": {}}, 403),
    ("json without header", {"json": {"csrf_token": "{csrf}"}}, 403),
    ("right form field", {"data": {"x": "1", "csrf_token": "{csrf}"}}, 200),
    (
        "right multipart field",
        {"files": {"f": ("a.txt", b"file")}, "data": {"csrf_token": "{csrf}"}},
        200,
    ),
    ("right header", {"headers": {"X-CSRF-Token": "{csrf}"}, "json": {"x": 1}}, 200),
    ("same origin", {"headers": {"X-CSRF-Token": "{csrf}", "Origin": "{origin}"}}, 200),
    ("cross origin", {"headers": {"X-CSRF-Token": "{csrf}", "Origin": "https://x.example"}}, 403),
    ("null origin", {"headers": {"X-CSRF-Token": "{csrf}", "Origin": "null"}}, 403),
    ("cross site", {"headers": {"X-CSRF-Token": "{csrf}", "Sec-Fetch-Site": "cross-site"}}, 403),
    ("too large", {"data": {"csrf_token": "{csrf}", "x": "y" * 1_100_000}}, 413),
]


def _fill(value: object, csrf: str, origin: str) -> object:
    if isinstance(value, str):
        return value.replace("{csrf}", csrf).replace("{origin}", origin)
    if isinstance(value, dict):
        return {k: _fill(v, csrf, origin) for k, v in value.items()}
    return value


def test_csrf_is_enforced_for_session_requests(auth_server: AuthServer) -> None:
    auth_server.add_user("alice", "admin")
    browser = auth_server.sign_in("alice")
    for name, kwargs, status in CSRF_CASES:
        filled = _fill(kwargs, browser.csrf, auth_server.base_url)
        assert isinstance(filled, dict)
        response = browser.request("POST", "/admin-action", **filled)
        assert response.status_code == status, (name, response.text)
        if status == 403:
            assert "CSRF" in response.text or "cross-" in response.text, name
    # The form body read for the check still reaches the endpoint.
    echoed = browser.request("POST", "/admin-action", data={"x": "1", "csrf_token": browser.csrf})
    assert echoed.json()["body"] == f"x=1&csrf_token={browser.csrf}"
    # A 403 on the API is JSON.
    api = browser.request("POST", "/api/v1/thing", json={})
    assert api.status_code == 403 and api.json()["field"] == "csrf_token"


def test_viewer_cannot_do_an_admins_action(auth_server: AuthServer) -> None:
    auth_server.add_user("vera", "viewer")
    viewer = auth_server.sign_in("vera")
    response = viewer.request("POST", "/admin-action", headers={"X-CSRF-Token": viewer.csrf})
    assert response.status_code == 403
    assert "admin role" in response.text
    assert viewer.request("GET", "/").status_code == 200
    # Promoted, the same session may.
    auth_server.add_user("root", "admin")
    auth_server.users.set_role("vera", "admin", actor="root")
    promoted = viewer.request("POST", "/admin-action", headers={"X-CSRF-Token": viewer.csrf})
    assert promoted.status_code == 200


def test_api_tokens_authenticate_and_can_be_revoked(auth_server: AuthServer) -> None:
    auth_server.add_user("alice", "admin")
    new = auth_server.tokens.create("alice", "ci", "admin", actor="alice")
    bearer = {"Authorization": f"Bearer {new.secret}"}
    thing = auth_server.request("GET", "/api/v1/thing", headers=bearer)
    assert thing.json() == {"user": "alice", "role": "admin", "via": "token"}
    # No CSRF for tokens: browsers do not send them by themselves.
    assert auth_server.request("POST", "/admin-action", headers=bearer).status_code == 200
    auth_server.tokens.revoke(new.info.id, actor="alice")
    revoked = auth_server.request("GET", "/api/v1/thing", headers=bearer)
    assert revoked.status_code == 401 and revoked.json()["field"] == "authorization"
    fake = {"Authorization": "Bearer spt_" + "A" * 43}
    assert auth_server.request("GET", "/api/v1/thing", headers=fake).status_code == 401


def test_site_tokens_pass_through_to_api_routes_only(auth_server: AuthServer) -> None:
    site = {"Authorization": f"Bearer {SITE_TOKEN}"}
    events = auth_server.request("GET", "/api/v1/events", headers=site)
    assert events.status_code == 200 and events.json()["by"] == "site token"
    # The route decides: an unknown site token is refused by it, a page never sees one.
    other = {"Authorization": "Bearer sk_someone_else_entirely"}
    assert auth_server.request("GET", "/api/v1/events", headers=other).status_code == 403
    assert auth_server.request("GET", "/api/v1/thing", headers=site).status_code == 401
    assert auth_server.request("GET", "/", headers=site).status_code == 303


def test_session_expires_after_idle_time(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    browser = auth_server.sign_in("alice")
    for _ in range(3):  # each visit within 12 h keeps it alive
        auth_server.clock.advance(12 * HOUR_MS - 1)
        assert browser.request("GET", "/").status_code == 200
    auth_server.clock.advance(12 * HOUR_MS)
    assert browser.request("GET", "/").status_code == 303
    assert browser.request("GET", "/api/v1/thing").status_code == 401


def test_session_expires_after_seven_days_however_busy(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    browser = auth_server.sign_in("alice")
    for _ in range(15):
        auth_server.clock.advance(11 * HOUR_MS)
        assert browser.request("GET", "/").status_code == 200
    auth_server.clock.advance(7 * DAY_MS - 15 * 11 * HOUR_MS - 1)
    assert browser.request("GET", "/").status_code == 200
    auth_server.clock.advance(1)
    assert browser.request("GET", "/").status_code == 303


def test_last_seen_is_written_at_most_once_a_minute(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    browser = auth_server.sign_in("alice")
    signed_in_at = auth_server.clock()

    def last_seen() -> int:
        return int(auth_server.db.query("SELECT last_seen_at FROM sessions")[0][0])

    auth_server.clock.advance(59_999)
    browser.request("GET", "/")
    assert last_seen() == signed_in_at
    auth_server.clock.advance(1)
    browser.request("GET", "/")
    assert last_seen() == signed_in_at + 60_000


@pytest.mark.parametrize(
    ("next_path", "location"),
    [
        ("/stream?site=acme&days=7", "/stream?site=acme&days=7"),
        ("/a path/ü", "/a%20path/%C3%BC"),
        ("", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\r\nSet-Cookie: x=1", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
    ],
)
def test_next_stays_on_this_site(auth_server: AuthServer, next_path: str, location: str) -> None:
    auth_server.add_user("alice")
    response = auth_server.post_login("alice", next_path=next_path)
    assert response.status_code == 303
    assert response.headers["location"] == location


@pytest.mark.parametrize(
    ("method", "path", "signed_in", "status", "csp"),
    [
        ("GET", "/healthz", False, 200, True),
        ("GET", "/login", False, 200, True),
        ("GET", "/static/missing.css", False, 404, True),
        ("GET", "/sp.js", False, 200, False),
        ("GET", "/site/index", False, 200, False),
        ("GET", "/", False, 303, True),
        ("GET", "/api/v1/thing", False, 401, True),
        ("GET", "/", True, 200, True),
        ("GET", "/stream", True, 200, True),
        ("GET", "/no-such-page", True, 404, True),
        ("POST", "/admin-action", True, 403, True),
    ],
)
def test_security_headers_on_every_response(
    auth_server: AuthServer, method: str, path: str, signed_in: bool, status: int, csp: bool
) -> None:
    if signed_in:
        auth_server.add_user("vera")
        response = auth_server.sign_in("vera").request(method, path)
    else:
        response = auth_server.request(method, path)
    assert response.status_code == status
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    assert headers["permissions-policy"] == "camera=(), microphone=(), geolocation=()"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers.get("content-security-policy") == (CONTENT_SECURITY_POLICY if csp else None)
    assert "strict-transport-security" not in headers  # plain http
    protected = not default_is_public(method, path)
    assert (headers.get("cache-control") == "no-store") is protected


def test_headers_over_https_and_app_headers_win(auth_server: AuthServer) -> None:
    https = auth_server.request("GET", "/healthz", headers={"X-Forwarded-Proto": "https"})
    assert https.headers["strict-transport-security"] == "max-age=31536000"
    auth_server.add_user("alice")
    own = auth_server.sign_in("alice").request("GET", "/own-headers")
    assert own.headers["x-frame-options"] == "SAMEORIGIN"
    assert own.headers.get_list("x-frame-options") == ["SAMEORIGIN"]


def test_streaming_responses_pass_through(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    response = auth_server.sign_in("alice").request("GET", "/stream")
    assert response.text == "chunk0;chunk1;chunk2;"


def test_token_api_admins_manage_all_viewers_their_own(auth_server: AuthServer) -> None:
    auth_server.add_user("root", "admin")
    auth_server.add_user("vera")
    admin, viewer = auth_server.sign_in("root"), auth_server.sign_in("vera")

    def call(browser: Browser, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return browser.request(method, path, headers={"X-CSRF-Token": browser.csrf}, **kwargs)

    denied = call(viewer, "POST", "/api/v1/tokens", json={"name": "ci", "role": "admin"})
    assert denied.status_code == 403
    for_other = call(viewer, "POST", "/api/v1/tokens", json={"name": "ci", "username": "root"})
    assert for_other.status_code == 403
    created = call(viewer, "POST", "/api/v1/tokens", json={"name": "ci"})
    assert created.status_code == 201, created.text
    secret = created.json()["token"]
    assert secret.startswith("spt_") and created.json()["prefix"] == secret[:8]
    again = call(viewer, "POST", "/api/v1/tokens", json={"name": "ci"})
    assert again.status_code == 409
    bad = call(admin, "POST", "/api/v1/tokens", json={"name": "", "role": "viewer"})
    assert bad.status_code == 400 and bad.json()["field"] == "name"
    admin_token = call(admin, "POST", "/api/v1/tokens", json={"name": "ops", "role": "admin"})
    assert admin_token.status_code == 201

    mine = call(viewer, "GET", "/api/v1/tokens").json()["tokens"]
    everyone = call(admin, "GET", "/api/v1/tokens").json()["tokens"]
    assert [t["name"] for t in mine] == ["ci"]
    assert sorted(t["username"] for t in everyone) == ["root", "vera"]
    listing = call(admin, "GET", "/api/v1/tokens").text
    assert secret not in listing and admin_token.json()["token"] not in listing

    ops_id = admin_token.json()["id"]
    assert call(viewer, "DELETE", f"/api/v1/tokens/{ops_id}").status_code == 404
    ci_id = created.json()["id"]
    revoked = call(admin, "DELETE", f"/api/v1/tokens/{ci_id}")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    bearer = {"Authorization": f"Bearer {secret}"}
    assert auth_server.request("GET", "/api/v1/thing", headers=bearer).status_code == 401
    actions = [(e.actor, e.action, e.target) for e in auth_server.audit.recent(3)]
    assert actions == [
        ("root", audit.TOKEN_REVOKE, "vera/ci"),
        ("root", audit.TOKEN_CREATE, "root/ops"),
        ("vera", audit.TOKEN_CREATE, "vera/ci"),
    ]
    null_role = call(admin, "POST", "/api/v1/tokens", json={"name": "n", "role": None})
    assert null_role.status_code == 201 and null_role.json()["role"] == "viewer"
    # Past SQLite's integers (schemathesis found it answered 500).
    huge = call(admin, "DELETE", f"/api/v1/tokens/{2**63}")
    assert huge.status_code == 404, huge.text


def test_secure_cookies_can_be_forced(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    with serve(build_app(auth_server.db, auth_server.limiter, secure_cookies=True)) as port:
        forced = AuthServer(
            port, auth_server.db, auth_server.clock, auth_server.limiter, auth_server.client
        )
        response = forced.post_login("alice", headers={"Host": "sitepulse.example"})
    assert response.status_code == 303
    assert "secure" in cookies_set(response)["sitepulse_session"]


def test_login_page_when_signed_in_and_oversized_forms(auth_server: AuthServer) -> None:
    auth_server.add_user("alice")
    browser = auth_server.sign_in("alice")
    again = browser.request("GET", "/login?next=/stream")
    assert again.status_code == 303 and again.headers["location"] == "/stream"
    huge = auth_server.request("POST", "/login", data={"username": "x" * 20_000})
    assert huge.status_code == 413
