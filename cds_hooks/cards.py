"""Guidance -> CDS Hooks 2.0.1 Card JSON (the contract checker the tests hold it to is tests/contract.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from hofhir.clinical.guidance import TOPIC_SYSTEM, Guidance

SOURCE_LABEL = "hofhir: heterotopic ossification guidance"
OVERRIDE_SYSTEM = "http://hofhir.org/fhir/CodeSystem/override-reason"
EXPLANATION = "org.hofhir.explanation"


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
