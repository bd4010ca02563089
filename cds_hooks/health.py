"""`/healthz` (the process answers), `/readyz` (it can do its work: broker reachable when configured), `/metrics`."""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from cds_hooks.web import json_response, state
from hofhir.adapters import metrics

blueprint = Blueprint("health", __name__)
READY_CACHE_S = 5.0


@blueprint.get("/healthz")
def healthz() -> Response:
    # Liveness: never touches Redis, so a broker outage does not restart healthy web pods.
    return json_response({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    s = state()
    cache = s.ready_cache
    now = time.monotonic()
    if cache.get("at", -1e9) + READY_CACHE_S > now:
        ok, detail = cache["ok"], cache["detail"]
    else:
        ok, detail = True, "embedded mode"
        if s.settings.redis_url:
            if s.store.ping():  # the process's one Redis adapter (the broker is the same Redis)
                detail = "broker reachable"
            else:
                # Hooks still answer (inline fallback), so this is reported, not fatal, unless asked strictly.
                ok, detail = s.settings.deadline_fallback == "inline", "broker unreachable; evaluating inline"
        cache.update(at=now, ok=ok, detail=detail)
    return json_response({"status": "ready" if ok else "not ready", "detail": detail}, 200 if ok else 503)


@blueprint.get("/metrics")
def metrics_endpoint() -> Response:
    body, content_type = metrics.render_metrics(request.headers.get("Accept"))
    return Response(body, content_type=content_type)
