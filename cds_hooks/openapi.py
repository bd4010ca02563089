"""The OpenAPI 3.1 document of every endpoint (served at /openapi.json)."""

from __future__ import annotations

import functools
from datetime import datetime
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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], example: Any = None, media: str = "application/json") -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {media: content}


CODING = {
    "type": "object",
    "properties": {"system": {"type": "string"}, "code": {"type": "string"}, "display": {"type": "string"}},
}
SCHEMAS: dict[str, Any] = {
    "OperationOutcome": {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "issue": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["severity", "code"],
                    "properties": {
                        "severity": {"enum": ["fatal", "error", "warning", "information"]},
                        "code": {"type": "string"},
                        "diagnostics": {"type": "string"},
                        "expression": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    },
    "Coding": CODING,
    "Card": {
        "type": "object",
        "required": ["uuid", "summary", "indicator", "source"],
        "properties": {
            "uuid": {"type": "string", "format": "uuid"},
            "summary": {"type": "string", "maxLength": 139},
            "indicator": {"enum": ["info", "warning", "critical"]},
            "detail": {"type": "string", "description": "GitHub-flavoured markdown"},
            "source": {
                "type": "object",
                "required": ["label"],
                "properties": {
                    "label": {"type": "string"},
                    "url": {"type": "string", "format": "uri"},
                    "icon": {"type": "string", "format": "uri"},
                    "topic": CODING,
                },
            },
            "suggestions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["label"],
                    "properties": {
                        "label": {"type": "string"},
                        "uuid": {"type": "string"},
                        "isRecommended": {"type": "boolean"},
                        "actions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["type", "description"],
                                "properties": {
                                    "type": {"enum": ["create", "update", "delete"]},
                                    "description": {"type": "string"},
                                    "resource": {"type": "object", "required": ["resourceType"]},
                                },
                            },
                        },
                    },
                },
            },
            "selectionBehavior": {"enum": ["at-most-one", "any"]},
            "overrideReasons": {"type": "array", "items": CODING},
            "links": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["label", "url", "type"],
                    "properties": {
                        "label": {"type": "string"},
                        "url": {"type": "string", "format": "uri"},
                        "type": {"enum": ["absolute", "smart"]},
                        "appContext": {"type": "string"},
                    },
                },
            },
            "extension": {"type": "object"},
        },
    },
    "CdsResponse": {
        "type": "object",
        "required": ["cards"],
        "properties": {"cards": {"type": "array", "items": _ref("Card")}, "systemActions": {"type": "array"}},
    },
    "CdsRequest": {
        "type": "object",
        "required": ["hook", "hookInstance", "context"],
        "properties": {
            "hook": {"type": "string"},
            "hookInstance": {"type": "string"},
            "fhirServer": {"type": "string", "format": "uri"},
            "fhirAuthorization": {"type": "object"},
            "context": {"type": "object"},
            "prefetch": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
        },
    },
    "CdsService": {
        "type": "object",
        "required": ["hook", "id", "description"],
        "properties": {
            "hook": {"type": "string"},
            "id": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "prefetch": {"type": "object", "additionalProperties": {"type": "string"}},
            "usageRequirements": {"type": "string"},
        },
    },
    "Discovery": {
        "type": "object",
        "required": ["services"],
        "properties": {"services": {"type": "array", "items": _ref("CdsService")}},
    },
    "Feedback": {
        "type": "object",
        "required": ["feedback"],
        "properties": {
            "feedback": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["card", "outcome", "outcomeTimestamp"],
                    "properties": {
                        "card": {"type": "string"},
                        "outcome": {"enum": ["accepted", "overridden"]},
                        "outcomeTimestamp": {"type": "string", "format": "date-time"},
                        "acceptedSuggestions": {
                            "type": "array",
                            "items": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
                        },
                        "overrideReason": {
                            "type": "object",
                            "properties": {"reason": CODING, "userComment": {"type": "string"}},
                        },
                    },
                },
            }
        },
    },
    "FeedbackCounts": {
        "type": "object",
        "required": ["topics"],
        "properties": {
            "topics": {
                "type": "object",
                "description": "per card topic (or unknown-card)",
                "additionalProperties": {
                    "type": "object",
                    "required": ["accepted", "overridden", "overrideReasons"],
                    "properties": {
                        "accepted": {"type": "integer", "minimum": 0},
                        "overridden": {"type": "integer", "minimum": 0},
                        "overrideReasons": {"type": "object", "additionalProperties": {"type": "integer"}},
                    },
                },
            }
        },
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    "Readiness": {
        "type": "object",
        "required": ["status", "detail"],
        "properties": {"status": {"enum": ["ready", "not ready"]}, "detail": {"type": "string"}},
    },
    "Rules": {
        "type": "object",
        "required": ["knowledgeVersion", "topics", "evidence"],
        "properties": {
            "knowledgeVersion": {"type": "string"},
            "topics": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "display", "logic", "cites"],
                    "properties": {
                        "code": {"type": "string"},
                        "display": {"type": "string"},
                        "logic": {"type": "string"},
                        "cites": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "evidence": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "statement", "source"],
                    "properties": {
                        "id": {"type": "string"},
                        "statement": {"type": "string"},
                        "source": {"type": "string"},
                        "contested": {"type": "boolean"},
                        "quotes": {"type": "array", "items": {"type": "string"}},
                        "text": {"type": "string"},
                    },
                },
            },
            "parameters": {"type": "object"},
        },
    },
    "NotificationReceipt": {
        "type": "object",
        "required": ["kind", "queued", "duplicates", "unresolved"],
        "properties": {
            "kind": {"type": "string"},
            "form": {"type": ["string", "null"]},
            "queued": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "unresolved": {"type": "integer", "minimum": 0},
        },
    },
    "PreviewRequest": {
        "type": "object",
        "properties": {
            "example": {"type": "string", "description": "a built-in example patient (GET /preview/examples)"},
            "text": {"type": "string", "description": "a CDS Hooks request, a FHIR Bundle or resource, or NDJSON"},
            "asOf": {"type": ["string", "null"], "format": "date", "description": "evaluate as of this day"},
        },
    },
    "Preview": {
        "type": "object",
        "required": ["service", "hook", "now", "request", "response", "cardsHtml", "timeline"],
        "properties": {
            "service": {"type": "string"},
            "hook": {"type": "string"},
            "now": {"type": "string", "format": "date-time"},
            "patient": {"type": "object"},
            "request": _ref("CdsRequest"),
            "response": _ref("CdsResponse"),
            "cardsHtml": {"type": "string"},
            "quietReason": {"type": ["string", "null"]},
            "timeline": {
                "type": "object",
                "required": ["svg", "text", "model"],
                "properties": {
                    "svg": {"type": "string"},
                    "text": {"type": "array", "items": {"type": "string"}},
                    "model": {"type": "object"},
                },
            },
            "rejected": {"type": "array"},
        },
    },
    "Examples": {
        "type": "object",
        "required": ["auth", "examples"],
        "properties": {
            "auth": {"type": "boolean"},
            "examples": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "title", "hook"],
                    "properties": {
                        "id": {"type": "string"},
                        "title": {"type": "string"},
                        "hook": {"type": "string"},
                        "file": {"type": "string"},
                        "service": {"type": ["string", "null"]},
                    },
                },
            },
        },
    },
}


