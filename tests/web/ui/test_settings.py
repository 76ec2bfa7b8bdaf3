"""The Settings pages against the real app: tokens, users and the audit log, through the real
auth middleware (sessions, CSRF), uvicorn on loopback and the auth database.

Each test makes its own users and tokens (unique names), so the tests do not depend on
their order even though they share one server.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sitepulse.auth import SESSION_COOKIE, AuditEntry, AuditLog, TokenInfo, Tokens
from sitepulse.clock import ManualClock
from sitepulse.web.ui.settings import AUDIT_PAGE_SIZE
from tests.web.ui.ui_server import UiServer, ui_settings

NOW = 1_772_000_000_000  # 2026-02-25 06:13:20 UTC
PASSWORD = "correct horse battery staple"  # the harness's users' password
ADDRESS = "198.51.100.7"  # loopback is a trusted proxy, so X-Forwarded-For is believed
FORWARDED = {"X-Forwarded-For": ADDRESS}
SECRET = re.compile(r"spt_[A-Za-z0-9_-]{43}")
XSS = "<img src=x onerror=alert(1)>"


@dataclass
class Live:
    ui: UiServer

    def client(self, role: str | None) -> httpx.Client:
        client = self.ui.client(role)
        client.headers.update(FORWARDED)
        return client

    def csrf(self, role: str) -> str:
        return self.ui.csrf[role]

    def audit(self, action: str | None = None) -> list[AuditEntry]:
        return AuditLog(self.ui.runtime.auth).recent(1000, action=action)

    def tokens(self, username: str) -> list[TokenInfo]:
        return Tokens(self.ui.runtime.auth).all(username)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder: Path = tmp_path_factory.mktemp("settings-live")
    # create_app serves the settings pages itself
    ui = UiServer(ui_settings(folder), lambda runtime: [], clock=ManualClock(NOW)).start()
    yield Live(ui)
    ui.stop()


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    found = {}
    for line in response.headers.get_list("set-cookie"):
        name, _, value = line.split(";", 1)[0].strip().partition("=")
        found[name] = value
    return found


def _sign_in(live: Live, username: str, password: str) -> httpx.Response:
    """POST /login as a browser does: the form's CSRF token and its double-submit cookie."""
    with live.client(None) as c:
        form = c.get("/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert match is not None, form.text
        # The cookie is Secure (loopback), which httpx would not send over http: send it.
        kept = _set_cookies(form)["sitepulse_login_csrf"]
        fields = {"username": username, "password": password, "csrf_token": match.group(1)}
        cookie = {"Cookie": f"sitepulse_login_csrf={kept}"}
        return c.post("/login", data=fields, headers=cookie)


def _session_client(live: Live, response: httpx.Response) -> httpx.Client:
    assert response.status_code == 303, response.text
    session = _set_cookies(response)[SESSION_COOKIE]
    return httpx.Client(base_url=live.ui.base_url, cookies={SESSION_COOKIE: session})


def _add_user(live: Live, username: str, role: str = "viewer") -> None:
    with live.client("admin") as c:
        form = {"username": username, "role": role, "password": PASSWORD,
                "password_again": PASSWORD, "csrf_token": live.csrf("admin")}  # fmt: skip
        added = c.post("/settings/users", data=form)
    assert added.status_code == 303, added.text


def test_a_token_is_shown_once_works_as_bearer_and_stops_when_revoked(live: Live) -> None:
    with live.client("viewer") as c:
        created = c.post(
            "/settings/tokens",
            data={"name": "weekly report", "role": "viewer", "csrf_token": live.csrf("viewer")},
        )
        assert created.status_code == 201, created.text
        assert "it will not be shown again" in created.text
        (secret,) = SECRET.findall(created.text)  # on the page once, and never again
        assert 'Authorization: Bearer spt_…" http://127.0.0.1' in created.text
        assert "/api/v1/kpis" in created.text
        assert created.headers["cache-control"] == "no-store"

        (info,) = [t for t in live.tokens("viewer-user") if t.name == "weekly report"]
        assert info.prefix == secret[:8] and info.role == "viewer"
        listing = c.get("/settings/tokens").text
        assert secret not in listing and f"{info.prefix}…" in listing
        assert "weekly report" in listing

        bearer = {"Authorization": f"Bearer {secret}"}
        with live.client(None) as api:
            assert api.get("/api/v1/kpis", headers=bearer).status_code == 200
        (used,) = [t for t in live.tokens("viewer-user") if t.id == info.id]
        assert used.last_used_at == NOW
        assert "2026-02-25 06:13:20 UTC" in c.get("/settings/tokens").text

        confirm = c.get(f"/settings/tokens/{info.id}/revoke")
        assert confirm.status_code == 200
        assert "Revoke the token “weekly report”?" in confirm.text
        revoked = c.post(
            f"/settings/tokens/{info.id}/revoke", data={"csrf_token": live.csrf("viewer")}
        )
        assert revoked.status_code == 303
        assert revoked.headers["location"] == f"/settings/tokens?revoked={info.id}"
        after = c.get(revoked.headers["location"]).text
        assert "Revoked the token “weekly report” of viewer-user" in after
        assert "already revoked" in c.get(f"/settings/tokens/{info.id}/revoke").text

        with live.client(None) as api:
            assert api.get("/api/v1/kpis", headers=bearer).status_code == 401

    entries = {(e.action, e.target): e for e in live.audit() if e.target.endswith("/weekly report")}
    create = entries[("token.create", "viewer-user/weekly report")]
    revoke = entries[("token.revoke", "viewer-user/weekly report")]
    assert (create.actor, create.address, create.detail) == (
        "viewer-user",
        ADDRESS,
        {"id": info.id, "role": "viewer"},
    )
    assert (revoke.actor, revoke.address, revoke.detail) == (
        "viewer-user",
        ADDRESS,
        {"id": info.id},
    )


@pytest.mark.parametrize(
    ("role", "method", "path", "form", "status"),
    [
        ("viewer", "GET", "/settings/users", {}, 403),
        ("viewer", "GET", "/settings/audit", {}, 403),
        ("viewer", "POST", "/settings/users", {"username": "eve", "role": "admin"}, 403),
        ("viewer", "POST", "/settings/users/viewer-user/role", {"role": "admin"}, 403),
        ("viewer", "POST", "/settings/users/admin-user/disable", {}, 403),
        ("viewer", "POST", "/settings/tokens", {"name": "escalate", "role": "admin"}, 403),
        ("viewer", "POST", "/settings/tokens", {"name": "borrow", "username": "admin-user"}, 403),
        ("viewer", "GET", "/settings/tokens", {}, 200),
        ("admin", "GET", "/settings/users", {}, 200),
        ("admin", "GET", "/settings/audit", {}, 200),
        ("admin", "GET", "/settings", {}, 303),
        (None, "GET", "/settings/tokens", {}, 303),
    ],
)
def test_who_may_do_what(
    live: Live, role: str | None, method: str, path: str, form: dict[str, str], status: int
) -> None:
    before = {t.id for t in live.tokens("viewer-user") + live.tokens("admin-user")}
    with live.client(role) as c:
        data = form | {"csrf_token": live.csrf(role)} if role and method == "POST" else None
        response = c.request(method, path, data=data)
    assert response.status_code == status, response.text
    after = {t.id for t in live.tokens("viewer-user") + live.tokens("admin-user")}
    assert after == before
    if status == 403 and path == "/settings/tokens":
        assert "only an admin can" in html.unescape(response.text)


def test_the_sub_nav_shows_users_and_audit_to_admins_only(live: Live) -> None:
    with live.client("viewer") as c:
        viewer_page = c.get("/settings/tokens").text
    with live.client("admin") as c:
        admin_page = c.get("/settings/tokens").text
    for link in ('href="/settings/users"', 'href="/settings/audit"'):
        assert link not in viewer_page and link in admin_page
    assert '<option value="admin"' not in viewer_page and '<option value="admin"' in admin_page


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/settings/tokens", {"name": "no-csrf"}),
        ("/settings/users", {"username": "no-csrf", "password": PASSWORD}),
        ("/settings/users/viewer-user/disable", {}),
    ],
)
@pytest.mark.parametrize("csrf", [None, "wrong"])
def test_posts_without_the_csrf_token_are_refused(
    live: Live, path: str, form: dict[str, str], csrf: str | None
) -> None:
    data = form | {"password_again": PASSWORD} if "password" in form else dict(form)
    if csrf is not None:
        data["csrf_token"] = csrf
    entries = len(live.audit())
    with live.client("admin") as c:
        response = c.post(path, data=data)
    assert response.status_code == 403
    assert len(live.audit()) == entries


