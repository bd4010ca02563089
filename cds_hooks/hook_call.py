"""One hook call, from a checked request to the response body: the use case behind `POST /cds-services/{id}`.

deadline -> prefetch (fetched from fhirServer when absent) -> inputs -> evaluator (inline or a worker) ->
cards (their uuids carry what feedback needs: cds_hooks.card_ids) -> metrics. No HTTP here: the blueprint
authenticates, reads the body and turns the answer into a response; this module knows nothing of Flask.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cds_hooks.cards import render_response
from cds_hooks.prefetch import DeadlineMissed, fhir_server_policy, resolve_prefetch
from cds_hooks.services import CdsService
from cds_hooks.validation import check_request
from hofhir.adapters import metrics
from hofhir.fhir.read import from_hook_request

if TYPE_CHECKING:
    from cds_hooks.web import ServiceState


@dataclass
class HookAnswer:
    body: dict[str, Any]  # the CDS Hooks response body, {"cards": [...]}
    path: str  # inline, worker, cache, worker-fallback-inline, or deadline-missed-<stage>
    log: dict[str, Any] = field(default_factory=dict)  # fields for the request's log line (never PHI)

    @property
    def evaluated(self) -> bool:
        return not self.path.startswith("deadline-missed")


def run_hook_call(
    s: ServiceState,
    service: CdsService,
    request_body: Any,
    base_url: str,
    started: float | None = None,
    *,
    claims: Mapping[str, Any] | None = None,
) -> HookAnswer:
    """Answer one hook call within the service's deadline (counted from `started`, a perf_counter time).

    `claims` are the caller's verified JWT claims ({} or None with authentication off): their issuer decides
    which fhirServer may be fetched from. Raises HttpError for a request that breaks the CDS Hooks contract
    or its limits (the blueprint answers 4xx).
    """
    started = time.perf_counter() if started is None else started
    deadline = time.monotonic() + s.settings.deadline_ms / 1000 - (time.perf_counter() - started)
    body = check_request(request_body, service.hook)
    log: dict[str, Any] = {"hook_instance": body["hookInstance"]}
    now = s.clock()
    try:
        prefetch = resolve_prefetch(
            body,
            s.knowledge,
            deadline,
            attempt_timeout_s=s.settings.fetch_timeout_ms / 1000,
            servers=fhir_server_policy(s.verifier.settings.issuers, claims or {}, s.settings.fhir_servers),
            max_entries=s.settings.max_prefetch_entries,
        )
    except DeadlineMissed:
        return _missed(service, started, "prefetch", log)
    fetched = time.perf_counter()
    inputs = from_hook_request(body, s.knowledge.terminology, prefetch)
    log["resources"] = {
        "seen": inputs.seen,
        "used": len(inputs.resources),
        "rejected": len(inputs.rejected),
        "dropped": len(inputs.dropped),  # elements left out of resources that were still used
    }
    outcome = s.evaluator.run(inputs, now, max(0.0, deadline - time.monotonic()))
    log["path"] = outcome.path
    log["timings"] = {
        "prefetchMs": round((fetched - started) * 1000, 2),
        "evaluateMs": round((time.perf_counter() - fetched) * 1000, 2),
    }
    if outcome.evaluation is None:
        return _missed(service, started, "evaluation", log)
    response = render_response(outcome.evaluation.guidance, base_url, service_id=service.id, issued=now)
    cards: list[dict[str, Any]] = response["cards"]
    for card in cards:
        metrics.child(metrics.CARDS, card["source"]["topic"]["code"], card["indicator"]).inc()
    log["cards"] = len(cards)
    metrics.child(metrics.HOOK_LATENCY, service.hook).observe(time.perf_counter() - started)
    return HookAnswer(response, outcome.path, log)


def _missed(service: CdsService, started: float, stage: str, log: dict[str, Any]) -> HookAnswer:
    """Past the deadline: no cards (the EHR must not wait), and the miss is counted."""
    metrics.DEADLINE_MISSES.labels(service=service.id).inc()
    metrics.HOOK_LATENCY.labels(hook=service.hook).observe(time.perf_counter() - started)
    path = f"deadline-missed-{stage}"
    return HookAnswer({"cards": []}, path, log | {"cards": 0, "path": path})
