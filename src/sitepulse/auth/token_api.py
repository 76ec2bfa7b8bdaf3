"""Who may manage which API tokens, and the JSON API over it (/api/v1/tokens).

Admins manage everyone's tokens; viewers only their own, with the viewer role. The
functions are for the UI's pages too; the routes are a thin JSON layer on them.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sitepulse.auth.access import require_role
from sitepulse.auth.db import AuthDB
from sitepulse.auth.errors import AuthError, Conflict, InvalidInput, NotFound
from sitepulse.auth.httputil import BodyTooLarge, ClientGone, read_body
from sitepulse.auth.principal import Principal
from sitepulse.auth.routes import ClientAddressOf, peer_address
from sitepulse.auth.tokens import NewToken, TokenInfo, Tokens

MAX_BODY_BYTES = 16_384


class Forbidden(AuthError):
    """The principal may not do this to that token."""


def visible_tokens(tokens: Tokens, principal: Principal) -> list[TokenInfo]:
    """Everyone's tokens for an admin, one's own for a viewer."""
    return tokens.all(None if principal.is_admin else principal.username)


def create_token(
    tokens: Tokens,
    principal: Principal,
    name: str,
    role: str = "viewer",
    username: str | None = None,
    *,
    address: str = "",
) -> NewToken:
    """A token for `username` (default: the principal), if the principal may make it."""
    owner = username or principal.username
    if not principal.is_admin:
        if owner.lower() != principal.username.lower():
            raise Forbidden("only an admin can create tokens for other users")
        if role != "viewer":
            raise Forbidden("only an admin can create admin tokens")
    return tokens.create(owner, name, role, actor=principal.actor, address=address)


def revoke_token(
    tokens: Tokens, principal: Principal, token_id: int, *, address: str = ""
) -> TokenInfo:
    """Revoke a token the principal may manage; others' tokens look absent to viewers."""
    info = tokens.get(token_id)
    if info is None or not (
        principal.is_admin or info.username.lower() == principal.username.lower()
    ):
        raise NotFound(f"no token with id {token_id}")
    return tokens.revoke(token_id, actor=principal.actor, address=address)


def token_routes(db: AuthDB, *, client_address: ClientAddressOf = peer_address) -> list[BaseRoute]:
    """GET/POST /api/v1/tokens and DELETE /api/v1/tokens/{id}."""
    tokens = Tokens(db)

    async def list_tokens(request: Request) -> Response:
        principal = require_role(request)
        found = await run_in_threadpool(visible_tokens, tokens, principal)
        return JSONResponse({"tokens": [t.to_json() for t in found]})

    async def post_token(request: Request) -> Response:
        principal = require_role(request)
        try:
            raw = await read_body(request.scope, request.receive, MAX_BODY_BYTES)
            body = json.loads(raw)
        except BodyTooLarge:
            return _error(413, "too_large", f"body exceeds {MAX_BODY_BYTES} bytes", "(body)")
        except (ClientGone, ValueError):
            return _error(400, "invalid", "expected a JSON object", "(body)")
        if not isinstance(body, dict):
            return _error(400, "invalid", "expected a JSON object", "(body)")
        fields: dict[str, str] = {}
        for key, default in (("name", None), ("role", "viewer"), ("username", None)):
            value = body.get(key)
            if value is None:  # absent or null: the default
                value = default
            if value is not None and not isinstance(value, str):
                return _error(400, "invalid", "must be a string", key)
            if value is not None:
                fields[key] = value
        if "name" not in fields:
            return _error(400, "invalid", "is required", "name")
        try:
            new = await run_in_threadpool(
                lambda: create_token(
                    tokens,
                    principal,
                    fields["name"],
                    fields["role"],
                    fields.get("username"),
                    address=client_address(request),
                )
            )
        except NotFound as exc:
            return _error(404, "not_found", str(exc), "username")
        except AuthError as exc:
            return _failure(exc)
        except InvalidInput as exc:
            return _error(400, "invalid", exc.message, exc.field)
        # The secret appears in this response only; it is not stored.
        return JSONResponse({"token": new.secret, **new.info.to_json()}, 201)

    async def delete_token(request: Request) -> Response:
        principal = require_role(request)
        token_id = int(request.path_params["token_id"])
        try:
            info = await run_in_threadpool(
                lambda: revoke_token(tokens, principal, token_id, address=client_address(request))
            )
        except AuthError as exc:
            return _failure(exc)
        return JSONResponse(info.to_json())

    return [
        Route("/api/v1/tokens", list_tokens, methods=["GET"]),
        Route("/api/v1/tokens", post_token, methods=["POST"]),
        Route("/api/v1/tokens/{token_id:int}", delete_token, methods=["DELETE"]),
    ]


def _error(status: int, code: str, message: str, field: str) -> Response:
    body: dict[str, Any] = {"error": code, "message": message, "field": field}
    return JSONResponse(body, status)


def _failure(exc: AuthError) -> Response:
    if isinstance(exc, Forbidden):
        return _error(403, "forbidden", str(exc), "role")
    if isinstance(exc, NotFound):
        return _error(404, "not_found", str(exc), "id")
    if isinstance(exc, Conflict):
        return _error(409, "conflict", str(exc), "name")
    return _error(400, "invalid", str(exc), "(body)")
