"""Discovery and the hook services: `GET /cds-services`, `POST /cds-services/{id}`."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g, request

from cds_hooks.cards import render_response
from cds_hooks.errors import HttpError
from cds_hooks.prefetch import DeadlineMissed, fhir_server_policy, resolve_prefetch
from cds_hooks.validation import check_request
from cds_hooks.web import authenticate, json_response, read_json, state
from hofhir.adapters import metrics
from hofhir.fhir.read import from_hook_request

blueprint = Blueprint("hooks", __name__)


@blueprint.get("/cds-services")
def discovery() -> Response:
    authenticate()
    return json_response({"services": [s.discovery() for s in state().services.values()]})


def _base_url() -> str:
    return state().settings.public_url or request.host_url.rstrip("/")


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    s = state()
    service = s.services.get(service_id)
    if service is None:
        raise HttpError(404, f"no CDS service {service_id!r}; GET /cds-services lists them")
    g.service_id = service_id
    claims = authenticate()
    started = time.perf_counter()
    deadline = time.monotonic() + s.settings.deadline_ms / 1000
    body = check_request(read_json(), service.hook)
    g.hook_instance = body["hookInstance"]
    now: datetime = s.clock()
    try:
        prefetch = resolve_prefetch(
            body,
            s.knowledge,
            deadline,
            attempt_timeout_s=s.settings.fetch_timeout_ms / 1000,
            servers=fhir_server_policy(s.verifier.settings.issuers, claims, s.settings.fhir_servers),
            max_entries=s.settings.max_prefetch_entries,
        )
    except DeadlineMissed:
        return _missed(service_id, service.hook, started, "prefetch")
    fetched = time.perf_counter()
    inputs = from_hook_request(body, s.knowledge.terminology, prefetch)
    g.resources = {
        "seen": inputs.seen,
        "used": len(inputs.resources),
        "rejected": len(inputs.rejected),
        "dropped": len(inputs.dropped),  # elements left out of resources that were still used
    }
    remaining = deadline - time.monotonic()
    outcome = s.evaluator.run(inputs, now, max(0.0, remaining))
    g.path = outcome.path
    timings: dict[str, Any] = {
        "prefetchMs": round((fetched - started) * 1000, 2),
        "evaluateMs": round((time.perf_counter() - fetched) * 1000, 2),
    }
    g.timings = timings
    if outcome.evaluation is None:
        return _missed(service_id, service.hook, started, "evaluation")
    response = render_response(outcome.evaluation.guidance, _base_url())
    _remember_cards(service_id, response["cards"])
    for card in response["cards"]:
        metrics.CARDS.labels(topic=card["source"]["topic"]["code"], indicator=card["indicator"]).inc()
    g.cards = len(response["cards"])
    metrics.HOOK_LATENCY.labels(hook=service.hook).observe(time.perf_counter() - started)
    answer = json_response(response)
    answer.headers["X-Hofhir-Evaluated-By"] = outcome.path  # inline, worker, cache, worker-fallback-inline
    return answer


def _missed(service_id: str, hook: str, started: float, stage: str) -> Response:
    """Past the deadline: no cards (the EHR must not wait), and the miss is counted."""
    metrics.DEADLINE_MISSES.labels(service=service_id).inc()
    metrics.HOOK_LATENCY.labels(hook=hook).observe(time.perf_counter() - started)
    g.cards = 0
    g.path = f"deadline-missed-{stage}"
    return json_response({"cards": []})


def _remember_cards(service_id: str, cards: list[dict[str, Any]]) -> None:
    """Card uuid -> topic, so feedback (which names only the uuid) can be counted per topic."""
    s = state()
    for card in cards:
        topic = card["source"]["topic"]["code"]
        try:
            s.store.put(f"card:{service_id}:{card['uuid']}", topic, s.settings.card_index_ttl_s)
        except Exception:
            g.card_index_lost = True