def test_admin_adds_a_user_who_can_sign_in(live: Live) -> None:
    with live.client("admin") as c:
        added = c.post(
            "/settings/users",
            data={"username": "carol", "role": "viewer", "password": "a new long password",
                  "password_again": "a new long password", "csrf_token": live.csrf("admin")},
        )  # fmt: skip
        assert added.status_code == 303
        listing = c.get(added.headers["location"]).text
    assert "Added the user carol." in listing
    with _session_client(live, _sign_in(live, "carol", "a new long password")) as carol:
        page = carol.get("/settings/tokens")
    assert page.status_code == 200 and "carol" in page.text
    (entry,) = [e for e in live.audit("user.add") if e.target == "carol"]
    assert (entry.actor, entry.address, entry.detail) == ("admin-user", ADDRESS, {"role": "viewer"})


@pytest.mark.parametrize(
    ("form", "status", "field", "message"),
    [
        ({"username": "admin-user"}, 409, "username", "already exists"),
        ({"username": "ADMIN-USER"}, 409, "username", "already exists"),
        ({"username": "bad name!"}, 400, "username", "must be 1-64 of letters"),
        ({"username": "dave", "password": "short"}, 400, "password", "at least 10 characters"),
        ({"username": "dave", "password_again": "something else"}, 400, "password_again",
         "does not match"),
        ({"username": "dave", "role": "owner"}, 400, "role", "must be one of viewer, admin"),
    ],
)  # fmt: skip
def test_add_user_errors_come_back_by_the_field(
    live: Live, form: dict[str, str], status: int, field: str, message: str
) -> None:
    data = {"role": "viewer", "password": PASSWORD, "csrf_token": live.csrf("admin")} | form
    data.setdefault("password_again", data["password"])
    with live.client("admin") as c:
        response = c.post("/settings/users", data=data)
    assert response.status_code == status
    text = html.unescape(response.text)
    error = re.search(rf'<p class="error" id="err-{field}">([^<]*)</p>', text)
    assert error is not None and message in error.group(1)
    assert f'value="{form["username"]}"' in text  # the form keeps what was typed
    assert data["password"] not in text  # but never a password
    assert "dave" not in {u.target for u in live.audit("user.add")}


