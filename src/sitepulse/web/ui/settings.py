"""The Settings pages: API tokens (everyone's own; admins see all), users and the audit log
(admins only).

Every change goes through the auth package (`create_token`, `revoke_token`, `Users`), which
records it in the audit log in the same transaction, with the principal as actor and the
client's address (X-Forwarded-For believed only from trusted proxies, as at sign-in).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sitepulse.auth import (
    MIN_PASSWORD_LENGTH,
    ROLES,
    AuditEntry,
    AuditLog,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Principal,
    Role,
    TokenInfo,
    Tokens,
    Users,
    audit,
    create_token,
    revoke_token,
)
from sitepulse.auth.httputil import form_fields
from sitepulse.auth.passwords import check_password
from sitepulse.auth.routes import ClientAddressOf
from sitepulse.auth.token_api import visible_tokens
from sitepulse.auth.users import check_role, check_username
from sitepulse.clock import iso_ms
from sitepulse.runtime import Runtime
from sitepulse.web.http import BodyTooLarge, ClientAddress, read_body
from sitepulse.web.ui.editing import denied, see_other
from sitepulse.web.ui.render import principal_of, render, unauthorized

AUDIT_PAGE_SIZE: Final = 50
# The biggest form here is a password twice (at most 1024 characters each).
MAX_FORM_BYTES: Final = 16_384
# Offered by the audit filter even before they happen; actions found in the log are added.
KNOWN_ACTIONS: Final = (
    audit.USER_ADD,
    audit.USER_REMOVE,
    audit.USER_PASSWD,
    audit.USER_ROLE,
    audit.USER_DISABLE,
    audit.USER_ENABLE,
    audit.TOKEN_CREATE,
    audit.TOKEN_REVOKE,
    audit.SIGNIN,
    audit.SIGNIN_FAILED,
    audit.SIGNOUT,
    "funnel.save",
    "funnel.delete",
    "experiment.save",
    "experiment.delete",
)
# What the users page says after a change (`?done=<key>&user=<name>`).
USER_NOTICES: Final[Mapping[str, str]] = {
    "add": "Added the user {user}. They can sign in now.",
    "role": "Changed the role of {user}; it applies to their sessions and tokens at once.",
    "disable": "Disabled {user}: their sessions ended and their API tokens stop working.",
    "enable": "Enabled {user}.",
    "password": "Set a new password for {user}; their sessions were ended.",
}

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Tab:
    """One entry of the settings sub-nav."""

    key: str
    href: str
    label: str


def tabs(principal: Principal) -> tuple[Tab, ...]:
    """Tokens for everyone; Users and Audit for admins."""
    mine = (Tab("tokens", "/settings/tokens", "API tokens"),)
    if not principal.is_admin:
        return mine
    return (
        *mine,
        Tab("users", "/settings/users", "Users"),
        Tab("audit", "/settings/audit", "Audit log"),
    )


def grantable(principal: Principal) -> tuple[Role, ...]:
    """The token roles a principal may hand out: up to their own."""
    return ROLES[: ROLES.index(principal.role) + 1]


def when(ms: int | None) -> str:
    """Epoch ms as UTC to the second ("2026-01-05 14:30:12 UTC"); None as "never"."""
    if ms is None:
        return "never"
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def compact_json(detail: Mapping[str, Any]) -> str:
    """An audit entry's detail on one line ("" when empty); the template escapes it."""
    if not detail:
        return ""
    return json.dumps(
        detail, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str
    )


@dataclass(frozen=True, slots=True)
class TokenForm:
    """The create-token form as typed, so a form with errors comes back filled in."""

    name: str = ""
    role: str = "viewer"
    username: str = ""  # the owner; admins only, empty means oneself

    @classmethod
    def posted(cls, form: Mapping[str, str]) -> TokenForm:
        return cls(
            name=form.get("name", "").strip(),
            role=form.get("role", "viewer"),
            username=form.get("username", "").strip(),
        )


