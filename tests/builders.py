"""Small builders of valid FHIR R4 dicts (and CDS Hooks requests) dated relative to a fixed NOW.

Every date is `days_ago` before NOW, so a test reads like the clinical timeline it describes
("SCI 40 days ago, hip stiffness 5 days ago"). Codes are passed bare (`icd="S24.111A"`); the
builders add the systems. Each resource gets a fresh id; pass `id=` to fix it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hofhir.clinical.evaluate import Evaluation
from hofhir.knowledge.terminology import CPT, ICD10CM, LOINC, RXNORM, SNOMED

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
NOW_ISO = NOW.isoformat()
PATIENT_ID = "pt-1"
UCUM = "http://unitsofmeasure.org"
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
SNOMED_ABSENT = "2667000"

_ids = itertools.count(1)

Resource = dict[str, Any]
# The `run` fixture (tests/unit/conftest.py): run(resources, hook=..., draft_orders=..., now=...) -> Evaluation.
Run = Callable[..., Evaluation]


def when(days_ago: float) -> str:
    """The FHIR dateTime `days_ago` days before NOW."""
    return (NOW - timedelta(days=days_ago)).isoformat()


def _id(prefix: str, given: str | None) -> str:
    return given or f"{prefix}-{next(_ids)}"


def _subject(patient_id: str) -> dict[str, str]:
    return {"reference": f"Patient/{patient_id}"}


def concept(text: str | None = None, **codes: str | None) -> dict[str, Any]:
    """A CodeableConcept from bare codes: concept(icd="S24.111A", snomed="90584004", text="...")."""
    systems = {"icd": ICD10CM, "snomed": SNOMED, "loinc": LOINC, "cpt": CPT, "rxnorm": RXNORM}
    coding = [{"system": systems[name], "code": code} for name, code in codes.items() if code]
    out: dict[str, Any] = {}
    if coding:
        out["coding"] = coding
    if text:
        out["text"] = text
    return out


def patient(
    gender: str | None = "male",
    age_years: int | None = 45,
    *,
    id: str = PATIENT_ID,
    deceased: bool = False,
) -> Resource:
    """A Patient aged `age_years` at NOW (birthday yesterday); age_years=None leaves birthDate out."""
    res: Resource = {"resourceType": "Patient", "id": id, "name": [{"family": "Test", "given": ["Pat"]}]}
    if gender is not None:
        res["gender"] = gender
    if age_years is not None:
        born = NOW.date() - timedelta(days=1)
        res["birthDate"] = date(born.year - age_years, born.month, born.day).isoformat()
    if deceased:
        res["deceasedDateTime"] = when(1)
    return res


def condition(
    icd: str | None = None,
    snomed: str | None = None,
    *,
    days_ago: float | None = 30,
    clinical_status: str | None = "active",
    verification: str | None = "confirmed",
    abated_days_ago: float | None = None,
    text: str | None = None,
    body_site: str | None = None,
    patient_id: str = PATIENT_ID,
    id: str | None = None,
) -> Resource:
    res: Resource = {
        "resourceType": "Condition",
        "id": _id("cond", id),
        "code": concept(text, icd=icd, snomed=snomed),
        "subject": _subject(patient_id),
    }
    if abated_days_ago is not None and clinical_status == "active":
        clinical_status = "resolved"
    if clinical_status:
        res["clinicalStatus"] = {"coding": [{"system": CLINICAL_STATUS, "code": clinical_status}]}
    if verification:
        res["verificationStatus"] = {"coding": [{"system": VERIFICATION_STATUS, "code": verification}]}
    if days_ago is not None:
        res["onsetDateTime"] = when(days_ago)
    if abated_days_ago is not None:
        res["abatementDateTime"] = when(abated_days_ago)
    if body_site:
        res["bodySite"] = [{"text": body_site}]
    return res


def observation(
    loinc: str | None = None,
    value: float | None = None,
    unit: str | None = None,
    days_ago: float | None = 1,
    ref_low: float | None = None,
    ref_high: float | None = None,
    *,
    snomed: str | None = None,
    value_concept: str | None = None,
    value_boolean: bool | None = None,
    value_string: str | None = None,
    text: str | None = None,
    status: str = "final",
    patient_id: str = PATIENT_ID,
    id: str | None = None,
) -> Resource:
    """An Observation: a quantity (`value` + UCUM `unit`), a coded value (SNOMED), a boolean or a string."""
    res: Resource = {
        "resourceType": "Observation",
        "id": _id("obs", id),
        "status": status,
        "code": concept(text, loinc=loinc, snomed=snomed),
        "subject": _subject(patient_id),
    }
    if days_ago is not None:
        res["effectiveDateTime"] = when(days_ago)
    if value is not None:
        res["valueQuantity"] = _quantity(value, unit)
    elif value_concept is not None:
        res["valueCodeableConcept"] = concept(snomed=value_concept)
    elif value_boolean is not None:
        res["valueBoolean"] = value_boolean
    elif value_string is not None:
        res["valueString"] = value_string
    if ref_low is not None or ref_high is not None:
        rng: dict[str, Any] = {}
        if ref_low is not None:
            rng["low"] = _quantity(ref_low, unit)
        if ref_high is not None:
            rng["high"] = _quantity(ref_high, unit)
        res["referenceRange"] = [rng]
    return res


def _quantity(value: float, unit: str | None) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit} if unit else {"value": value}


def alp(value: float, days_ago: float = 1, ref_low: float | None = 40, ref_high: float | None = 130) -> Resource:
    """Serum alkaline phosphatase (LOINC 6768-6) in U/L, with the lab's range unless told otherwise."""
    return observation("6768-6", value, "U/L", days_ago, ref_low, ref_high)


