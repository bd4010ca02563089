"""`POST /cds-services/{id}/feedback` (CDS Hooks 2.0.1) and the counts it feeds (`GET /feedback`)."""

from __future__ import annotations

from flask import Blueprint, Response, g

from cds_hooks.errors import HttpError
from cds_hooks.validation import check_feedback
from cds_hooks.web import authenticate, json_response, read_json, state
from hofhir.adapters import metrics
from hofhir.knowledge import Knowledge

blueprint = Blueprint("feedback", __name__)
COUNTS_KEY = "feedback:counts"


def reason_label(reason: str, k: Knowledge) -> str:
    """A bounded metric label: an override-reason code the service offers, "none"/"-", or "other"."""
    if not reason:
        return "-"
    if reason == "none" or reason in k.cards["override_reasons"]:
        return reason
    return "other"


@blueprint.post("/cds-services/<service_id>/feedback")
def receive(service_id: str) -> Response:
    s = state()
    if service_id not in s.services:
        raise HttpError(404, f"no CDS service {service_id!r}")
    g.service_id = f"{service_id}/feedback"
    authenticate()
    items = check_feedback(read_json())
    for item in items:
        topic = s.store.get(f"card:{service_id}:{item['card']}") or "unknown-card"
        outcome = item["outcome"]
        reason = ""
        if outcome == "overridden":
            coding = (item.get("overrideReason") or {}).get("reason") or {}
            code = coding.get("code") if isinstance(coding, dict) else None
            reason = code[:64] if isinstance(code, str) and code.strip() else "none"
        s.store.incr(COUNTS_KEY, f"{topic}|{outcome}|{reason}")
        metrics.FEEDBACK.labels(topic=topic, outcome=outcome, reason=reason_label(reason, s.knowledge)).inc()
    g.cards = len(items)
    return Response(status=200)


@blueprint.get("/feedback")
def counts() -> Response:
    """Accepted/overridden counts per card topic and override reason, for the knowledge team."""
    authenticate()
    raw = state().store.counts(COUNTS_KEY)
    topics: dict[str, dict[str, object]] = {}
    for key, n in sorted(raw.items()):
        topic, outcome, reason = ([*key.split("|"), "", ""])[:3]
        entry = topics.setdefault(topic, {"accepted": 0, "overridden": 0, "overrideReasons": {}})
        entry[outcome] = int(entry.get(outcome, 0)) + n  # type: ignore[call-overload]
        if outcome == "overridden":
            reasons = entry["overrideReasons"]
            assert isinstance(reasons, dict)
            reasons[reason] = reasons.get(reason, 0) + n
    return json_response({"topics": topics})
