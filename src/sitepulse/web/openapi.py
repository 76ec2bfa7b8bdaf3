"""The OpenAPI document, built from the same msgspec structs that validate requests and the
same constants the query endpoints check their parameters against."""

from __future__ import annotations

from typing import Any

import msgspec

from sitepulse import __version__
from sitepulse.analyse.attribution import ALL_MODELS, Dimension
from sitepulse.analyse.dashboards import DEFAULT_MODEL
from sitepulse.analyse.reports import DEFAULT_DAYS, MAX_SPAN_DAYS
from sitepulse.auth.principal import ROLES
from sitepulse.auth.tokens import TOKEN_NAME_PATTERN
from sitepulse.auth.users import USERNAME_PATTERN
from sitepulse.clock import MAX_EPOCH_MS
from sitepulse.collect.payloads import CollectBatch, LeadSubmission, ServerEventBatch
from sitepulse.web.ui.render import REFRESH_CHOICES

Schema = dict[str, Any]
Security = list[dict[str, list[str]]]

# How each operation may be called; the alternatives are ORed, a requirement's schemes ANDed.
SITE: Security = [{"siteToken": []}]
QUERY: Security = [{"apiToken": []}, {"siteToken": []}, {"session": []}]
SIGNED_IN: Security = [{"apiToken": []}, {"session": []}]
CHANGE: Security = [{"apiToken": []}, {"session": [], "csrfToken": []}]


_SECURITY_SCHEMES: Schema = {
    "siteToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "a site's token (`sk_...`, `sites[].token` in sitepulse.yaml)",
    },
    "apiToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "spt_...",
        "description": "a user's API token; acts with the lower of its and its owner's role",
    },
    "session": {"type": "apiKey", "in": "cookie", "name": "sitepulse_session"},
    "csrfToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-Token",
        "description": "the session's CSRF token: a session changes nothing without it",
    },
}

_ERROR: Schema = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "field": {"type": "string", "description": "where the problem is, e.g. events[2].ts"},
    },
}
_MOMENT_TYPE: Schema = {"type": "string", "format": "date-time"}
_TOKEN: Schema = {
    "type": "object",
    "required": ["id", "name", "username", "role", "prefix", "created_at", "active"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "username": {"type": "string"},
        "role": {"type": "string", "enum": list(ROLES)},
        "prefix": {"type": "string", "description": "the secret's first characters"},
        "created_at": _MOMENT_TYPE,
        "last_used_at": _MOMENT_TYPE | {"nullable": True},
        "revoked_at": _MOMENT_TYPE | {"nullable": True},
        "active": {"type": "boolean"},
    },
}
_NEW_TOKEN: Schema = {
    "allOf": [
        {"$ref": "#/components/schemas/Token"},
        {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}},
    ],
    "description": "`token` is the secret, shown in this response only",
}
_NEW_TOKEN_REQUEST: Schema = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": f"^(?:{TOKEN_NAME_PATTERN.pattern})$"},
        "role": {
            "type": "string",
            "enum": list(ROLES),
            "default": "viewer",
            "description": "no higher than the owner's role; only admins make admin tokens",
        },
        "username": {
            "type": "string",
            "pattern": f"^(?:{USERNAME_PATTERN.pattern})$",
            "description": "the owner (default: the caller); only admins name another user",
        },
    },
}
_PERIOD_BODY: Schema = {
    "type": "object",
    "required": ["site", "from", "to"],
    "properties": {"site": {"type": "string"}, "from": _MOMENT_TYPE, "to": _MOMENT_TYPE},
}
_DASHBOARD_BODY: Schema = {
    "type": "object",
    "required": ["site", "from", "to", "compare", "panels", "generated_at", "archive"],
    "properties": _PERIOD_BODY["properties"]
    | {
        "compare": {"type": "boolean"},
        "previous_from": _MOMENT_TYPE | {"nullable": True},
        "previous_to": _MOMENT_TYPE | {"nullable": True},
        "panels": {"type": "object", "description": "panel id → its data"},
        "generated_at": {"type": "string"},
        "archive": {"type": "object", "description": "computed, fresh or stale, with its age"},
    },
}

