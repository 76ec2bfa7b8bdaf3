"""What endpoints call to learn who is asking and to insist on a role."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from sitepulse.auth.principal import ROLES, SCOPE_KEY, Principal, Role


class AccessDenied(HTTPException):
    """401 (nobody signed in) or 403 (role too low), raised by `require_role`.

    Starlette turns it into a plain-text response by itself; `ACCESS_HANDLERS` renders
    JSON for /api/ paths instead.
    """

    def __init__(self, status_code: int, message: str) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
        super().__init__(status_code, message, headers)


def principal_of(request_or_scope: Request | dict[str, Any]) -> Principal | None:
    """The principal the auth middleware found for this request, if any."""
    scope = request_or_scope.scope if isinstance(request_or_scope, Request) else request_or_scope
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, Principal) else None


def require_role(request_or_scope: Request | dict[str, Any], role: Role = "viewer") -> Principal:
    """The principal if it holds `role` (admin includes viewer); else raise AccessDenied.

    Usage in an endpoint: `who = require_role(request, "admin")`.
    """
    principal = principal_of(request_or_scope)
    if principal is None:
        raise AccessDenied(401, "sign in, or send `Authorization: Bearer <API token>`")
    if ROLES.index(principal.role) < ROLES.index(role):
        raise AccessDenied(
            403, f"this needs the {role} role; {principal.username} is a {principal.role}"
        )
    return principal


async def access_denied(request: Request, exc: Exception) -> Response:
    """Exception handler: JSON for the API, plain text for pages."""
    assert isinstance(exc, AccessDenied)
    if request.url.path.startswith("/api/"):
        code = "unauthorized" if exc.status_code == 401 else "forbidden"
        body = {"error": code, "message": exc.detail, "field": "authorization"}
        return JSONResponse(body, exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)


# Pass to Starlette(exception_handlers=...).
ACCESS_HANDLERS: dict[Any, Any] = {AccessDenied: access_denied}
