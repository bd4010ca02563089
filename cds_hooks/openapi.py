"""The OpenAPI 3.1 document of every endpoint (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from hofhir import __version__

OO = {"$ref": "#/components/schemas/OperationOutcome"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed or invalid request",
        401: "Missing or invalid JWT (no detail)",
        404: "Unknown service",
        412: "Required prefetch data cannot be had",
        413: "Body too large",
        415: "Not JSON",
        503: "Temporarily unavailable",
    }
    out: dict[str, Any] = {}
    for code in codes:
        if code == 401:
            out["401"] = {"description": text[401]}
        else:
            out[str(code)] = {"description": text[code], "content": {"application/fhir+json": {"schema": OO}}}
    return out


def document() -> dict[str, Any]:
    json_obj = {"type": "object"}
    hook_errors = _errors(400, 401, 404, 412, 413, 415)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hofhir CDS Hooks service",
            "version": __version__,
            "description": "Heterotopic ossification guidance over CDS Hooks 2.0.1 and FHIR R4.",
        },
        "components": {
            "securitySchemes": {"cdsHooksJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "OperationOutcome": {
                    "type": "object",
                    "required": ["resourceType", "issue"],
                    "properties": {"resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array"}},
                },
                "Card": {
                    "type": "object",
                    "required": ["uuid", "summary", "indicator", "source"],
                    "properties": {
                        "uuid": {"type": "string"},
                        "summary": {"type": "string", "maxLength": 139},
                        "indicator": {"enum": ["info", "warning", "critical"]},
                        "detail": {"type": "string"},
                        "source": {"type": "object", "required": ["label"]},
                        "suggestions": {"type": "array"},
                        "selectionBehavior": {"enum": ["at-most-one", "any"]},
                        "overrideReasons": {"type": "array"},
                        "links": {"type": "array"},
                        "extension": {"type": "object"},
                    },
                },
                "CdsResponse": {
                    "type": "object",
                    "required": ["cards"],
                    "properties": {"cards": {"type": "array", "items": {"$ref": "#/components/schemas/Card"}}},
                },
                "CdsRequest": {
                    "type": "object",
                    "required": ["hook", "hookInstance", "context"],
                    "properties": {
                        "hook": {"type": "string"},
                        "hookInstance": {"type": "string"},
                        "fhirServer": {"type": "string", "format": "uri"},
                        "fhirAuthorization": json_obj,
                        "context": json_obj,
                        "prefetch": json_obj,
                    },
                },
                "Feedback": {"type": "object", "required": ["feedback"], "properties": {"feedback": {"type": "array"}}},
            },
        },
        "security": [{"cdsHooksJwt": []}],
        "paths": {
            "/cds-services": {
                "get": {
                    "summary": "Discovery: the CDS services and their prefetch templates",
                    "responses": {
                        "200": {"description": "services", "content": {"application/json": {"schema": json_obj}}},
                        **_errors(401),
                    },
                }
            },
            "/cds-services/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "post": {
                    "summary": "Call a CDS service (a hook)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CdsRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "cards",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CdsResponse"}}},
                        },
                        **hook_errors,
                    },
                },
            },
            "/cds-services/{id}/feedback": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "post": {
                    "summary": "Feedback on cards (accepted / overridden)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Feedback"}}},
                    },
                    "responses": {"200": {"description": "recorded"}, **_errors(400, 401, 404, 413, 415)},
                },
            },
            "/feedback": {
                "get": {
                    "summary": "Feedback counts per card topic",
                    "responses": {"200": {"description": "counts"}, **_errors(401)},
                }
            },
            "/fhir/notifications": {
                "post": {
                    "summary": "FHIR Subscription notification (R4 rest-hook, Backport IG, R4B/R5)",
                    "security": [],
                    "requestBody": {"content": {"application/fhir+json": {"schema": json_obj}}},
                    "responses": {
                        "200": {"description": "accepted"},
                        "202": {"description": "queued"},
                        **_errors(400, 401, 413, 415),
                    },
                }
            },
            "/fhir/notifications/{type}/{id}": {
                "parameters": [
                    {"name": "type", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "put": {
                    "summary": "R4 rest-hook with payload: the server PUTs the resource",
                    "security": [],
                    "requestBody": {"content": {"application/fhir+json": {"schema": json_obj}}},
                    "responses": {
                        "200": {"description": "accepted"},
                        "202": {"description": "queued"},
                        **_errors(400, 401, 413, 415),
                    },
                },
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness (process only)",
                    "security": [],
                    "responses": {"200": {"description": "ok"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness (broker check, cached)",
                    "security": [],
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [],
                    "responses": {"200": {"description": "text exposition"}},
                }
            },
            "/rules": {
                "get": {
                    "summary": "The rules catalogue (JSON, or HTML for browsers)",
                    "security": [],
                    "responses": {"200": {"description": "catalogue"}},
                }
            },
            "/": {"get": {"summary": "Demo page", "security": [], "responses": {"200": {"description": "HTML"}}}},
            "/openapi.json": {
                "get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI"}}}
            },
        },
    }
