"""Subscription work: read a patient's data from the FHIR server, and write the result back.

One RiskAssessment per patient, found by an identifier hofhir owns and updated in place (never a
duplicate), and one DetectedIssue per patient while HO is suspected or excision readiness is unmet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hofhir.adapters.fhirclient import FhirClient
from hofhir.clinical.evaluate import Evaluation
from hofhir.clinical.model import Topic
from hofhir.fhir.models import build
from hofhir.fhir.read import ClinicalInput, select
from hofhir.knowledge import Knowledge

IDENTIFIER_SYSTEM = "http://hofhir.org/fhir/sid/assessment"
RISK_SYSTEM = "http://terminology.hl7.org/CodeSystem/risk-probability"
RISK_CODES = {
    "low": ("low", "Low likelihood"),
    "moderate": ("moderate", "Moderate likelihood"),
    "high": ("high", "High likelihood"),
}
ISSUE_TOPICS = (Topic.HO_SUSPECTED, Topic.HO_SURGICAL_READINESS)
SEARCHES = (
    ("Condition", "patient"),
    ("Observation", "patient"),
    ("Procedure", "patient"),
    ("MedicationRequest", "patient"),
)


def read_patient(client: FhirClient, patient_id: str, k: Knowledge, deadline: float | None = None) -> ClinicalInput:
    """The patient's resources the rules read, straight from the FHIR server (all pages)."""
    patient = client.read("Patient", patient_id, deadline=deadline)
    resources: list[dict[str, Any]] = [patient]
    for rtype, param in SEARCHES:
        resources.extend(client.search(rtype, {param: patient_id, "_count": 200}, deadline=deadline))
    chosen, kept, rejected, seen = select(resources, k.terminology, patient_id)
    return ClinicalInput(
        hook="patient-view",
        patient=chosen,
        resources=kept,
        context={"patientId": patient_id},
        rejected=rejected,
        seen=seen,
    )


def risk_assessment(evaluation: Evaluation, patient_id: str, now: datetime) -> dict[str, Any]:
    """The RiskAssessment for a patient: HO risk with the basis and the catalogue IDs as its reason."""
    risk = next((g for g in evaluation.guidance if g.topic is Topic.HO_RISK), None)
    # ho-rules-v1 §3a (1.1): outside the relevance window there is no ho-risk card, but the assessment
    # is still recorded, from the trace.
    assessed = evaluation.trace.get("assessment") or {}
    summary = risk.summary if risk else assessed.get("summary")
    rules = list(risk.rules) if risk else list(assessed.get("rules") or [])
    level = evaluation.trace.get("riskLevel")
    data: dict[str, Any] = {
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"ho-risk-{patient_id}"}],
        "status": "final",
        "subject": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": now.isoformat(),
        "code": {
            "coding": [
                {
                    "system": "http://hofhir.org/fhir/CodeSystem/card-topic",
                    "code": "ho-risk",
                    "display": "Heterotopic ossification risk",
                }
            ]
        },
        "method": {"text": f"hofhir rules, knowledge base {evaluation.trace.get('knowledgeVersion')}"},
        "basis": [{"reference": ref} for ref in _basis(evaluation)][:50],
    }
    if not data["basis"]:
        del data["basis"]
    if isinstance(level, str) and level in RISK_CODES:
        code, display = RISK_CODES[level]
        data["prediction"] = [
            {
                "outcome": {"text": "Heterotopic ossification"},
                "qualitativeRisk": {"coding": [{"system": RISK_SYSTEM, "code": code, "display": display}]},
                "rationale": summary,
            }
        ]
        data["note"] = [{"text": f"Rules: {', '.join(rules)}"}] if rules else []
    else:
        data["note"] = [{"text": "No heterotopic ossification risk population recorded."}]
    return build("RiskAssessment", _drop_none(data))


def detected_issue(evaluation: Evaluation, patient_id: str, now: datetime) -> dict[str, Any] | None:
    issues = [g for g in evaluation.guidance if g.topic in ISSUE_TOPICS]
    if not issues:
        return None
    return build(
        "DetectedIssue",
        {
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"ho-issue-{patient_id}"}],
            "status": "preliminary",
            "severity": "moderate",
            "code": {
                "coding": [
                    {
                        "system": "http://hofhir.org/fhir/CodeSystem/card-topic",
                        "code": issues[0].topic.value,
                        "display": issues[0].topic_display,
                    }
                ]
            },
            "patient": {"reference": f"Patient/{patient_id}"},
            "identifiedDateTime": now.isoformat(),
            "detail": "; ".join(g.summary for g in issues),
        },
    )


def _basis(evaluation: Evaluation) -> list[str]:
    refs: list[str] = []
    for population in (evaluation.trace.get("populations") or {}).values():
        index = population.get("index")
        if isinstance(index, str) and "/" in index and "#" not in index:
            refs.append(index)
    return list(dict.fromkeys(refs))


def _drop_none(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_none(v) for k, v in node.items() if v is not None and v != []}
    if isinstance(node, list):
        return [_drop_none(v) for v in node]
    return node


def write_back(
    client: FhirClient, evaluation: Evaluation, patient_id: str, now: datetime, deadline: float | None = None
) -> dict[str, str]:
    """Create-or-update the patient's RiskAssessment (and DetectedIssue); returns what was written."""
    written: dict[str, str] = {}
    saved = client.update_by_identifier(
        risk_assessment(evaluation, patient_id, now), IDENTIFIER_SYSTEM, deadline=deadline
    )
    written["RiskAssessment"] = f"RiskAssessment/{saved.get('id')}"
    issue = detected_issue(evaluation, patient_id, now)
    if issue is not None:
        saved_issue = client.update_by_identifier(issue, IDENTIFIER_SYSTEM, deadline=deadline)
        written["DetectedIssue"] = f"DetectedIssue/{saved_issue.get('id')}"
    return written
