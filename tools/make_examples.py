"""Writes the built-in example patients of the preview page (cds_hooks/examples/*.json).

The project's own cases, modelled on the clinical vignettes' situations (not copies of them). Every date
is relative to RECORDED_AT; the service shifts them to today when an example is loaded.
    python tools/make_examples.py
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

RECORDED_AT = datetime.fromisoformat("2026-11-30T09:00:00+00:00")
OUT = Path(__file__).resolve().parent.parent / "cds_hooks" / "examples"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"


def when(days: float) -> str:
    return (RECORDED_AT + timedelta(days=days)).isoformat()


def concept(text: str, *codings: tuple[str, str, str]) -> dict[str, Any]:
    return {"coding": [{"system": s, "code": c, "display": d} for s, c, d in codings], "text": text}


def condition(pid: str, rid: str, days: float, text: str, *codings: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"{pid}-{rid}",
        "clinicalStatus": concept(
            "Active", ("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active")
        ),
        "verificationStatus": concept(
            "Confirmed", ("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed")
        ),
        "code": concept(text, *codings),
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": when(days),
        "recordedDate": when(days),
    }


def lab(pid: str, rid: str, days: float, code: str, text: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"{pid}-{rid}",
        "status": "final",
        "category": [
            concept(
                "Laboratory", ("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")
            )
        ],
        "code": concept(text, (LOINC, code, text)),
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when(days),
        "issued": when(days + 0.2),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


def procedure(pid: str, rid: str, days: float, text: str, *codings: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": f"{pid}-{rid}",
        "status": "completed",
        "code": concept(text, *codings),
        "subject": {"reference": f"Patient/{pid}"},
        "performedDateTime": when(days),
    }


def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def request(hook: str, pid: str, patient: dict[str, Any], res: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in res:
        by_type.setdefault(r["resourceType"], []).append(r)
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"hofhir-example-{pid}")),
        "context": {"userId": "Practitioner/hofhir-demo", "patientId": pid, **context},
        "prefetch": {
            "patient": patient,
            "conditions": bundle(by_type.get("Condition", [])),
            "observations": bundle(by_type.get("Observation", [])),
            "procedures": bundle(by_type.get("Procedure", [])),
            "medications": bundle(by_type.get("MedicationRequest", [])),
        },
    }


def patient(pid: str, family: str, given: str, gender: str, born: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family, "given": [given]}],
        "gender": gender,
        "birthDate": born,
    }


def examples() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    p = "ex-sci-hip"
    out.append(
        (
            p,
            "SCI at 6 weeks: right hip stiff and swollen, ALP rising",
            request(
                "patient-view",
                p,
                patient(p, "Keller", "Maria", "female", "1983-04-12"),
                [
                    condition(
                        p,
                        "sci",
                        -42,
                        "Complete spinal cord injury, T1 (road traffic collision)",
                        (ICD, "S24.111A", "Complete lesion at T1 level of thoracic spinal cord, initial encounter"),
                        (SCT, "90584004", "Spinal cord injury"),
                    ),
                    condition(p, "paraplegia", -42, "Complete paraplegia", (ICD, "G82.21", "Paraplegia, complete")),
                    condition(
                        p,
                        "stiff-hip",
                        -4,
                        "Right hip stiff, range of motion reduced",
                        (SCT, "249914008", "Stiff hip"),
                        (ICD, "M25.651", "Stiffness of right hip"),
                    ),
                    condition(
                        p,
                        "swelling",
                        -4,
                        "Swelling of right thigh",
                        (SCT, "80068009", "Swelling of lower limb"),
                        (ICD, "R22.41", "Localized swelling, right lower limb"),
                    ),
                    lab(p, "alp-1", -36, "6768-6", "Alkaline phosphatase", 104, "U/L"),
                    lab(p, "alp-2", -20, "6768-6", "Alkaline phosphatase", 139, "U/L"),
                    lab(p, "alp-3", -5, "6768-6", "Alkaline phosphatase", 204, "U/L"),
                    lab(p, "temp", -1, "8310-5", "Body temperature", 37.4, "Cel"),
                ],
            ),
        )
    )
    p = "ex-tha-as"
    out.append(
        (
            p,
            "Total hip arthroplasty 8 days ago, ankylosing spondylitis",
            request(
                "patient-view",
                p,
                patient(p, "Osei", "Daniel", "male", "1962-09-03"),
                [
                    condition(
                        p,
                        "as",
                        -4000,
                        "Ankylosing spondylitis",
                        (ICD, "M45.9", "Ankylosing spondylitis of unspecified sites in spine"),
                        (SCT, "9631008", "Ankylosing spondylitis"),
                    ),
                    condition(
                        p,
                        "oa",
                        -900,
                        "Primary osteoarthritis of left hip",
                        (ICD, "M16.12", "Unilateral primary osteoarthritis, left hip"),
                    ),
                    procedure(
                        p,
                        "tha",
                        -8,
                        "Total hip arthroplasty, left",
                        (CPT, "27130", "Arthroplasty, acetabular and proximal femoral prosthetic replacement"),
                        (SCT, "52734007", "Total replacement of hip"),
                    ),
                    lab(p, "temp", -2, "8310-5", "Body temperature", 37.0, "Cel"),
                ],
            ),
        )
    )
    p = "ex-sci-excision"
    draft = {
        "resourceType": "ServiceRequest",
        "id": f"{p}-excision",
        "status": "draft",
        "intent": "order",
        "code": concept(
            "Excision of heterotopic bone, right hip",
            (CPT, "27036", "Capsulectomy or capsulotomy, hip, with or without excision of heterotopic bone"),
        ),
        "subject": {"reference": f"Patient/{p}"},
        "authoredOn": when(0),
    }
    out.append(
        (
            p,
            "Order-sign: HO excision 9 months after SCI, ALP still raised",
            request(
                "order-sign",
                p,
                patient(p, "Lindqvist", "Erik", "male", "1990-01-22"),
                [
                    condition(
                        p,
                        "sci",
                        -275,
                        "Complete spinal cord injury, T1",
                        (ICD, "S24.111A", "Complete lesion at T1 level of thoracic spinal cord, initial encounter"),
                    ),
                    condition(
                        p,
                        "ho",
                        -200,
                        "Neurogenic heterotopic ossification, right hip",
                        (ICD, "M61.251", "Paralytic calcification and ossification of muscle, right thigh"),
                    ),
                    lab(p, "alp-1", -120, "6768-6", "Alkaline phosphatase", 295, "U/L"),
                    lab(p, "alp-2", -30, "6768-6", "Alkaline phosphatase", 236, "U/L"),
                ],
                encounterId=f"{p}-encounter",
                draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]},
            ),
        )
    )
    p = "ex-sci-old"
    out.append(
        (
            p,
            "SCI ten years ago, nothing new: no chart card (relevance window)",
            request(
                "patient-view",
                p,
                patient(p, "Novak", "Ivana", "female", "1975-06-30"),
                [
                    condition(
                        p,
                        "sci",
                        -3650,
                        "Incomplete spinal cord injury, T6",
                        (ICD, "S24.151A", "Other incomplete lesion at T1 level of thoracic spinal cord"),
                    )
                ],
            ),
        )
    )
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    index = []
    for pid, title, body in examples():
        (OUT / f"{pid}.json").write_text(json.dumps(body, indent=1) + "\n")
        index.append({"id": pid, "title": title, "hook": body["hook"], "file": f"{pid}.json"})
    (OUT / "index.json").write_text(
        json.dumps({"recordedAt": RECORDED_AT.isoformat(), "examples": index}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
