"""Guidance -> CDS Hooks 2.0.1 Card JSON, and the spec's card invariants as a checker."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from hofhir.clinical.guidance import TOPIC_SYSTEM, Guidance

SOURCE_LABEL = "hofhir: heterotopic ossification guidance"
OVERRIDE_SYSTEM = "http://hofhir.org/fhir/CodeSystem/override-reason"
EXPLANATION = "org.hofhir.explanation"
INDICATORS = frozenset({"info", "warning", "critical"})
TOPICS = frozenset(
    {
        "ho-risk",
        "ho-surveillance",
        "ho-suspected",
        "dvt-differential",
        "ho-imaging",
        "ho-surgical-readiness",
        "ho-prophylaxis",
        "ho-rehabilitation",
        "ho-postoperative-rehab",
        "ho-education",
        "data-unreadable",
    }
)
FIXED_INDICATORS = {
    "ho-surveillance": "info",
    "ho-rehabilitation": "info",
    "ho-education": "info",
    "data-unreadable": "info",
    "ho-suspected": "warning",
    "dvt-differential": "warning",
}


def render_card(g: Guidance, base_url: str | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": g.summary,
        "indicator": g.indicator.value,
        "detail": g.detail,
        "source": {
            "label": SOURCE_LABEL,
            "topic": {"system": TOPIC_SYSTEM, "code": g.topic.value, "display": g.topic_display},
        },
    }
    if base_url:
        card["source"]["url"] = f"{base_url.rstrip('/')}/rules"
    if g.suggestions:
        card["suggestions"] = [
            {
                "label": s.label,
                "uuid": str(uuid.uuid4()),
                "actions": [{"type": "create", "description": s.description, "resource": s.resource}],
            }
            for s in g.suggestions
        ]
        card["selectionBehavior"] = "any"
    if g.override_reasons:
        card["overrideReasons"] = [
            {"code": o.code, "system": OVERRIDE_SYSTEM, "display": o.display} for o in g.override_reasons
        ]
    if base_url:
        card["links"] = [
            {
                "label": f"Why: the {g.topic_display} rules and their evidence",
                "url": f"{base_url.rstrip('/')}/rules#{g.topic.value}",
                "type": "absolute",
            }
        ]
    card["extension"] = {EXPLANATION: g.explanation()}
    return card


def render_response(guidance: Iterable[Guidance], base_url: str | None = None) -> dict[str, Any]:
    return {"cards": [render_card(g, base_url) for g in guidance]}


def card_problems(card: Any) -> list[str]:
    """Every CDS Hooks 2.0.1 card rule and ho-rules-v1 §1 contract item this card breaks (empty = valid)."""
    p: list[str] = []
    if not isinstance(card, dict):
        return ["card is not an object"]
    if not isinstance(card.get("uuid"), str) or not card["uuid"]:
        p.append("uuid missing")
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary or len(summary) >= 140:
        p.append("summary missing or not under 140 characters")
    if card.get("indicator") not in INDICATORS:
        p.append("indicator not info|warning|critical")
    if "detail" in card and (not isinstance(card["detail"], str) or "<" in card["detail"]):
        p.append("detail not markdown text without raw HTML")
    source = card.get("source")
    topic_code = None
    if not isinstance(source, dict) or not isinstance(source.get("label"), str) or not source["label"]:
        p.append("source.label missing")
    else:
        topic = source.get("topic")
        if (
            not isinstance(topic, dict)
            or topic.get("system") != TOPIC_SYSTEM
            or topic.get("code") not in TOPICS
            or not topic.get("display")
        ):
            p.append("source.topic not a card-topic Coding with a display")
        else:
            topic_code = topic["code"]
    suggestions = card.get("suggestions")
    if suggestions is not None:
        if not isinstance(suggestions, list) or not suggestions:
            p.append("suggestions not a non-empty list")
        elif card.get("selectionBehavior") not in ("at-most-one", "any"):
            p.append("selectionBehavior missing with suggestions")
        for s in suggestions if isinstance(suggestions, list) else []:
            if not isinstance(s, dict) or not isinstance(s.get("label"), str) or not s.get("label"):
                p.append("suggestion without label")
                continue
            for a in s.get("actions") or []:
                if a.get("type") not in ("create", "update", "delete") or not a.get("description"):
                    p.append("action without a valid type or description")
                if a.get("type") in ("create", "update") and not isinstance(a.get("resource"), dict):
                    p.append("create/update action without a resource")
    for o in card.get("overrideReasons") or []:
        if not isinstance(o, dict) or not o.get("display"):
            p.append("overrideReason without display")
    for link in card.get("links") or []:
        if (
            not isinstance(link, dict)
            or not link.get("label")
            or not link.get("url")
            or link.get("type") not in ("absolute", "smart")
        ):
            p.append("link without label, url or type absolute|smart")
        elif "appContext" in link and link.get("type") != "smart":
            p.append("appContext on a non-smart link")
    explanation = (card.get("extension") or {}).get(EXPLANATION)
    if not isinstance(explanation, dict):
        p.append("extension org.hofhir.explanation missing")
    else:
        rules = explanation.get("rules")
        # data-unreadable is about the data, not the patient: it cites no evidence.
        if not isinstance(rules, list) or (not rules and topic_code != "data-unreadable"):
            p.append("explanation.rules empty")
        if not isinstance(explanation.get("populations"), list):
            p.append("explanation.populations missing")
        if not explanation.get("knowledgeVersion"):
            p.append("explanation.knowledgeVersion missing")
        if topic_code == "ho-risk" and explanation.get("riskLevel") not in ("low", "moderate", "high"):
            p.append("ho-risk card without riskLevel")
        if topic_code == "ho-risk":
            want = "warning" if explanation.get("riskLevel") == "high" else "info"
            if card.get("indicator") != want:
                p.append(f"ho-risk indicator must be {want}")
    if topic_code in FIXED_INDICATORS and card.get("indicator") != FIXED_INDICATORS[topic_code]:
        p.append(f"{topic_code} indicator must be {FIXED_INDICATORS[topic_code]}")
    return p


def response_problems(body: Any) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get("cards"), list):
        return ["response has no cards list"]
    problems = [f"card {i}: {msg}" for i, card in enumerate(body["cards"]) for msg in card_problems(card)]
    topics = [((c.get("source") or {}).get("topic") or {}).get("code") for c in body["cards"] if isinstance(c, dict)]
    if len(topics) != len(set(topics)):
        problems.append("more than one card per topic")
    return problems