@dataclass(frozen=True, slots=True)
class UserForm:
    """The add-user form as typed (passwords are never sent back)."""

    username: str = ""
    role: str = "viewer"


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A change to one listed user that failed: which user, which form, why."""

    username: str
    action: str  # "role", "disable", "enable" or "password"
    message: str


@dataclass(frozen=True, slots=True)
class UsersPage:
    """What the users template shows besides the list."""

    form: UserForm = UserForm()
    problems: Mapping[str, str] = field(default_factory=dict)  # add-form field → message
    row: RowProblem | None = None
    notice: str = ""


def settings_routes(
    runtime: Runtime, *, client_address: ClientAddressOf | None = None
) -> list[BaseRoute]:
    """GET /settings (→ tokens); /settings/tokens, /settings/users, /settings/audit."""
    tokens = Tokens(runtime.auth)
    users = Users(runtime.auth)
    log = AuditLog(runtime.auth)
    address_of = client_address or ClientAddress(runtime.settings.server.trusted_proxies)

    def page(
        request: Request,
        principal: Principal,
        template: str,
        context: Mapping[str, Any],
        status: int = 200,
    ) -> HTMLResponse:
        common = {"nav_active": "settings", "tabs": tabs(principal), "when": when, "iso": iso_ms}
        return render(request, template, {**common, **context}, status)

    async def index(request: Request) -> Response:
        return RedirectResponse("/settings/tokens", 303)

    async def tokens_view(
        request: Request,
        principal: Principal,
        form: TokenForm,
        problems: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        listed = await run_in_threadpool(visible_tokens, tokens, principal)
        owners: list[str] = []
        if principal.is_admin:
            everyone = await run_in_threadpool(users.all)
            owners = [u.username for u in everyone if not u.disabled]
        context = {
            "settings_active": "tokens",
            "tokens": listed,
            "form": form,
            "problems": problems or {},
            "roles": grantable(principal),
            "owners": owners,
            "notice": _revoked_notice(request, listed),
        }
        return page(request, principal, "settings_tokens.html", context, status)

    async def tokens_page(request: Request) -> Response:
        principal = principal_of(request)
        if principal is None:
            return unauthorized()
        return await tokens_view(request, principal, TokenForm(username=principal.username))

    async def create(request: Request) -> Response:
        principal = principal_of(request)
        if principal is None:
            return unauthorized()
        posted = await _form(request, principal)
        if isinstance(posted, Response):
            return posted
        form = TokenForm.posted(posted)
        owner = form.username or principal.username
        try:
            new = await run_in_threadpool(
                lambda: create_token(
                    tokens,
                    principal,
                    form.name,
                    form.role,
                    owner,
                    address=address_of(request),
                )
            )
        except Forbidden as exc:
            others = owner.lower() != principal.username.lower()
            problem = {"username" if others else "role": str(exc)}
            return await tokens_view(request, principal, form, problem, 403)
        except InvalidInput as exc:
            return await tokens_view(request, principal, form, {exc.field: exc.message}, 400)
        except NotFound as exc:
            return await tokens_view(request, principal, form, {"username": str(exc)}, 400)
        except Conflict as exc:
            found = await run_in_threadpool(users.get, owner)
            where = "username" if found is not None and found.disabled else "name"
            return await tokens_view(request, principal, form, {where: str(exc)}, 409)
        context = {
            "settings_active": "tokens",
            "token": new.info,
            "secret": new.secret,
            "example_url": str(request.base_url) + "api/v1/kpis",
        }
        return page(request, principal, "settings_token_created.html", context, 201)

    def revoke_page(
        request: Request, principal: Principal, token_id: int, info: TokenInfo | None
    ) -> Response:
        context = {"settings_active": "tokens", "token": info, "token_id": token_id}
        return page(
            request, principal, "settings_token_revoke.html", context, 404 if info is None else 200
        )

    async def confirm_revoke(request: Request) -> Response:
        principal = principal_of(request)
        if principal is None:
            return unauthorized()
        token_id: int = request.path_params["token_id"]
        info = await run_in_threadpool(tokens.get, token_id)
        mine = info is not None and info.username.lower() == principal.username.lower()
        # Others' tokens look absent to viewers, as in revoke_token.
        return revoke_page(
            request, principal, token_id, info if principal.is_admin or mine else None
        )

    async def revoke(request: Request) -> Response:
        principal = principal_of(request)
        if principal is None:
            return unauthorized()
        posted = await _form(request, principal)
        if isinstance(posted, Response):
            return posted
        token_id: int = request.path_params["token_id"]
        try:
            info = await run_in_threadpool(
                lambda: revoke_token(tokens, principal, token_id, address=address_of(request))
            )
        except NotFound:
            return revoke_page(request, principal, token_id, None)
        return see_other(f"/settings/tokens?revoked={info.id}")

    async def users_view(
        request: Request, principal: Principal, shown: UsersPage, status: int = 200
    ) -> Response:
        listed = await run_in_threadpool(users.all)
        context = {
            "settings_active": "users",
            "users": listed,
            "roles": ROLES,
            "page": shown,
            "min_password": MIN_PASSWORD_LENGTH,
            "user_path": user_path,
        }
        return page(request, principal, "settings_users.html", context, status)

    def admin_only(request: Request, what: str) -> Principal | Response:
        principal = principal_of(request)
        if principal is None:
            return unauthorized()
        if not principal.is_admin:
            return denied(request, None, f"Only admins can {what}.")
        return principal

    async def users_page(request: Request) -> Response:
        principal = admin_only(request, "manage users")
        if isinstance(principal, Response):
            return principal
        done = request.query_params.get("done", "")
        user = request.query_params.get("user", "")
        notice = ""
        if done in USER_NOTICES and user:
            notice = USER_NOTICES[done].format(user=user)
        return await users_view(request, principal, UsersPage(notice=notice))

    async def add_user(request: Request) -> Response:
        principal = admin_only(request, "add users")
        if isinstance(principal, Response):
            return principal
        posted = await _form(request, principal)
        if isinstance(posted, Response):
            return posted
        form = UserForm(posted.get("username", "").strip(), posted.get("role", "viewer"))
        password = posted.get("password", "")
        problems = _new_user_problems(form, password, posted.get("password_again", ""))
        status = 400
        if not problems:
            try:
                await run_in_threadpool(
                    lambda: users.add(
                        form.username,
                        password,
                        form.role,
                        actor=principal.actor,
                        address=address_of(request),
                    )
                )
            except InvalidInput as exc:
                problems[exc.field] = exc.message
            except Conflict as exc:
                problems["username"] = str(exc)
                status = 409
        if problems:
            return await users_view(request, principal, UsersPage(form, problems), status)
        return see_other("/settings/users?" + urlencode({"done": "add", "user": form.username}))

    def user_change(
        action: str, change: Callable[[str, Mapping[str, str], str, str], None]
    ) -> Endpoint:
        """A POST endpoint that applies `change(username, form, actor, address)` to one user."""

        async def endpoint(request: Request) -> Response:
            principal = admin_only(request, "change users")
            if isinstance(principal, Response):
                return principal
            posted = await _form(request, principal)
            if isinstance(posted, Response):
                return posted
            username: str = request.path_params["username"]
            address = address_of(request)
            try:
                await run_in_threadpool(change, username, posted, principal.actor, address)
            except InvalidInput as exc:
                failed = (exc.message, 400)
            except Conflict as exc:  # the last enabled admin
                failed = (str(exc), 409)
            except NotFound as exc:
                failed = (str(exc), 404)
            else:
                query = urlencode({"done": action, "user": username})
                return see_other(f"/settings/users?{query}")
            row = RowProblem(username, action, failed[0])
            return await users_view(request, principal, UsersPage(row=row), failed[1])

        return endpoint

    def set_role(username: str, form: Mapping[str, str], actor: str, address: str) -> None:
        users.set_role(username, form.get("role", ""), actor=actor, address=address)

    def disable(username: str, form: Mapping[str, str], actor: str, address: str) -> None:
        users.set_disabled(username, True, actor=actor, address=address)

    def enable(username: str, form: Mapping[str, str], actor: str, address: str) -> None:
        users.set_disabled(username, False, actor=actor, address=address)

    def set_password(username: str, form: Mapping[str, str], actor: str, address: str) -> None:
        password = form.get("password", "")
        if password != form.get("password_again", ""):
            raise InvalidInput("password_again", "does not match the new password")
        users.set_password(username, password, actor=actor, address=address)

    def known_actions() -> list[str]:
        # The log may hold actions this module has not heard of (new pages, the CLI).
        return sorted({*KNOWN_ACTIONS, *AuditLog(runtime.auth).actions()})

    async def audit_page(request: Request) -> Response:
        principal = admin_only(request, "read the audit log")
        if isinstance(principal, Response):
            return principal
        action = request.query_params.get("action") or None
        offset_text = request.query_params.get("offset") or "0"
        actions = await run_in_threadpool(known_actions)
        problems: dict[str, str] = {}
        if action is not None and action not in actions:
            problems["action"] = f"names no recorded action (got {action!r})"
        if not offset_text.isdigit():
            problems["offset"] = f"must be a whole number of entries to skip (got {offset_text!r})"
        offset = int(offset_text) if offset_text.isdigit() else 0
        entries: list[AuditEntry] = []
        if not problems:
            entries = await run_in_threadpool(
                lambda: log.recent(AUDIT_PAGE_SIZE + 1, offset, action=action)
            )
        more = len(entries) > AUDIT_PAGE_SIZE

        def link(to: int) -> str:
            query = urlencode({k: v for k, v in (("action", action), ("offset", to)) if v})
            return "/settings/audit" + ("?" + query if query else "")

        context = {
            "settings_active": "audit",
            "entries": entries[:AUDIT_PAGE_SIZE],
            "actions": actions,
            "action": action or "",
            "problems": problems,
            "offset": offset,
            "newer": link(max(0, offset - AUDIT_PAGE_SIZE)) if offset > 0 else None,
            "older": link(offset + AUDIT_PAGE_SIZE) if more else None,
            "compact_json": compact_json,
        }
        return page(request, principal, "settings_audit.html", context, 400 if problems else 200)

    return [
        Route("/settings", index, methods=["GET"]),
        Route("/settings/tokens", tokens_page, methods=["GET"]),
        Route("/settings/tokens", create, methods=["POST"]),
        Route("/settings/tokens/{token_id:int}/revoke", confirm_revoke, methods=["GET"]),
        Route("/settings/tokens/{token_id:int}/revoke", revoke, methods=["POST"]),
        Route("/settings/users", users_page, methods=["GET"]),
        Route("/settings/users", add_user, methods=["POST"]),
        Route("/settings/users/{username}/role", user_change("role", set_role), methods=["POST"]),
        Route(
            "/settings/users/{username}/disable", user_change("disable", disable), methods=["POST"]
        ),
        Route("/settings/users/{username}/enable", user_change("enable", enable), methods=["POST"]),
        Route(
            "/settings/users/{username}/password",
            user_change("password", set_password),
            methods=["POST"],
        ),
        Route("/settings/audit", audit_page, methods=["GET"]),
    ]


def user_path(username: str, action: str) -> str:
    """Where a user's row posts `action` ("role", "disable", ...)."""
    return f"/settings/users/{quote(username, safe='')}/{action}"


