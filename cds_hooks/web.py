"""What the blueprints share: the service state, JSON in and out, authentication of the call."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Flask, Response, current_app, request

from cds_hooks.auth import Verifier
from cds_hooks.dispatch import Evaluator
from cds_hooks.errors import HttpError, operation_outcome
from cds_hooks.services import CdsService
from cds_hooks.settings import Settings
from hofhir.adapters.store import Store
from hofhir.knowledge import Knowledge

JSON_TYPES = ("application/json", "application/fhir+json")


@dataclass
class ServiceState:
    settings: Settings
    knowledge: Knowledge
    store: Store
    verifier: Verifier
    evaluator: Evaluator
    services: dict[str, CdsService] = field(default_factory=dict)  # the catalogue, built once from the knowledge
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    ready_cache: dict[str, Any] = field(default_factory=dict)


def state() -> ServiceState:
    found: ServiceState = current_app.extensions["hofhir"]
    return found


def json_response(body: Any, status: int = 200, content_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status=status, content_type=content_type)


def outcome_response(status: int, message: str, expression: str | None = None) -> Response:
    return json_response(operation_outcome(status, message, expression), status, "application/fhir+json")


def read_body() -> bytes:
    """The request body, or HttpError(413) past HOFHIR_MAX_BODY_BYTES (chunked bodies too)."""
    # Read at most the limit ourselves: a chunked body has no Content-Length for werkzeug to refuse, and
    # werkzeug would cut it at the limit (a 400 for malformed JSON instead of the 413 it deserves).
    limit = state().settings.max_body_bytes
    chunks: list[bytes] = []
    size = 0
    while size <= limit:  # a chunked stream may hand over less than asked: read until its end
        chunk = request.stream.read(min(1 << 16, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise HttpError(413, f"request body over {limit} bytes")
    return b"".join(chunks)


def read_json() -> Any:
    """The request body as JSON: 415 for another content type, 400 for malformed JSON."""
    mimetype = (request.mimetype or "").lower()
    if mimetype not in JSON_TYPES:
        raise HttpError(415, f"Content-Type must be application/json (got {request.mimetype or 'none'})")
    raw = read_body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"malformed JSON: {exc}") from exc


def authenticate() -> dict[str, Any]:
    """Check the JWT against the exact URL called (aud); raises AuthError -> bare 401."""
    s = state()
    verifier = s.verifier
    if not verifier.settings.enabled:
        return {}  # authentication off: no audience to work out (werkzeug rebuilds the URL on every call)
    # Behind a proxy the EHR signs the public URL: HOFHIR_PUBLIC_URL + the path, not what Flask sees.
    public = s.settings.public_url
    audience = public.rstrip("/") + request.path if public else request.base_url
    return verifier.authenticate(request.headers.get("Authorization"), audience)


def state_of(app: Flask) -> ServiceState:
    found: ServiceState = app.extensions["hofhir"]
    return found
