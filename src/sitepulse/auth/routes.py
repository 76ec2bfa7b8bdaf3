"""The sign-in page, sign-in and sign-out.

The sign-in form's own CSRF defence (there is no session yet) is a double-submit cookie:
GET /login puts a random value both in a cookie (HttpOnly, SameSite=Strict, Path=/login)
and in the form; POST /login accepts only when the two match and any Origin header names
this server. Another site can make a browser post the form but cannot read or set our
cookie to match, and SameSite=Strict keeps the cookie off cross-site posts in the first
place. No server secret is needed, so nothing breaks across restarts.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
from collections.abc import Callable
from typing import Final

import anyio
import jinja2
from argon2 import PasswordHasher
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sitepulse.auth import audit
from sitepulse.auth.access import require_role
from sitepulse.auth.audit import AuditLog
from sitepulse.auth.db import AuthDB
from sitepulse.auth.httputil import (
    BodyTooLarge,
    ClientGone,
    cookie,
    form_fields,
    header,
    read_body,
    safe_next,
    same_origin,
    set_cookie_header,
    wants_secure_cookie,
)
from sitepulse.auth.middleware import COOKIE_SECURE_KEY
from sitepulse.auth.passwords import DEFAULT_HASHER
from sitepulse.auth.ratelimit import SignInLimiter
from sitepulse.auth.sessions import SESSION_COOKIE, Sessions
from sitepulse.auth.users import Users

LOGIN_CSRF_COOKIE: Final = "sitepulse_login_csrf"
LOGIN_CSRF_MAX_AGE_SECS: Final = 3600
MAX_LOGIN_FORM_BYTES: Final = 16_384
# argon2 takes 64 MiB and a core for ~0.1 s per check: a few at once, the rest queue.
MAX_CONCURRENT_CHECKS: Final = 2
SIGN_IN_FAILED: Final = "Wrong username or password."
FORM_EXPIRED: Final = "The sign-in form expired or was sent from another site. Please try again."

_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("sitepulse.auth", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

ClientAddressOf = Callable[[Request], str]


def peer_address(request: Request) -> str:
    """The TCP peer; pass sitepulse.web.http.ClientAddress to believe trusted proxies."""
    return request.client.host if request.client else ""


def auth_routes(
    db: AuthDB,
    limiter: SignInLimiter,
    *,
    client_address: ClientAddressOf = peer_address,
    hasher: PasswordHasher = DEFAULT_HASHER,
    sessions: Sessions | None = None,
    login_path: str = "/login",
    logout_path: str = "/logout",
) -> list[BaseRoute]:
    """GET and POST `login_path`, POST `logout_path`."""
    users = Users(db, hasher=hasher)
    sessions = sessions or Sessions(db)
    log = AuditLog(db)
    checks = anyio.CapacityLimiter(MAX_CONCURRENT_CHECKS)

    def secure(request: Request) -> bool:
        return wants_secure_cookie(request.scope, request.scope.get(COOKIE_SECURE_KEY))

    def form(
        request: Request,
        status: int,
        *,
        next_path: str,
        error: str = "",
        username: str = "",
        headers: dict[str, str] | None = None,
    ) -> Response:
        token = cookie(request.scope, LOGIN_CSRF_COOKIE) or ""
        if not _TOKEN.fullmatch(token):
            token = secrets.token_urlsafe(32)
        html = _templates.get_template("login.html").render(
            action=login_path,
            csrf_token=token,
            next_path=next_path,
            error=error,
            username=username,
        )
        response = HTMLResponse(html, status, headers=headers)
        response.raw_headers.append(
            set_cookie_header(
                LOGIN_CSRF_COOKIE,
                token,
                max_age_secs=LOGIN_CSRF_MAX_AGE_SECS,
                secure=secure(request),
                path=login_path,
                same_site="Strict",
            )
        )
        return response

    async def show_form(request: Request) -> Response:
        next_path = safe_next(request.query_params.get("next"))
        session_id = cookie(request.scope, SESSION_COOKIE)
        if session_id:
            signed_in = await run_in_threadpool(sessions.lookup, session_id)
            if signed_in is not None:
                return RedirectResponse(next_path, 303)
        return form(request, 200, next_path=next_path)

    async def sign_in(request: Request) -> Response:
        scope = request.scope
        try:
            body = await read_body(scope, request.receive, MAX_LOGIN_FORM_BYTES)
        except BodyTooLarge:
            return PlainTextResponse("413 the sign-in form is too large", 413)
        except ClientGone:
            return Response(status_code=400)
        fields = form_fields(body, header(scope, b"content-type") or "")
        next_path = safe_next(fields.get("next"))
        # Usernames are at most 64 characters: longer input is wrong anyway, and the cut
        # bounds what the limiter and the audit log keep.
        username = fields.get("username", "").strip()[:64]
        password = fields.get("password", "")
        sent_token = fields.get("csrf_token", "")
        kept_token = cookie(scope, LOGIN_CSRF_COOKIE) or ""
        origin = header(scope, b"origin")
        if (
            not _TOKEN.fullmatch(kept_token)
            or not hmac.compare_digest(sent_token.encode(), kept_token.encode())
            or (origin is not None and not same_origin(origin, scope))
        ):
            return form(request, 403, next_path=next_path, error=FORM_EXPIRED, username=username)

        address = client_address(request)
        wait = limiter.retry_after(address, username)
        if wait:
            minutes = math.ceil(wait / 60)
            message = (
                f"Too many failed sign-ins. Try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}."
            )
            return form(
                request,
                429,
                next_path=next_path,
                error=message,
                username=username,
                headers={"Retry-After": str(wait)},
            )

        user = await anyio.to_thread.run_sync(
            users.authenticate, username, password, limiter=checks
        )
        if user is None:
            limiter.failed(address, username)
            await run_in_threadpool(
                log.record, "anonymous", audit.SIGNIN_FAILED, username, None, address
            )
            return form(request, 400, next_path=next_path, error=SIGN_IN_FAILED, username=username)

        limiter.succeeded(address, username)
        try:
            new = await run_in_threadpool(
                lambda: sessions.create(
                    user.username,
                    address=address,
                    user_agent=header(scope, b"user-agent") or "",
                    replaces=cookie(scope, SESSION_COOKIE),
                )
            )
        except LookupError:  # removed or disabled between the check and now
            return form(request, 400, next_path=next_path, error=SIGN_IN_FAILED, username=username)
        await run_in_threadpool(
            log.record, user.username, audit.SIGNIN, user.username, None, address
        )
        response = RedirectResponse(next_path, 303)
        response.raw_headers += [
            set_cookie_header(
                SESSION_COOKIE,
                new.cookie_value,
                max_age_secs=new.max_age_secs,
                secure=secure(request),
            ),
            set_cookie_header(
                LOGIN_CSRF_COOKIE,
                "",
                max_age_secs=0,
                secure=secure(request),
                path=login_path,
                same_site="Strict",
            ),
        ]
        return response

    async def sign_out(request: Request) -> Response:
        # The middleware has already required a session and checked the CSRF token.
        principal = require_role(request)
        session_id = cookie(request.scope, SESSION_COOKIE)
        if principal.via != "session" or not session_id:
            return PlainTextResponse("400 sign-out ends a browser session", 400)
        await run_in_threadpool(sessions.end, session_id)
        await run_in_threadpool(
            log.record,
            principal.actor,
            audit.SIGNOUT,
            principal.username,
            None,
            client_address(request),
        )
        response = RedirectResponse(login_path, 303)
        response.raw_headers.append(
            set_cookie_header(SESSION_COOKIE, "", max_age_secs=0, secure=secure(request))
        )
        return response

    return [
        Route(login_path, show_form, methods=["GET"]),
        Route(login_path, sign_in, methods=["POST"]),
        Route(logout_path, sign_out, methods=["POST"]),
    ]
