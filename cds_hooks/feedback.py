"""`POST /cds-services/{id}/feedback` (CDS Hooks 2.0.1) and the counts it feeds (`GET /feedback`)."""

from __future__ import annotations

from flask import Blueprint, Response, g

from cds_hooks import card_ids
from cds_hooks.errors import HttpError
from cds_hooks.validation import check_feedback
from cds_hooks.web import authenticate, json_response, read_json, state
from hofhir.adapters import metrics
from hofhir.knowledge import Knowledge

blueprint = Blueprint("feedback", __name__)
COUNTS_KEY = "feedback:counts"


def card_key(service_id: str, card_uuid: str) -> str:
    """Where earlier versions indexed a card's topic (random uuids): read here for those cards only."""
    return f"card:{service_id}:{card_uuid}"


def offered_reasons(k: Knowledge) -> frozenset[str]:
    """The override-reason codes cards can offer (cards.toml [override_reasons])."""
    return frozenset(str(code) for code in k.cards.get("override_reasons", {}))


@blueprint.post("/cds-services/<service_id>/feedback")
def receive(service_id: str) -> Response:
    s = state()
    authenticate()  # before the lookup: unknown ids answer 401 without a valid token, as the hook calls do
    if service_id not in s.services:
        raise HttpError(404, f"no CDS service {service_id!r}")
    g.service_id = f"{service_id}/feedback"
    items = check_feedback(read_json())
    now = s.clock()
    for item in items:
        topic = card_ids.topic_of(service_id, item["card"], now, s.settings.card_index_ttl_s)
        if topic is None and not card_ids.ours(item["card"]):
            # A card from before uuids carried their topic: its index entry (Redis) lives out its TTL.
            topic = s.store.get(card_key(service_id, item["card"]))
        topic = topic or "unknown-card"
        outcome = item["outcome"]
        reason = ""
        if outcome == "overridden":
            coding = (item.get("overrideReason") or {}).get("reason") or {}
            code = coding.get("code") if isinstance(coding, dict) else None
            # Only the codes the service offers become label values (and hash fields): a client cannot
            # grow /metrics or the counts without bound by sending made-up codes.
            if not code:
                reason = "none"
            else:
                reason = code if isinstance(code, str) and code in offered_reasons(s.knowledge) else "other"
        s.store.incr(COUNTS_KEY, f"{topic}|{outcome}|{reason}")
        metrics.FEEDBACK.labels(topic=topic, outcome=outcome, reason=reason or "-").inc()
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
