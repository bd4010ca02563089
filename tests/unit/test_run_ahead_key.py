"""The run-ahead cache key covers everything the order rules read, and nothing more."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cds_hooks.dispatch import WorkerEvaluator
from hofhir.fhir.read import ClinicalInput

NOW = datetime(2026, 11, 21, 19, 0, tzinfo=UTC)


def draft(rid: str, status: str = "draft") -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": rid, "status": status, "code": {"text": rid}}


def key(hook: str, drafts: list[dict[str, Any]], selections: list[str] | None = None) -> str:
    context: dict[str, Any] = {"patientId": "p1"} | ({"selections": selections} if selections is not None else {})
    inputs = ClinicalInput(
        hook=hook, patient={"resourceType": "Patient", "id": "p1"}, draft_orders=drafts, context=context
    )
    evaluator = object.__new__(WorkerEvaluator)  # the key needs no broker
    return evaluator.cache_key(inputs, NOW)


def test_a_draft_beside_the_selection_changes_the_key() -> None:
    """ho-rules 1.1 §5a: an NSAID drafted beside the selected THA changes the answer, so it changes the key."""
    alone = key("order-select", [draft("tha")], ["ServiceRequest/tha"])
    beside = key("order-select", [draft("tha"), draft("nsaid")], ["ServiceRequest/tha"])
    assert alone != beside


def test_order_sign_after_selecting_every_draft_shares_the_key() -> None:
    drafts = [draft("tha"), draft("nsaid")]
    assert key("order-select", drafts, ["ServiceRequest/tha", "ServiceRequest/nsaid"]) == key("order-sign", drafts)


def test_inactive_drafts_do_not_change_the_key() -> None:
    assert key("order-sign", [draft("tha")]) == key("order-sign", [draft("tha"), draft("old", "revoked")])