def temperature(value: float, unit: str = "Cel", days_ago: float = 1) -> Resource:
    """Body temperature (LOINC 8310-5), Celsius ("Cel") or Fahrenheit ("[degF]")."""
    return observation("8310-5", value, unit, days_ago)


def gcs(value: float, days_ago: float) -> Resource:
    """Glasgow coma score total (LOINC 9269-2)."""
    return observation("9269-2", value, "{score}", days_ago)


def procedure(
    cpt: str | None = None,
    snomed: str | None = None,
    *,
    days_ago: float | None = 10,
    status: str = "completed",
    text: str | None = None,
    body_site: str | None = None,
    patient_id: str = PATIENT_ID,
    id: str | None = None,
) -> Resource:
    res: Resource = {
        "resourceType": "Procedure",
        "id": _id("proc", id),
        "status": status,
        "code": concept(text, cpt=cpt, snomed=snomed),
        "subject": _subject(patient_id),
    }
    if days_ago is not None:
        res["performedDateTime"] = when(days_ago)
    if body_site:
        res["bodySite"] = [{"text": body_site}]
    return res


def medication_request(
    rxnorm: str | None = None,
    text: str | None = None,
    days_ago: float | None = 1,
    status: str = "active",
    *,
    intent: str = "order",
    patient_id: str = PATIENT_ID,
    id: str | None = None,
) -> Resource:
    """A MedicationRequest by RxNorm code (often an SCD/SBD product code) and/or by its text."""
    med = concept(text, rxnorm=rxnorm)
    if rxnorm and text:
        med["coding"][0]["display"] = text
    res: Resource = {
        "resourceType": "MedicationRequest",
        "id": _id("medreq", id),
        "status": status,
        "intent": intent,
        "medicationCodeableConcept": med,
        "subject": _subject(patient_id),
    }
    if days_ago is not None:
        res["authoredOn"] = when(days_ago)
    return res


def service_request(
    cpt: str | None = None,
    loinc: str | None = None,
    snomed: str | None = None,
    *,
    text: str | None = None,
    status: str = "draft",
    days_ago: float | None = 0,
    intent: str = "order",
    body_site: str | None = None,
    reason_icd: str | None = None,
    reason_text: str | None = None,
    patient_id: str = PATIENT_ID,
    id: str | None = None,
) -> Resource:
    """A ServiceRequest: status "draft" for a draft order, "active"/"completed" for one on record."""
    res: Resource = {
        "resourceType": "ServiceRequest",
        "id": _id("sr", id),
        "status": status,
        "intent": intent,
        "code": concept(text, cpt=cpt, loinc=loinc, snomed=snomed),
        "subject": _subject(patient_id),
    }
    if days_ago is not None:
        res["authoredOn"] = when(days_ago)
    if body_site:
        res["bodySite"] = [{"text": body_site}]
    if reason_icd or reason_text:
        res["reasonCode"] = [concept(reason_text, icd=reason_icd)]
    return res


