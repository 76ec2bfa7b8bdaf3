"""The ASGI middleware that authenticates every non-public request and adds security headers.

Pure ASGI (not BaseHTTPMiddleware): streaming responses pass through untouched, and public
requests cost one predicate call and one header merge.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Final
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sitepulse.auth.db import AuthDB
from sitepulse.auth.httputil import (
    FORM_TYPES,
    BodyTooLarge,
    ClientGone,
    cookie,
    form_fields,
    header,
    is_https,
    media_type,
    read_body,
    replay,
    safe_next,
    same_origin,
)
from sitepulse.auth.principal import SCOPE_KEY, Principal
from sitepulse.auth.sessions import SESSION_COOKIE, Sessions
from sitepulse.auth.tokens import TOKEN_PREFIX, Tokens

# plotly.js injects <style> elements, hence 'unsafe-inline' for styles (never scripts).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
STRICT_TRANSPORT_SECURITY: Final = "max-age=31536000"
MAX_FORM_BYTES: Final = 1_048_576
CSRF_HEADER: Final = b"x-csrf-token"
CSRF_FIELD: Final = "csrf_token"
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Where the middleware leaves its `secure_cookies` setting (None = auto) for the sign-in
# routes, which set the cookies.
COOKIE_SECURE_KEY: Final = "sitepulse.cookie_secure"

Predicate = Callable[[str, str], bool]
"""(method, path) → bool."""

_PUBLIC_EXACT: Final = frozenset(
    {"/sp.js", "/api/v1/collect", "/metrics", "/healthz", "/readyz", "/login", "/site"}
)
_PUBLIC_PREFIXES: Final = ("/static/", "/site/")


def default_is_public(method: str, path: str) -> bool:
    """The routes anyone may call: the collector and ingest (their site key or token is
    checked by the route), health and metrics, the sign-in page, static files and the
    sample site. Paths with dot segments or doubled slashes are never public, so a
    "/static/../x" cannot borrow a public prefix."""
    if "/." in path or "//" in path or "\\" in path:
        return False
    if path in _PUBLIC_EXACT or path.startswith(_PUBLIC_PREFIXES):
        return True
    if path == "/api/v1/events":
        return method == "POST"
    if path == "/api/v1/leads":
        return method in ("POST", "OPTIONS")
    return False


def is_api_path(method: str, path: str) -> bool:
    """Where a non-`spt_` Bearer (a site token, `sk_...`) is left for the route to check."""
    return path.startswith("/api/")


def skips_csp(path: str) -> bool:
    """No CSP for /sp.js and the sample site: /site stands in for a customer's own site,
    whose pages set their own policy and must be free to load /sp.js and inline markup;
    the JavaScript file itself is not a document, so a policy on it would mean nothing."""
    return path == "/sp.js" or path == "/site" or path.startswith("/site/")


class AuthMiddleware:
    """Sign-in by session cookie or API token, CSRF checks, and security headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        db: AuthDB,
        is_public: Predicate = default_is_public,
        login_path: str = "/login",
        secure_cookies: bool | None = None,
        sessions: Sessions | None = None,
        tokens: Tokens | None = None,
        passes_other_bearer: Predicate = is_api_path,
        content_security_policy: str = CONTENT_SECURITY_POLICY,
        max_form_bytes: int = MAX_FORM_BYTES,
    ) -> None:
        self.app = app
        self.is_public = is_public
        self.login_path = login_path
        # The sign-in routes set the cookies; they read this decision from the scope.
        self.secure_cookies = secure_cookies
        self.sessions = sessions or Sessions(db)
        self.tokens = tokens or Tokens(db)
        self.passes_other_bearer = passes_other_bearer
        self.max_form_bytes = max_form_bytes
        base = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS]
        csp = (b"content-security-policy", content_security_policy.encode())
        hsts = (b"strict-transport-security", STRICT_TRANSPORT_SECURITY.encode())
        no_store = (b"cache-control", b"no-store")
        # (csp?, https?, protected?) → the headers to add; built once, not per request.
        self._headers: dict[tuple[bool, bool, bool], tuple[tuple[bytes, bytes], ...]] = {
            (c, h, p): tuple(base + [csp] * c + [hsts] * h + [no_store] * p)
            for c in (False, True)
            for h in (False, True)
            for p in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # No page of ours uses websockets; refuse rather than leave one unguarded.
        if scope["type"] == "websocket" and not self.is_public("GET", scope["path"]):
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        scope[COOKIE_SECURE_KEY] = self.secure_cookies
        public = self.is_public(method, path)
        extra = self._headers[(not skips_csp(path), is_https(scope), not public)]
        send = self._with_headers(send, extra)
        if public:
            await self.app(scope, receive, send)
            return

        authorization = header(scope, b"authorization")
        bearer = _bearer(authorization) if authorization else None
        if bearer is not None:
            if bearer.startswith(TOKEN_PREFIX):
                principal = await run_in_threadpool(self.tokens.verify, bearer)
                if principal is None:
                    await _json(401, "unauthorized", "this API token is unknown or revoked")(
                        scope, receive, send
                    )
                    return
                scope[SCOPE_KEY] = principal
                await self.app(scope, receive, send)
                return
            if self.passes_other_bearer(method, path):
                await self.app(scope, receive, send)
                return

        session_id = cookie(scope, SESSION_COOKIE)
        principal = None
        if session_id:
            principal = await run_in_threadpool(self.sessions.lookup, session_id)
        if principal is None:
            await self._unauthenticated(scope, method, path)(scope, receive, send)
            return
        scope[SCOPE_KEY] = principal
        if method in UNSAFE_METHODS:
            try:
                refusal, receive = await self._check_csrf(scope, receive, principal)
            except BodyTooLarge:
                too_large = f"request body exceeds {self.max_form_bytes} bytes"
                await _refuse(path, 413, "too_large", too_large)(scope, receive, send)
                return
            except ClientGone:
                return
            if refusal is not None:
                await _refuse(path, 403, "forbidden", refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _unauthenticated(self, scope: Scope, method: str, path: str) -> Response:
        if path.startswith("/api/"):
            return _json(
                401, "unauthorized", "sign in, or send `Authorization: Bearer <API token>`"
            )
        target = "/"
        if method in ("GET", "HEAD"):
            raw = scope.get("raw_path") or path.encode()
            query = scope.get("query_string") or b""
            asked = bytes(raw).decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
            target = safe_next(asked)
        location = self.login_path
        if target != "/":
            location += "?next=" + quote(target, safe="")
        return RedirectResponse(location, 303)

    async def _check_csrf(
        self, scope: Scope, receive: Receive, principal: Principal
    ) -> tuple[str | None, Receive]:
        """(why the request is refused or None, the receive channel to pass on)."""
        origin = header(scope, b"origin")
        if origin is not None and not same_origin(origin, scope):
            return f"cross-origin request refused (Origin {origin!r} is not this site)", receive
        if header(scope, b"sec-fetch-site") == "cross-site":
            return "cross-site request refused (Sec-Fetch-Site: cross-site)", receive
        supplied = header(scope, CSRF_HEADER)
        if supplied is None and media_type(scope) in FORM_TYPES:
            body = await read_body(scope, receive, self.max_form_bytes)
            receive = replay(body, receive)
            supplied = form_fields(body, header(scope, b"content-type") or "").get(CSRF_FIELD)
        if supplied is None:
            return (
                "missing CSRF token: send the X-CSRF-Token header or the csrf_token form field",
                receive,
            )
        if not hmac.compare_digest(supplied.encode(), principal.csrf.encode()):
            return "wrong CSRF token: reload the page and try again", receive
        return None, receive

    @staticmethod
    def _with_headers(send: Send, extra: tuple[tuple[bytes, bytes], ...]) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in headers}
                headers.extend(item for item in extra if item[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        return send_with_headers


def _bearer(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _json(status: int, code: str, message: str) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": code, "message": message, "field": "authorization"}
    return JSONResponse(body, status, headers=headers)


def _refuse(path: str, status: int, code: str, message: str) -> Response:
    if path.startswith("/api/"):
        field = "(body)" if status == 413 else "csrf_token"
        return JSONResponse({"error": code, "message": message, "field": field}, status)
    return PlainTextResponse(f"{status} {message}", status)
