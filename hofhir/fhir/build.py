"""The FHIR R4 resources hofhir suggests, built through the R4B models so they are valid R4."""

from __future__ import annotations

from typing import Any

from hofhir.fhir.models import build
from hofhir.knowledge.terminology import CPT, LOINC, RXNORM, SNOMED


def coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _subject(patient_id: str | None) -> dict[str, str]:
    return {"reference": f"Patient/{patient_id}"} if patient_id else {"display": "the patient in context"}


def service_request(
    codings: list[dict[str, str]], text: str, patient_id: str | None, reason: str, category: str | None = None
) -> dict[str, Any]:
    """A draft ServiceRequest proposal (the clinician accepts it into their order session)."""
    data: dict[str, Any] = {
        "status": "draft",
        "intent": "proposal",
        "code": {"coding": codings, "text": text},
        "subject": _subject(patient_id),
        "reasonCode": [{"text": reason}],
    }
    if category:
        data["category"] = [{"coding": [coding(SNOMED, *CATEGORIES[category])]}]
    return build("ServiceRequest", data)


CATEGORIES: dict[str, tuple[str, str]] = {
    "laboratory": ("108252007", "Laboratory procedure"),
    "imaging": ("363679005", "Imaging"),
}


def alp_order(patient_id: str | None, reason: str) -> dict[str, Any]:
    return service_request(
        [coding(LOINC, "6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma")],
        "Serum alkaline phosphatase",
        patient_id,
        reason,
        "laboratory",
    )


def bone_scan_order(patient_id: str | None, reason: str) -> dict[str, Any]:
    return service_request(
        [
            coding(CPT, "78315", "Bone and/or joint imaging; 3 phase study"),
            coding(LOINC, "39883-4", "NM Bone 3 Phase Views"),
        ],
        "Three-phase bone scan",
        patient_id,
        reason,
        "imaging",
    )


def hip_radiograph_order(patient_id: str | None, reason: str) -> dict[str, Any]:
    return service_request(
        [
            coding(CPT, "73502", "Radiologic examination, hip, unilateral, with pelvis when performed; 2-3 views"),
            coding(LOINC, "24762-7", "XR Hip Views"),
        ],
        "Hip radiograph",
        patient_id,
        reason,
        "imaging",
    )


def venous_duplex_order(patient_id: str | None, reason: str, bilateral: bool = True) -> dict[str, Any]:
    if bilateral:
        codes = [
            coding(CPT, "93970", "Duplex scan of extremity veins; complete bilateral study"),
            coding(LOINC, "39420-5", "US.doppler Lower extremity vein - bilateral"),
        ]
    else:
        codes = [
            coding(CPT, "93971", "Duplex scan of extremity veins; unilateral or limited study"),
            coding(LOINC, "30881-7", "US.doppler Lower extremity vein"),
        ]
    return service_request(codes, "Venous duplex ultrasound, lower extremity", patient_id, reason, "imaging")


def radiotherapy_order(patient_id: str | None, reason: str, regimen: dict[str, Any]) -> dict[str, Any]:
    return service_request(
        [
            coding(CPT, str(regimen["cpt"]), str(regimen["cpt_display"])),
            coding(SNOMED, str(regimen["snomed"]), str(regimen["snomed_display"])),
        ],
        str(regimen["label"]),
        patient_id,
        reason,
    )


def ct_order(patient_id: str | None, reason: str) -> dict[str, Any]:
    return service_request(
        [
            coding(CPT, "72192", "Computed tomography, pelvis; without contrast material"),
            coding(LOINC, "30615-9", "CT Pelvis WO contrast"),
        ],
        "CT pelvis for surgical planning",
        patient_id,
        reason,
        "imaging",
    )


def indomethacin_order(patient_id: str | None, reason: str, regimen: dict[str, Any]) -> dict[str, Any]:
    per_day = int(regimen["frequency_per_day"])
    data: dict[str, Any] = {
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": {
            "coding": [
                coding(RXNORM, str(regimen["rxnorm_product"]), str(regimen["rxnorm_product_display"])),
            ],
            "text": str(regimen["rxnorm_product_display"]),
        },
        "subject": _subject(patient_id),
        "reasonCode": [{"text": reason}],
        "dosageInstruction": [
            {
                "text": str(regimen["label"]),
                "timing": {
                    "repeat": {
                        "frequency": per_day,
                        "period": 1,
                        "periodUnit": "d",
                        "boundsDuration": {
                            "value": int(regimen["duration_days"]),
                            "unit": "days",
                            "system": "http://unitsofmeasure.org",
                            "code": "d",
                        },
                    }
                },
                "route": {"coding": [coding(SNOMED, "26643006", "Oral route")]},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": regimen["dose_mg"],
                            "unit": "mg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mg",
                        }
                    }
                ],
            }
        ],
    }
    return build("MedicationRequest", data)