@functools.lru_cache(maxsize=1)
def built_in_examples() -> tuple[dict[str, Any], dict[str, Any]]:
    """A request and its answer from the built-in SCI patient, evaluated at the moment it describes."""
    from cds_hooks import examples
    from cds_hooks.cards import render_response
    from hofhir.clinical.evaluate import evaluate
    from hofhir.fhir.read import from_hook_request
    from hofhir.knowledge import default_knowledge

    recorded = datetime.fromisoformat(examples.index()["recordedAt"])
    request = examples.load("ex-sci-hip", recorded)
    assert request is not None
    k = default_knowledge()
    evaluation = evaluate(from_hook_request(request, k.terminology, request["prefetch"]), recorded, k)
    return request, render_response(evaluation.guidance, "https://hofhir.example.org")


def document(base_url: str | None = None) -> dict[str, Any]:
    hook_errors = _errors(400, 401, 404, 412, 413, 415)
    request_example, response_example = built_in_examples()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hofhir CDS Hooks service",
            "version": __version__,
            "description": "Heterotopic ossification guidance over CDS Hooks 2.0.1 and FHIR R4.",
        },
        "servers": [{"url": base_url or "/", "description": "this service"}],
        "components": {
            "securitySchemes": {"cdsHooksJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": SCHEMAS,
        },
        "security": [{"cdsHooksJwt": []}],
        "paths": {
            "/cds-services": {
                "get": {
                    "summary": "Discovery: the CDS services and their prefetch templates",
                    "responses": {
                        "200": {
                            "description": "services",
                            "content": _json(_ref("Discovery")),
                        },
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
                        "content": _json(_ref("CdsRequest"), request_example),
                    },
                    "responses": {
                        "200": {
                            "description": "cards",
                            "content": _json(_ref("CdsResponse"), response_example),
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
                    "responses": {
                        "200": {"description": "counts", "content": _json(_ref("FeedbackCounts"))},
                        **_errors(401),
                    },
                }
            },
            "/fhir/notifications": {
                "post": {
                    "summary": "FHIR Subscription notification (R4 rest-hook, Backport IG, R4B/R5)",
                    "security": [],
                    "requestBody": {
                        "content": {
                            "application/fhir+json": {"schema": {"type": "object", "required": ["resourceType"]}}
                        }
                    },
                    "responses": {
                        "200": {"description": "accepted", "content": _json(_ref("NotificationReceipt"))},
                        "202": {"description": "queued", "content": _json(_ref("NotificationReceipt"))},
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
                    "requestBody": {
                        "content": {
                            "application/fhir+json": {"schema": {"type": "object", "required": ["resourceType"]}}
                        }
                    },
                    "responses": {
                        "200": {"description": "accepted", "content": _json(_ref("NotificationReceipt"))},
                        "202": {"description": "queued", "content": _json(_ref("NotificationReceipt"))},
                        **_errors(400, 401, 413, 415),
                    },
                },
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness (process only)",
                    "security": [],
                    "responses": {"200": {"description": "ok", "content": _json(_ref("Health"))}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness (broker check, cached)",
                    "security": [],
                    "responses": {
                        "200": {"description": "ready", "content": _json(_ref("Readiness"))},
                        "503": {"description": "not ready", "content": _json(_ref("Readiness"))},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/rules": {
                "get": {
                    "summary": "The rules catalogue (JSON, or HTML for browsers)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "catalogue",
                            "content": {**_json(_ref("Rules")), "text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "EHR-style preview: example patients, cards and the HO timeline",
                    "security": [],
                    "responses": {
                        "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
                    },
                }
            },
            "/ui/app.js": {
                "get": {
                    "summary": "The preview page's script",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "JavaScript",
                            "content": {"text/javascript": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/ui/style.css": {
                "get": {
                    "summary": "The preview page's and the HTML report's style sheet",
                    "security": [],
                    "responses": {
                        "200": {"description": "CSS", "content": {"text/css": {"schema": {"type": "string"}}}}
                    },
                }
            },
            "/preview/examples": {
                "get": {
                    "summary": "The built-in example patients",
                    "security": [],
                    "responses": {"200": {"description": "examples", "content": _json(_ref("Examples"))}},
                }
            },
            "/preview": {
                "post": {
                    "summary": "Evaluate an example, request, Bundle or NDJSON as of a day: cards, card HTML, timeline",
                    "requestBody": {
                        "required": True,
                        "content": _json(_ref("PreviewRequest"), {"example": "ex-sci-hip", "asOf": None}),
                    },
                    "responses": {
                        "200": {"description": "preview", "content": _json(_ref("Preview"))},
                        **_errors(400, 401, 404, 412, 413, 415),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI", "content": _json({"type": "object"})}},
                }
            },
        },
    }
