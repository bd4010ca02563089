"""The preview behind `GET /`: any input (example, CDS Hooks request, Bundle, NDJSON) -> cards + timeline.

It evaluates in this process, as of a chosen day, through the same steps as a hook call (request checks,
prefetch resolution, evaluation, card rendering with uuids that feedback counts by), and adds what an
EHR would show around the cards: the patient banner and the HO timeline.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

import orjson
from flask import request

from cds_hooks import examples
from cds_hooks.cards import render_response
from cds_hooks.errors import HttpError
from cds_hooks.prefetch import DeadlineMissed, resolve_prefetch
from cds_hooks.render_html import cards_html
from cds_hooks.timeline_svg import render
from cds_hooks.validation import check_request
from cds_hooks.web import ServiceState, authenticate, read_json
from hofhir.clinical.evaluate import SUPPORTED_HOOKS, chart_facts, evaluate
from hofhir.clinical.timeline import build_timeline, quiet_reason
from hofhir.fhir.read import InputError, from_hook_request

PREFETCH_BUDGET_S = 5.0  # the preview may wait for a FHIR server longer than an EHR would


def examples_listing(s: ServiceState) -> dict[str, Any]:
    meta = examples.index()
    services = {svc.hook: sid for sid, svc in s.services.items()}
    return {
        "auth": s.settings.auth,
        "examples": [{**e, "service": services.get(e["hook"])} for e in meta["examples"]],
    }


def parse_input(text: str) -> dict[str, Any]:
    """A CDS Hooks request from pasted text: a request, a FHIR Bundle or resource, or NDJSON lines."""
    text = text.strip()
    if not text:
        raise HttpError(
            400, "nothing to evaluate: paste a CDS Hooks request, a FHIR Bundle or NDJSON, or pick an example"
        )
    try:
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError as first:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            raise HttpError(400, f"not JSON: {first}") from first
        data = []
        for n, line in enumerate(lines, 1):
            try:
                data.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise HttpError(400, f"NDJSON line {n} is not JSON: {exc}") from exc
    if isinstance(data, list):
        resources = [r for r in data if isinstance(r, dict)]
        if len(resources) != len(data) or not all(isinstance(r.get("resourceType"), str) for r in resources):
            raise HttpError(400, "every NDJSON line must be a FHIR resource (an object with a resourceType)")
        return examples.request_from_resources(resources)
    if not isinstance(data, dict):
        raise HttpError(400, "expected a JSON object: a CDS Hooks request, a FHIR Bundle or a FHIR resource")
    if "hook" in data and "resourceType" not in data:
        return data
    rtype = data.get("resourceType")
    if not isinstance(rtype, str):
        raise HttpError(400, "not a CDS Hooks request (no 'hook') and not FHIR (no 'resourceType')")
    if rtype == "Bundle":
        return examples.request_from_resources(examples.bundle_entries(data))
    return examples.request_from_resources([data])


def _as_of(value: Any, clock_now: datetime) -> datetime:
    if value in (None, ""):
        return clock_now
    try:
        day = date.fromisoformat(str(value))
    except ValueError as exc:
        raise HttpError(400, f"asOf {value!r} is not a date (YYYY-MM-DD)", "asOf") from exc
    return datetime.combine(day, clock_now.astimezone(UTC).timetz())


def _banner(req: dict[str, Any], now: datetime) -> dict[str, Any]:
    patient = (req.get("prefetch") or {}).get("patient")
    if not isinstance(patient, dict):
        return {"id": (req.get("context") or {}).get("patientId")}
    names = patient.get("name") or []
    name = ""
    if names and isinstance(names[0], dict):
        given = " ".join(str(g) for g in names[0].get("given") or [])
        name = f"{given} {names[0].get('family', '')}".strip()
    age = None
    try:
        born = date.fromisoformat(str(patient.get("birthDate")))
        age = now.year - born.year - ((now.month, now.day) < (born.month, born.day))
    except ValueError:
        pass
    return {
        "id": patient.get("id"),
        "name": name,
        "gender": patient.get("gender"),
        "birthDate": patient.get("birthDate"),
        "age": age,
    }


def evaluate_request(s: ServiceState, req: dict[str, Any], now: datetime, base_url: str | None) -> dict[str, Any]:
    """Evaluate one CDS Hooks request as of `now`: the answer, the card HTML and the timeline."""
    hook = req.get("hook")
    service_id = next((sid for sid, svc in s.services.items() if svc.hook == hook), None)
    if service_id is None:
        raise HttpError(
            400, f"no service answers the hook {hook!r}; hofhir answers {', '.join(SUPPORTED_HOOKS)}", "hook"
        )
    body = check_request(req, str(hook))
    try:
        prefetch = resolve_prefetch(body, s.knowledge, time.monotonic() + PREFETCH_BUDGET_S)
    except DeadlineMissed as exc:
        raise HttpError(503, "the FHIR server did not answer in time; paste the data as prefetch instead") from exc
    try:
        inputs = from_hook_request(body, s.knowledge.terminology, prefetch)
        evaluation = evaluate(inputs, now, s.knowledge)
    except InputError as exc:
        raise HttpError(400, str(exc)) from exc
    # Uuids feedback can count by, as a hook call's: issued at the wall clock, not at the as-of `now`.
    response = render_response(evaluation.guidance, base_url, service_id=service_id, issued=s.clock())
    timeline = build_timeline(chart_facts(inputs, s.knowledge, now), evaluation, s.knowledge)
    return {
        "service": service_id,
        "hook": hook,
        "now": now.isoformat(),
        "patient": _banner(body, now),
        "request": body,
        "response": response,
        "cardsHtml": cards_html(response["cards"], service_id),
        "quietReason": quiet_reason(evaluation, s.knowledge),
        "timeline": {"svg": render(timeline), "text": timeline.sentences(), "model": timeline.as_dict()},
        "rejected": evaluation.trace.get("rejected") or [],
    }


def run(s: ServiceState) -> dict[str, Any]:
    authenticate()
    body = read_json()
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be an object: {example | text, asOf}")
    clock_now = s.clock()
    if body.get("example"):
        req = examples.load(str(body["example"]), clock_now)
        if req is None:
            raise HttpError(404, f"no example {body['example']!r}; GET /preview/examples lists them", "example")
    else:
        req = parse_input(str(body.get("text") or ""))
    now = _as_of(body.get("asOf"), clock_now)
    base_url = s.settings.public_url or request.host_url.rstrip("/")
    return evaluate_request(s, req, now, base_url)
