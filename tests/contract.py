"""The card contract: every CDS Hooks 2.0.1 card rule and ho-rules-v1 §1 item a response must keep.

The tests hold every response to it (vignettes, samples, property tests, the HTTP contract); the service
itself does not ship it. Topics and indicators come from the model, so a new topic is known here at once.
"""

from __future__ import annotations

from typing import Any

from cds_hooks.cards import EXPLANATION
from hofhir.clinical.guidance import TOPIC_SYSTEM
from hofhir.clinical.model import Indicator, Topic

INDICATORS = frozenset(i.value for i in Indicator)
TOPICS = frozenset(t.value for t in Topic)
# §1: these topics always carry the same indicator.
FIXED_INDICATORS = {
    Topic.HO_SURVEILLANCE.value: "info",
    Topic.HO_REHABILITATION.value: "info",
    Topic.HO_EDUCATION.value: "info",
    Topic.DATA_UNREADABLE.value: "info",
    Topic.HO_SUSPECTED.value: "warning",
    Topic.DVT_DIFFERENTIAL.value: "warning",
}


def _basics(card: dict[str, Any]) -> list[str]:
    p = []
    if not isinstance(card.get("uuid"), str) or not card["uuid"]:
        p.append("uuid missing")
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary or len(summary) >= 140:
        p.append("summary missing or not under 140 characters")
    if card.get("indicator") not in INDICATORS:
        p.append("indicator not info|warning|critical")
    if "detail" in card and (not isinstance(card["detail"], str) or "<" in card["detail"]):
        p.append("detail not markdown text without raw HTML")
    return p


def _topic(card: dict[str, Any]) -> tuple[str | None, list[str]]:
    source = card.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("label"), str) or not source["label"]:
        return None, ["source.label missing"]
    topic = source.get("topic")
    if (
        not isinstance(topic, dict)
        or topic.get("system") != TOPIC_SYSTEM
        or topic.get("code") not in TOPICS
        or not topic.get("display")
    ):
        return None, ["source.topic not a card-topic Coding with a display"]
    return str(topic["code"]), []


def _suggestions(card: dict[str, Any]) -> list[str]:
    suggestions = card.get("suggestions")
    if suggestions is None:
        return []
    p = []
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
    return p


def _links_and_overrides(card: dict[str, Any]) -> list[str]:
    p = [
        "overrideReason without display"
        for o in card.get("overrideReasons") or []
        if not isinstance(o, dict) or not o.get("display")
    ]
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
    return p


def _explanation(card: dict[str, Any], topic_code: str | None) -> list[str]:
    explanation = (card.get("extension") or {}).get(EXPLANATION)
    if not isinstance(explanation, dict):
        return ["extension org.hofhir.explanation missing"]
    p = []
    rules = explanation.get("rules")
    # data-unreadable is about the data, not the patient: it cites no evidence.
    if not isinstance(rules, list) or (not rules and topic_code != "data-unreadable"):
        p.append("explanation.rules empty")
    if not isinstance(explanation.get("populations"), list):
        p.append("explanation.populations missing")
    if not explanation.get("knowledgeVersion"):
        p.append("explanation.knowledgeVersion missing")
    if topic_code == Topic.HO_RISK.value:
        if explanation.get("riskLevel") not in ("low", "moderate", "high"):
            p.append("ho-risk card without riskLevel")
        want = "warning" if explanation.get("riskLevel") == "high" else "info"
        if card.get("indicator") != want:
            p.append(f"ho-risk indicator must be {want}")
    return p


def card_problems(card: Any) -> list[str]:
    """Every CDS Hooks 2.0.1 card rule and ho-rules-v1 §1 contract item this card breaks (empty = valid)."""
    if not isinstance(card, dict):
        return ["card is not an object"]
    topic_code, topic_problems = _topic(card)
    p = _basics(card) + topic_problems + _suggestions(card) + _links_and_overrides(card)
    p += _explanation(card, topic_code)
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