async def _form(request: Request, principal: Principal) -> Mapping[str, str] | Response:
    """The posted form's fields; 413 or 403 (expired CSRF token) otherwise.

    The auth middleware checks the CSRF token first; this checks it again so the pages
    refuse a cross-site post even if served without that middleware.
    """
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except BodyTooLarge:
        return HTMLResponse("The form is too large.", 413)
    # The app has no python-multipart; these forms are small and urlencoded.
    form = form_fields(body, request.headers.get("content-type", ""))
    if principal.via == "session":
        token = form.get("csrf_token", request.headers.get("x-csrf-token", ""))
        if not hmac.compare_digest(token.encode(), principal.csrf.encode()):
            return denied(request, None, "The form has expired: reload the page and try again.")
    return form


def _new_user_problems(form: UserForm, password: str, again: str) -> dict[str, str]:
    """Every problem of the add-user form at once (the auth package stops at the first)."""
    problems: dict[str, str] = {}
    checks: tuple[tuple[str, Callable[[], object]], ...] = (
        ("username", lambda: check_username(form.username)),
        ("role", lambda: check_role(form.role)),
        ("password", lambda: check_password(password)),
    )
    for key, check in checks:
        try:
            check()
        except InvalidInput as exc:
            problems[key] = exc.message
    if password != again:
        problems["password_again"] = "does not match the password"
    return problems


def _revoked_notice(request: Request, listed: list[TokenInfo]) -> str:
    """After a revoke (`?revoked=<id>`): which token stopped working."""
    wanted = request.query_params.get("revoked", "")
    token = next((t for t in listed if str(t.id) == wanted and not t.active), None)
    if token is None:
        return ""
    return (
        f"Revoked the token “{token.name}” of {token.username}: "
        "requests with it now get 401 Unauthorized."
    )