_STATUS: dict[int, str] = {
    400: "a bad parameter or body; `field` names it",
    401: "missing, unknown or revoked credentials",
    403: "credentials not valid here",
    404: "not found",
    409: "conflicts with what exists",
    413: "body too large",
    429: "ingest queue full; honour Retry-After",
    503: "store unavailable or shutting down",
}
_INGEST_NOTES = {403: "credentials not valid for any site", 404: "unknown site key"}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _responses(
    ok: int, text: str, schema: Schema, errors: tuple[int, ...], notes: dict[int, str] | None = None
) -> Schema:
    """The success with its JSON schema, then each error status with the `Error` body."""
    described = _STATUS | (notes or {})
    out: Schema = {str(ok): {"description": text, "content": _json(schema)}}
    for code in errors:
        out[str(code)] = {"description": described[code], "content": _json(_ref("Error"))}
    return out


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _integer(low: int, high: int, default: int) -> Schema:
    return {"type": "integer", "minimum": low, "maximum": high, "default": default}


def _number(low: float, high: float, default: float | None = None) -> Schema:
    schema: Schema = {"type": "number", "minimum": low, "maximum": high}
    return schema if default is None else schema | {"default": default}


def _choice(values: list[str], default: str) -> Schema:
    return {"type": "string", "enum": values, "default": default}


def _text(default: str | None = None) -> Schema:
    return {"type": "string"} if default is None else {"type": "string", "default": default}


# A moment as `analyse.reports.Request.period` reads it; an empty value counts as absent.
# Moments before 1970 or after MAX_EPOCH_MS (the year 3000) are refused with a 400.
_MOMENT: Schema = {
    "type": "string",
    "anyOf": [{"format": "date"}, {"format": "date-time"}, {"pattern": "^[0-9]{1,14}$"}],
}
_PERIOD = (
    _query(
        "days",
        _integer(1, MAX_SPAN_DAYS, DEFAULT_DAYS),
        "the period's length in days, ending at `to`; ignored when `from` is given",
    ),
    _query(
        "from",
        _MOMENT,
        "the start: a date (midnight in the site's time zone), an ISO time (without an "
        "offset: in the site's zone) or epoch ms; between 1970 and the year 3000",
    ),
    _query(
        "to",
        _MOMENT,
        f"the end, exclusive (default: now); after `from`, at most {MAX_SPAN_DAYS} days later",
    ),
)
_REPORT_SITE = _query("site", _text(), "a site id (default: the first); site tokens read theirs")

# The query API, `analyse.reports.REPORTS` by name: summary, and the parameters each reads.
_REPORTS: dict[str, tuple[str, tuple[Schema, ...]]] = {
    "kpis": (
        "Visitors, sessions, leads and conversion, with top paths and drop-offs",
        (*_PERIOD, _query("top", _integer(1, 100, 10), "how many top paths to list")),
    ),
    "vitals": (
        "Core Web Vitals (p75 and compliance), overall and by group",
        (*_PERIOD, _query("by", _choice(["page_group", "device", "none"], "page_group"), "groups")),
    ),
    "funnel": (
        "A funnel's steps and conversion (the built-in `lead`, sitepulse.yaml's, the UI's)",
        (
            *_PERIOD,
            _query("name", _text("lead"), "a defined funnel's name"),
            _query(
                "breakdown",
                _choice(["none", "channel", "device", "variant"], "none"),
                "split each step by this; `variant` needs `experiment`",
            ),
            _query("experiment", _text(), "the experiment whose variants to split by"),
        ),
    ),
    "form-failures": (
        "Forms that failed and whether a lead followed",
        (
            *_PERIOD,
            _query("within_secs", _integer(10, 86_400, 600), "how soon a lead counts as recovery"),
        ),
    ),
    "attribution": (
        "Leads and lead-score value credited by each attribution model",
        (
            *_PERIOD,
            _query(
                "dimension",
                _choice([d.value for d in Dimension], Dimension.CHANNEL.value),
                "what credit is grouped by",
            ),
        ),
    ),
    "experiments": (
        "Experiments seen in the period, with their variants' statistics",
        (*_PERIOD, _query("name", _text(), "only this experiment (400 if not seen)")),
    ),
    "sample-size": (
        "Visitors needed per variant (and the detectable effect for a given traffic)",
        (
            _query("baseline", _number(1e-6, 0.999, 0.03), "the baseline conversion rate"),
            _query("mde", _number(1e-4, 10, 0.10), "the relative lift to detect"),
            _query("alpha", _number(1e-6, 0.5, 0.05), "the false-positive rate"),
            _query("power", _number(0.5, 0.999, 0.8), "the chance of detecting the lift"),
            _query("visitors", _number(1, 1e12), "per variant: adds the detectable effect"),
        ),
    ),
    "leads": (
        "Leads of the period, overdue follow-ups first",
        (
            *_PERIOD,
            _query("limit", _integer(1, 10_000, 100), "at most this many leads"),
            _query("tier", _text(), "only this score tier (one of `scoring.tiers`)"),
        ),
    ),
}

