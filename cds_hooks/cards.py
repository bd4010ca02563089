"""Guidance -> CDS Hooks 2.0.1 Card JSON (the contract checker the tests hold it to is tests/contract.py)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cds_hooks import card_ids
from hofhir.clinical.guidance import TOPIC_SYSTEM, Guidance

SOURCE_LABEL = "hofhir: heterotopic ossification guidance"
OVERRIDE_SYSTEM = "http://hofhir.org/fhir/CodeSystem/override-reason"
EXPLANATION = "org.hofhir.explanation"


def new_uuid() -> str:
    """A random (version 4) UUID in its text form: what new_uuid() gives, without building the UUID
    object (a card has one or more per call, and the object is never used)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def render_card(g: Guidance, base_url: str | None = None, card_uuid: str | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {
        "uuid": card_uuid or new_uuid(),
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
                "uuid": new_uuid(),
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


def render_response(
    guidance: Iterable[Guidance],
    base_url: str | None = None,
    *,
    service_id: str | None = None,
    issued: datetime | None = None,
) -> dict[str, Any]:
    """The response body. Cards a service shows (`service_id`, `issued` the wall clock) get uuids that feedback
    can read the topic from (cds_hooks.card_ids); without them (CLI, examples) plain random ones."""
    if service_id is None or issued is None:
        return {"cards": [render_card(g, base_url) for g in guidance]}
    return {"cards": [render_card(g, base_url, card_ids.issue(service_id, g.topic.value, issued)) for g in guidance]}
