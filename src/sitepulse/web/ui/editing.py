"""What the define-and-edit pages (funnels, experiments) share: who may change definitions,
the CSRF double-check, the audit trail, and the store of definitions.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sitepulse.analyse.base import AnalysisError
from sitepulse.analyse.definitions import DefinitionStore, Kind
from sitepulse.auth.audit import AuditLog
from sitepulse.auth.httputil import form_fields
from sitepulse.auth.principal import Principal
from sitepulse.runtime import Runtime
from sitepulse.web.http import BodyTooLarge, read_body
from sitepulse.web.ui.render import (
    View,
    error_page,
    parse_view,
    principal_of,
    render,
    unauthorized,
)

# A funnel of 20 steps with long paths is a few kilobytes.
MAX_FORM_BYTES: Final = 65_536


class AuditSink(Protocol):
    """Where definition changes are recorded; `sitepulse.auth.audit.AuditLog` is one."""

    def record(
        self,
        actor: str,
        action: str,
        target: str = "",
        detail: Mapping[str, Any] | None = None,
        address: str = "",
    ) -> None: ...


@dataclass
class Editing:
    """The definitions store and audit trail the funnel and experiment pages write through."""

    runtime: Runtime
    definitions: DefinitionStore
    audit: AuditSink

    @classmethod
    def of(cls, runtime: Runtime, audit: AuditSink | None = None) -> Editing:
        store = DefinitionStore(
            runtime.store.cursor(), runtime.settings, on_change=runtime.archive.forget
        )
        sink = audit if audit is not None else AuditLog(runtime.auth)
        return cls(runtime, store, sink)

    def now(self) -> int:
        return self.runtime.ingest.clock()

    def record(
        self,
        request: Request,
        principal: Principal,
        action: str,
        target: str,
        detail: Mapping[str, Any],
    ) -> None:
        """One audit entry for a change ("funnel.save", "experiment.delete", ...)."""
        address = request.client.host if request.client else ""
        self.audit.record(principal.actor, action, target, detail, address)


def open_page(request: Request, editing: Editing) -> tuple[Principal, View] | Response:
    """Who is asking and the view they asked for; the 401 or 400 page otherwise."""
    principal = principal_of(request)
    if principal is None:
        return unauthorized()
    try:
        view = parse_view(request, editing.runtime.settings, editing.now())
    except AnalysisError as exc:
        return error_page(request, 400, exc)
    return principal, view


def denied(request: Request, view: View | None, what: str) -> HTMLResponse:
    """403 for a viewer who tried to change a definition (or a bad CSRF token)."""
    return render(
        request,
        "definition_denied.html",
        {"view": view, "what": what, "nav_active": request.url.path.split("/")[1]},
        403,
    )


async def admin_form(
    request: Request, view: View | None
) -> tuple[Principal, Mapping[str, str]] | Response:
    """The signed-in admin and the posted form's fields; 401/403/413 otherwise.

    The auth middleware checks the CSRF token first; this checks it again so a page
    served without that middleware still refuses a cross-site post.
    """
    principal = principal_of(request)
    if principal is None:
        return unauthorized()
    if not principal.is_admin:
        return denied(request, view, "Only admins can change funnels and experiments.")
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except BodyTooLarge:
        return HTMLResponse("The form is too large.", 413)
    # The app has no python-multipart; these forms are small and urlencoded.
    form = form_fields(body, request.headers.get("content-type", ""))
    if principal.via == "session":
        token = form.get("csrf_token", request.headers.get("x-csrf-token", ""))
        if not hmac.compare_digest(token.encode(), principal.csrf.encode()):
            return denied(request, view, "The form has expired: reload the page and try again.")
    return principal, form


def see_other(path: str) -> RedirectResponse:
    """After a successful post: go and look at the result (303, so reload does not re-post)."""
    return RedirectResponse(path, status_code=303)


def delete_routes(
    editing: Editing, kind: Kind, plural: str, is_configured: Callable[[str], bool]
) -> list[BaseRoute]:
    """GET /{plural}/{name}/delete (a confirmation page) and POST (delete, audited as
    "{kind}.delete") for a definition stored from the UI; `is_configured(name)` says a
    definition lives in sitepulse.yaml, which the UI does not change."""

    async def confirm(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        principal, view = opened
        if not principal.is_admin:
            return denied(request, view, f"Only admins can delete {plural}.")
        name = request.path_params["name"]
        if await run_in_threadpool(is_configured, name):
            return denied(request, view, f"{name!r} is defined in sitepulse.yaml; edit it there.")
        context = {
            "view": view,
            "nav_active": plural,
            "kind": kind,
            "name": name,
            "action": f"/{plural}/{quote(name, safe='')}/delete{view.qs()}",
            "back": f"/{plural}/{quote(name, safe='')}{view.qs()}",
        }
        return render(request, "definition_delete.html", context)

    async def delete(request: Request) -> Response:
        opened = open_page(request, editing)
        if isinstance(opened, Response):
            return opened
        checked = await admin_form(request, opened[1])
        if isinstance(checked, Response):
            return checked
        view = opened[1]
        principal, _ = checked
        name = request.path_params["name"]
        removed = await run_in_threadpool(editing.definitions.delete, kind, name)
        if removed is None:
            what = AnalysisError("name", f"names no {kind} defined here ({name!r})")
            return error_page(request, 404, what)
        editing.record(request, principal, f"{kind}.delete", name, {"body": dict(removed.body)})
        return see_other(f"/{plural}{view.qs()}")

    path = f"/{plural}/{{name}}/delete"
    return [Route(path, confirm, methods=["GET"]), Route(path, delete, methods=["POST"])]