_DASHBOARDS = {
    "executive": "conversion, leads and their value by channel, Core Web Vitals, lead score",
    "marketing": "funnel, attribution, lead quality, experiments, channels and vitals by page",
}
_DASHBOARD_PARAMS = (
    _query("site", _text(), "a site id (default: the first site)"),
    *_PERIOD,
    _query(
        "until",
        {"type": "string", "format": "date"},
        "the last day shown, inclusive (sets `to` to the next midnight)",
    ),
    _query("compare", _text(), "any value but '', 0 or false adds the previous period"),
    _query(
        "model",
        _choice([m.value for m in ALL_MODELS], DEFAULT_MODEL.value),
        "the attribution model behind value",
    ),
    _query(
        "refresh",
        {"type": "integer", "enum": list(REFRESH_CHOICES), "default": 0},
        "the page's auto-refresh interval in seconds",
    ),
    {
        "name": "X-Sitepulse-Refresh",
        "in": "header",
        "schema": _text(),
        "description": "1: an auto-refresh, served from the archive without waiting for ingest",
    },
)


def _query_paths() -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    notes = {403: "a site token no site has", 404: "unknown `site`"}
    for name, (summary, params) in _REPORTS.items():
        body = {"type": "object"} if name == "sample-size" else _PERIOD_BODY
        paths[f"/api/v1/{name}"] = {
            "get": {
                "summary": summary,
                "security": QUERY,
                "parameters": [_REPORT_SITE, *params],
                "responses": _responses(200, "the report", body, (400, 401, 403, 404), notes),
            }
        }
    for name, summary in _DASHBOARDS.items():
        paths[f"/api/v1/dashboards/{name}"] = {
            "get": {
                "summary": f"The {name} dashboard's data: {summary}",
                "description": "The numbers the page shows, from the same dashboard archive.",
                "security": SIGNED_IN,
                "parameters": list(_DASHBOARD_PARAMS),
                "responses": _responses(200, "the panels", _DASHBOARD_BODY, (400, 401)),
            }
        }
    return paths