def test_role_disable_and_password_changes(live: Live) -> None:
    _add_user(live, "erin")
    token = live.csrf("admin")
    with live.client("admin") as c:
        # The harness's admin is the only one: it can be neither demoted nor disabled.
        for action, form in (("role", {"role": "viewer"}), ("disable", {})):
            refused = c.post(
                f"/settings/users/admin-user/{action}", data=form | {"csrf_token": token}
            )
            assert refused.status_code == 409
            assert "it is the last enabled admin" in html.unescape(refused.text)
        mismatch = c.post(
            "/settings/users/erin/password",
            data={"password": "another long one", "password_again": "x" * 12, "csrf_token": token},
        )
        assert mismatch.status_code == 400
        assert "does not match the new password" in mismatch.text
        assert re.search(r"<details open>\s*<summary>Reset password", mismatch.text)
        missing = c.post("/settings/users/nobody/disable", data={"csrf_token": token})
        assert missing.status_code == 404

        erin = _session_client(live, _sign_in(live, "erin", PASSWORD))
        assert erin.get("/settings/tokens").status_code == 200
        steps = [
            ("role", {"role": "admin"}, "Changed the role of erin"),
            ("disable", {}, "Disabled erin"),
            ("enable", {}, "Enabled erin."),
            ("password", {"password": "erin's new password",
                          "password_again": "erin's new password"}, "Set a new password for erin"),
        ]  # fmt: skip
        for action, form, notice in steps:
            done = c.post(f"/settings/users/erin/{action}", data=form | {"csrf_token": token})
            assert done.status_code == 303, done.text
            assert notice in html.unescape(c.get(done.headers["location"]).text)
        # Disabling ended erin's session; the new password works, the old one does not.
        assert erin.get("/settings/tokens").status_code == 303
        erin.close()
        assert _sign_in(live, "erin", PASSWORD).status_code == 400
        assert _sign_in(live, "erin", "erin's new password").status_code == 303

    recorded = [(e.action, e.detail) for e in reversed(live.audit()) if e.target == "erin"]
    changes = [(action, detail) for action, detail in recorded if action.startswith("user.")]
    assert changes == [
        ("user.add", {"role": "viewer"}),
        ("user.role", {"from": "viewer", "to": "admin"}),
        ("user.disable", {}),
        ("user.enable", {}),
        ("user.passwd", {"sessions_ended": 0}),
    ]