def diagnostic_report(
    loinc: str | None = None,
    cpt: str | None = None,
    *,
    conclusion: str | None = None,
    days_ago: float = 7,
    status: str = "final",
    patient_id: str = PATIENT_ID,
    id: str | None = None,
) -> Resource:
    res: Resource = {
        "resourceType": "DiagnosticReport",
        "id": _id("report", id),
        "status": status,
        "code": concept(loinc=loinc, cpt=cpt),
        "subject": _subject(patient_id),
        "effectiveDateTime": when(days_ago),
    }
    if conclusion:
        res["conclusion"] = conclusion
    return res


def bundle(resources: list[Resource], type: str = "searchset") -> Resource:
    out: Resource = {"resourceType": "Bundle", "type": type, "entry": [{"resource": r} for r in resources]}
    if type == "searchset":
        out["total"] = len(resources)
        for entry in out["entry"]:
            entry["search"] = {"mode": "match"}
    return out


PREFETCH_TYPES = {
    "conditions": "Condition",
    "observations": "Observation",
    "procedures": "Procedure",
    "medications": "MedicationRequest",
}


def request(
    hook: str,
    resources: list[Resource],
    draft_orders: list[Resource] | None = None,
    *,
    patient_id: str = PATIENT_ID,
    selections: list[str] | None = None,
) -> dict[str, Any]:
    """A CDS Hooks request with the five prefetch keys (patient + four searchset Bundles).

    Resources of other types (ServiceRequest, DiagnosticReport on the record) travel in extra
    prefetch keys named after their type, as a service with more prefetch templates would get them.
    """
    pat = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    prefetch: dict[str, Any] = {"patient": pat}
    for key, rtype in PREFETCH_TYPES.items():
        prefetch[key] = bundle([r for r in resources if r.get("resourceType") == rtype])
    others = [r for r in resources if r.get("resourceType") not in (*PREFETCH_TYPES.values(), "Patient")]
    for rtype in dict.fromkeys(r["resourceType"] for r in others):
        prefetch[rtype[0].lower() + rtype[1:] + "s"] = bundle([r for r in others if r["resourceType"] == rtype])
    context: dict[str, Any] = {"userId": "Practitioner/test", "patientId": patient_id}
    if hook.startswith("encounter"):
        context["encounterId"] = "enc-1"
    if hook in ("order-select", "order-sign"):
        drafts = draft_orders or []
        context["draftOrders"] = bundle(drafts, type="collection")
        if hook == "order-select":
            context["selections"] = (
                selections
                if selections is not None
                else [f"{r['resourceType']}/{r['id']}" for r in drafts if isinstance(r.get("id"), str)]
            )
    return {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
        "prefetch": prefetch,
    }


# ---------- reading an Evaluation ----------


def topics(evaluation: Any) -> set[str]:
    """The card topics of an Evaluation."""
    return {g.topic.value for g in evaluation.guidance}


def card(evaluation: Any, topic: str) -> Any:
    """The one Guidance of `topic` (fails the test when there is none)."""
    found = [g for g in evaluation.guidance if g.topic.value == topic]
    assert len(found) == 1, f"expected one {topic} card, got topics {sorted(topics(evaluation))}"
    return found[0]


def suggested_codes(guidance: Any) -> set[str]:
    """Every code in every suggested resource of a Guidance (any system)."""
    codes: set[str] = set()
    for s in guidance.suggestions:
        for key in ("code", "medicationCodeableConcept"):
            for coding in (s.resource.get(key) or {}).get("coding", []):
                codes.add(coding["code"])
    return codes


def factors(evaluation: Any, population: str) -> dict[str, list[dict[str, str]]]:
    """The trace's factors of a population, by rule ID."""
    out: dict[str, list[dict[str, str]]] = {}
    for f in evaluation.trace["populations"][population]["factors"]:
        out.setdefault(f["rule"], []).append(f)
    return out


def factor_status(evaluation: Any, population: str, rule: str, name: str | None = None) -> str:
    """The status (present/absent/unknown) of one factor of a population in the trace."""
    found = [f for f in factors(evaluation, population).get(rule, []) if name is None or name in f["name"]]
    assert len(found) == 1, f"{rule} {name or ''}: {found}"
    return str(found[0]["status"])


def level(evaluation: Any, population: str | None = None) -> str | None:
    """The overall risk level, or one population's level, from the trace."""
    found = (
        evaluation.trace["riskLevel"] if population is None else evaluation.trace["populations"][population]["level"]
    )
    return str(found) if found is not None else None
