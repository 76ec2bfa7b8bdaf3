"""The OpenAPI document, built from the same msgspec structs that validate requests."""

from __future__ import annotations

from typing import Any

import msgspec

from sitepulse import __version__
from sitepulse.collect.payloads import CollectBatch, LeadSubmission, ServerEventBatch

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "field": {"type": "string", "description": "where the problem is, e.g. events[2].ts"},
    },
}


def _responses(ok: int, ok_schema: dict[str, Any], *codes: int) -> dict[str, Any]:
    described = {
        400: "malformed body; `field` names the problem",
        401: "missing credentials",
        403: "credentials not valid for any site",
        404: "unknown site key",
        413: "body too large",
        429: "ingest queue full; honour Retry-After",
        503: "store unavailable or shutting down",
    }
    out: dict[str, Any] = {
        str(ok): {
            "description": "stored durably",
            "content": {"application/json": {"schema": ok_schema}},
        },
    }
    for code in codes:
        out[str(code)] = {
            "description": described[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return out


def build_openapi() -> dict[str, Any]:
    """OpenAPI 3.0 for the public ingest and query API."""
    (collect, events, lead), components = msgspec.json.schema_components(
        [CollectBatch, ServerEventBatch, LeadSubmission], ref_template="#/components/schemas/{name}"
    )
    components["Error"] = _ERROR
    accepted = {"type": "object", "properties": {"accepted": {"type": "integer"}}}
    body = {"required": True}
    bearer: list[dict[str, list[str]]] = [{"siteToken": []}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "sitepulse", "version": __version__},
        "paths": {
            "/api/v1/collect": {
                "post": {
                    "summary": "Browser events (sent by /sp.js)",
                    "requestBody": body
                    | {
                        "content": {
                            "text/plain": {"schema": collect},
                            "application/json": {"schema": collect},
                        }
                    },
                    "responses": _responses(202, accepted, 400, 404, 413, 429, 503),
                }
            },
            "/api/v1/events": {
                "post": {
                    "summary": "Server-side events",
                    "security": bearer,
                    "requestBody": body | {"content": {"application/json": {"schema": events}}},
                    "responses": _responses(202, accepted, 400, 401, 403, 413, 429, 503),
                },
                "get": {
                    "summary": "Stored events of the token's site, newest first",
                    "security": bearer,
                    "parameters": [
                        {"name": "type", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "since",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": 32_503_680_000_000,
                            },
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                        },
                    ],
                    "responses": _responses(200, {"type": "object"}, 400, 401, 403),
                },
            },
            "/api/v1/leads": {
                "post": {
                    "summary": "One lead submission (site token, or site_key from a form)",
                    "requestBody": body
                    | {
                        "content": {
                            "application/json": {"schema": lead},
                            "text/plain": {"schema": lead},
                        }
                    },
                    "responses": _responses(201, {"type": "object"}, 400, 403, 404, 413, 429, 503),
                }
            },
            "/healthz": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"siteToken": {"type": "http", "scheme": "bearer"}},
        },
    }