def test_admin_creates_tokens_for_others_within_their_role(live: Live) -> None:
    _add_user(live, "frank")
    token = live.csrf("admin")
    with live.client("admin") as c:
        too_high = c.post(
            "/settings/tokens",
            data={"name": "ci", "role": "admin", "username": "frank", "csrf_token": token},
        )
        assert too_high.status_code == 400
        error = re.search(r'<p class="error" id="err-role">([^<]*)</p>', too_high.text)
        assert error is not None and "cannot exceed the owner&#39;s role" in error.group(1)
        made = c.post(
            "/settings/tokens",
            data={"name": "ci", "role": "viewer", "username": "frank", "csrf_token": token},
        )
        assert made.status_code == 201
        again = c.post(
            "/settings/tokens",
            data={"name": "ci", "role": "viewer", "username": "frank", "csrf_token": token},
        )
        assert again.status_code == 409 and 'id="err-name"' in again.text
        listing = c.get("/settings/tokens").text
    (made_token,) = live.tokens("frank")
    assert made_token.name == "ci" and made_token.role == "viewer"
    assert re.search(r'<td data-label="Owner">frank</td>', listing)
    # A viewer sees only their own tokens, and others' look absent.
    with live.client("viewer") as v:
        assert "frank" not in v.get("/settings/tokens").text
        assert v.get(f"/settings/tokens/{made_token.id}/revoke").status_code == 404
        refused = v.post(
            f"/settings/tokens/{made_token.id}/revoke", data={"csrf_token": live.csrf("viewer")}
        )
        assert refused.status_code == 404
    assert live.tokens("frank")[0].active


def test_audit_page_lists_filters_and_pages(live: Live) -> None:
    _add_user(live, "grace")
    with live.client("admin") as c:
        everything = c.get("/settings/audit").text
        assert "<code>user.add</code>" in everything
        assert re.search(r'<td data-label="Target" class="cell-text">grace</td>', everything)
        assert '<option value="test.bulk"' not in everything
    log = AuditLog(live.ui.runtime.auth)
    bulk = AUDIT_PAGE_SIZE + 7
    for i in range(bulk):
        log.record("script", "test.bulk", f"item-{i}", {"i": i})
    with live.client("admin") as c:
        # Actions found in the log join the filter's choices.
        assert '<option value="test.bulk"' in c.get("/settings/audit").text

        only_adds = c.get("/settings/audit", params={"action": "user.add"}).text
        actions = set(re.findall(r'<td data-label="Action"><code>([^<]+)</code>', only_adds))
        assert actions == {"user.add"}

        first = c.get("/settings/audit", params={"action": "test.bulk"}).text
        targets = re.findall(r'class="cell-text">(item-\d+)</td>', first)
        assert targets == [f"item-{i}" for i in range(bulk - 1, bulk - 1 - AUDIT_PAGE_SIZE, -1)]
        assert '{"i":56}' in html.unescape(first)
        older = re.search(r'<a href="([^"]+)" rel="next">', first)
        assert older is not None and 'rel="prev"' not in first
        second = c.get(html.unescape(older.group(1))).text
        rest = re.findall(r'class="cell-text">(item-\d+)</td>', second)
        assert rest == [f"item-{i}" for i in range(bulk - 1 - AUDIT_PAGE_SIZE, -1, -1)]
        assert 'rel="prev"' in second and 'rel="next"' not in second

        for params in ({"action": "no.such"}, {"offset": "-1"}, {"offset": "ten"}):
            assert c.get("/settings/audit", params=params).status_code == 400


def test_what_visitors_typed_is_escaped(live: Live) -> None:
    with live.client("viewer") as c:
        response = c.post("/settings/tokens", data={"name": XSS, "csrf_token": live.csrf("viewer")})
    assert response.status_code == 400
    assert XSS not in response.text and "<img" not in response.text
    assert f'value="{html.escape(XSS)}"' in response.text  # kept, escaped, in the field
    assert 'id="err-name"' in response.text

    # A failed sign-in records the username as typed; the audit page must not run it.
    assert _sign_in(live, XSS, "wrong password").status_code == 400
    AuditLog(live.ui.runtime.auth).record("script", "test.escape", "x", {"note": XSS})
    with live.client("admin") as c:
        page = c.get("/settings/audit").text
    assert "<img" not in page
    assert html.escape(XSS) in page
    assert "{&#34;note&#34;:&#34;&lt;img src=x onerror=alert(1)&gt;&#34;}" in page