def _token_paths() -> dict[str, Schema]:
    listing = {
        "type": "object",
        "properties": {"tokens": {"type": "array", "items": _ref("Token")}},
    }
    created = {
        403: "a viewer asking for an admin token or another's; a session without CSRF",
        404: "no such user",
        409: "a live token of that name exists, or the user is disabled",
    }
    token_id = {
        "name": "token_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    }
    return {
        "/api/v1/tokens": {
            "get": {
                "summary": "API tokens: everyone's for an admin, one's own for a viewer",
                "security": SIGNED_IN,
                "responses": _responses(200, "the tokens, oldest first", listing, (401,)),
            },
            "post": {
                "summary": "Create an API token",
                "security": CHANGE,
                "requestBody": {"required": True, "content": _json(_ref("NewTokenRequest"))},
                "responses": _responses(
                    201, "created", _ref("NewToken"), (400, 401, 403, 404, 409, 413), created
                ),
            },
        },
        "/api/v1/tokens/{token_id}": {
            "delete": {
                "summary": "Revoke an API token (a revoked one stays as it was)",
                "security": CHANGE,
                "parameters": [token_id],
                "responses": _responses(
                    200,
                    "revoked",
                    _ref("Token"),
                    (401, 403, 404),
                    {403: "a session without CSRF", 404: "no such token visible to the caller"},
                ),
            }
        },
    }


def _ingest_paths(collect: Schema, events: Schema, lead: Schema) -> dict[str, Schema]:
    accepted = {"type": "object", "properties": {"accepted": {"type": "integer"}}}
    notes = _INGEST_NOTES
    # Browsers send the JSON as text/plain, so that sendBeacon and forms need no preflight.
    beacon = {"text/plain": {"schema": collect}} | _json(collect)
    form = _json(lead) | {"text/plain": {"schema": lead}}
    limits = (400, 413, 429, 503)
    return {
        "/api/v1/collect": {
            "post": {
                "summary": "Browser events (sent by /sp.js)",
                "requestBody": {"required": True, "content": beacon},
                "responses": _responses(202, "stored durably", accepted, (*limits, 404), notes),
            }
        },
        "/api/v1/events": {
            "post": {
                "summary": "Server-side events",
                "security": SITE,
                "requestBody": {"required": True, "content": _json(events)},
                "responses": _responses(
                    202, "stored durably", accepted, (*limits, 401, 403), notes
                ),
            },
            "get": {
                "summary": "Stored events of the token's site, newest first",
                "security": SITE,
                "parameters": [
                    _query("type", _text(), "only events of this type"),
                    _query(
                        "since",
                        {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MS},
                        "epoch ms",
                    ),
                    _query("limit", _integer(1, 10_000, 100), "at most this many events"),
                ],
                "responses": _responses(
                    200, "the events", {"type": "object"}, (400, 401, 403), notes
                ),
            },
        },
        "/api/v1/leads": {
            "post": {
                "summary": "One lead submission (site token, or site_key from a form)",
                "security": [*SITE, {}],
                "requestBody": {"required": True, "content": form},
                "responses": _responses(
                    201, "stored durably", {"type": "object"}, (*limits, 403, 404), notes
                ),
            }
        },
    }


def _plain_paths() -> dict[str, Schema]:
    def described(summary: str, text: str, content: Schema | None = None) -> Schema:
        ok = {"description": text} | ({"content": content} if content else {})
        return {"get": {"summary": summary, "responses": {"200": ok}}}

    readiness = described("Readiness", "ready")
    readiness["get"]["responses"]["503"] = {"description": "not ready"}
    return {
        "/metrics": described(
            "Prometheus metrics", "the text format", {"text/plain": {"schema": _text()}}
        ),
        "/healthz": described("Liveness", "alive"),
        "/readyz": readiness,
        "/openapi.json": described("This document", "OpenAPI 3.0", _json({"type": "object"})),
    }


def _openapi30(schema: Schema) -> Schema:
    """msgspec writes JSON Schema 2020-12; OpenAPI 3.0 spells null as `nullable`, wants no
    empty `required` and knows no `propertyNames` (kept as an extension, still documented)."""
    out: Schema = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: _openapi30(each) for name, each in value.items()}
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [_openapi30(each) for each in value]
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _openapi30(value)
        elif key == "propertyNames":
            out["x-propertyNames"] = value
        elif not (key == "required" and value == []):
            out[key] = value
    members: list[Schema] | None = out.pop("anyOf", None)
    if members is None or {"type": "null"} not in members:
        return out if members is None else out | {"anyOf": members}
    rest = [m for m in members if m != {"type": "null"}]
    if len(rest) == 1:
        return out | rest[0] | {"nullable": True}
    return out | {"anyOf": [m | {"nullable": True} if "type" in m else m for m in rest]}


def build_openapi() -> dict[str, Any]:
    """OpenAPI 3.0.3 for the ingest, query, dashboard and API-token endpoints."""
    (collect, events, lead), structs = msgspec.json.schema_components(
        [CollectBatch, ServerEventBatch, LeadSubmission], ref_template="#/components/schemas/{name}"
    )
    schemas = {name: _openapi30(each) for name, each in structs.items()} | {
        "Error": _ERROR,
        "Token": _TOKEN,
        "NewToken": _NEW_TOKEN,
        "NewTokenRequest": _NEW_TOKEN_REQUEST,
    }
    paths = _ingest_paths(_openapi30(collect), _openapi30(events), _openapi30(lead))
    # GET /api/v1/leads is a report and POST /api/v1/leads ingest: one path, two operations.
    for path, operations in (_query_paths() | _token_paths() | _plain_paths()).items():
        paths[path] = paths.get(path, {}) | operations
    return {
        "openapi": "3.0.3",
        "info": {"title": "sitepulse", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
    }
