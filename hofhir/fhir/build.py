"""The FHIR R4 resources hofhir suggests, built through the R4B models so they are valid R4.

The suggested orders are the same few resources on every call, apart from the patient and the reason.
Each is built and validated through its R4B model once, as a `Template` (per process, per distinct
knowledge value: a regimen that changes in the knowledge base makes a new template), and every call
fills a copy with the patient and the reason. A fill sets only FHIR `string` values, whose one R4 rule
(non-empty, matching `[ \\r\\n\\t\\S]+`) is checked here; any other value goes through the model as
before and raises the same way. tests/unit/test_build.py proves each filled resource still validates
as R4 and equals the one built through the model, for every suggestion kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from hofhir.fhir.models import build, valid
from hofhir.knowledge.terminology import CPT, LOINC, RXNORM, SNOMED

# FHIR R4 `string` (the pattern fhir.resources checks): not empty, at least one non-blank-ish character.
_FHIR_STRING = re.compile("[ \r\n\t\\S]+")
_PLACEHOLDER_PATIENT = "template"
_PLACEHOLDER_REASON = "template"


def coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _subject(patient_id: str | None) -> dict[str, str]:
    return {"reference": f"Patient/{patient_id}"} if patient_id else {"display": "the patient in context"}


def _is_string(value: object) -> bool:
    return isinstance(value, str) and _FHIR_STRING.search(value) is not None


@dataclass(frozen=True, slots=True)
class Template:
    """A suggested resource without its patient and reason, validated once through its R4B model."""

    resource_type: str
    data: bytes  # the constant elements, as given (for the model path)
    built: bytes  # the model's JSON form, with placeholders in `subject` and `reasonCode`

    @classmethod
    def make(cls, resource_type: str, data: dict[str, Any]) -> Template:
        # Built with placeholders so the slots are in place. A template the element-table check passes is
        # valid R4 as written (put in the models' element order); any other goes through the model.
        built = valid(resource_type, _with_slots(data, _PLACEHOLDER_PATIENT, _PLACEHOLDER_REASON))
        if "subject" not in built or "reasonCode" not in built:
            raise ValueError(f"{resource_type} template lost its subject or reasonCode slot")
        return cls(resource_type, orjson.dumps(data), orjson.dumps(built))

    def fill(self, patient_id: str | None, reason: str) -> dict[str, Any]:
        """A fresh copy with the patient and the reason: the same resource `through_model` builds."""
        if not _is_string(reason) or not (patient_id is None or isinstance(patient_id, str)):
            return self.through_model(patient_id, reason)  # let the model say what is wrong
        resource: dict[str, Any] = orjson.loads(self.built)
        resource["subject"] = _subject(patient_id)  # "Patient/" + id is never empty: a valid string
        resource["reasonCode"] = [{"text": reason}]
        return resource

    def through_model(self, patient_id: str | None, reason: str) -> dict[str, Any]:
        """The same resource built and validated by the R4B model on this call (the slow path)."""
        return build(self.resource_type, _with_slots(orjson.loads(self.data), patient_id, reason))


def _with_slots(data: dict[str, Any], patient_id: str | None, reason: str) -> dict[str, Any]:
    return {**data, "subject": _subject(patient_id), "reasonCode": [{"text": reason}]}


# ---- the orders ----------------------------------------------------------------------------------
CATEGORIES: dict[str, tuple[str, str]] = {
    "laboratory": ("108252007", "Laboratory procedure"),
    "imaging": ("363679005", "Imaging"),
}
# (codings, text, category) of the fixed orders.
ORDERS: dict[str, tuple[tuple[tuple[str, str, str], ...], str, str | None]] = {
    "alp": (
        ((LOINC, "6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma"),),
        "Serum alkaline phosphatase",
        "laboratory",
    ),
    "bone-scan": (
        (
            (CPT, "78315", "Bone and/or joint imaging; 3 phase study"),
            (LOINC, "39883-4", "NM Bone 3 Phase Views"),
        ),
        "Three-phase bone scan",
        "imaging",
    ),
    "hip-radiograph": (
        (
            (CPT, "73502", "Radiologic examination, hip, unilateral, with pelvis when performed; 2-3 views"),
            (LOINC, "24762-7", "XR Hip Views"),
        ),
        "Hip radiograph",
        "imaging",
    ),
    "duplex-bilateral": (
        (
            (CPT, "93970", "Duplex scan of extremity veins; complete bilateral study"),
            (LOINC, "39420-5", "US.doppler Lower extremity vein - bilateral"),
        ),
        "Venous duplex ultrasound, lower extremity",
        "imaging",
    ),
    "duplex-unilateral": (
        (
            (CPT, "93971", "Duplex scan of extremity veins; unilateral or limited study"),
            (LOINC, "30881-7", "US.doppler Lower extremity vein"),
        ),
        "Venous duplex ultrasound, lower extremity",
        "imaging",
    ),
    "ct-pelvis": (
        (
            (CPT, "72192", "Computed tomography, pelvis; without contrast material"),
            (LOINC, "30615-9", "CT Pelvis WO contrast"),
        ),
        "CT pelvis for surgical planning",
        "imaging",
    ),
}


@lru_cache(maxsize=64)
def service_request_template(
    codings: tuple[tuple[str, str, str], ...], text: str, category: str | None = None
) -> Template:
    """A draft ServiceRequest proposal (the clinician accepts it into their order session)."""
    data: dict[str, Any] = {
        "status": "draft",
        "intent": "proposal",
        "code": {"coding": [coding(*c) for c in codings], "text": text},
    }
    if category:
        data["category"] = [{"coding": [coding(SNOMED, *CATEGORIES[category])]}]
    return Template.make("ServiceRequest", data)


def order_template(name: str) -> Template:
    """The template of one of the fixed ORDERS."""
    codings, text, category = ORDERS[name]
    return service_request_template(codings, text, category)


def alp_order(patient_id: str | None, reason: str) -> dict[str, Any]:
    return order_template("alp").fill(patient_id, reason)


def bone_scan_order(patient_id: str | None, reason: str) -> dict[str, Any]:
    return order_template("bone-scan").fill(patient_id, reason)


def hip_radiograph_order(patient_id: str | None, reason: str) -> dict[str, Any]:
    return order_template("hip-radiograph").fill(patient_id, reason)


def venous_duplex_order(patient_id: str | None, reason: str, bilateral: bool = True) -> dict[str, Any]:
    return order_template("duplex-bilateral" if bilateral else "duplex-unilateral").fill(patient_id, reason)


def ct_order(patient_id: str | None, reason: str) -> dict[str, Any]:
    return order_template("ct-pelvis").fill(patient_id, reason)


def radiotherapy_template(regimen: dict[str, Any]) -> Template:
    """The radiotherapy referral of a knowledge-base regimen (one template per distinct regimen)."""
    return service_request_template(
        (
            (CPT, str(regimen["cpt"]), str(regimen["cpt_display"])),
            (SNOMED, str(regimen["snomed"]), str(regimen["snomed_display"])),
        ),
        str(regimen["label"]),
    )


def radiotherapy_order(patient_id: str | None, reason: str, regimen: dict[str, Any]) -> dict[str, Any]:
    return radiotherapy_template(regimen).fill(patient_id, reason)


def indomethacin_template(regimen: dict[str, Any]) -> Template:
    """The NSAID prophylaxis MedicationRequest of a knowledge-base regimen (one per distinct regimen)."""
    return _medication_template(
        str(regimen["rxnorm_product"]),
        str(regimen["rxnorm_product_display"]),
        str(regimen["label"]),
        int(regimen["frequency_per_day"]),
        int(regimen["duration_days"]),
        regimen["dose_mg"],
    )


@lru_cache(maxsize=16, typed=True)
def _medication_template(
    product: str, product_display: str, label: str, per_day: int, duration_days: int, dose_mg: float
) -> Template:
    data: dict[str, Any] = {
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": {
            "coding": [coding(RXNORM, product, product_display)],
            "text": product_display,
        },
        "dosageInstruction": [
            {
                "text": label,
                "timing": {
                    "repeat": {
                        "frequency": per_day,
                        "period": 1,
                        "periodUnit": "d",
                        "boundsDuration": {
                            "value": duration_days,
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
                            "value": dose_mg,
                            "unit": "mg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mg",
                        }
                    }
                ],
            }
        ],
    }
    return Template.make("MedicationRequest", data)


def indomethacin_order(patient_id: str | None, reason: str, regimen: dict[str, Any]) -> dict[str, Any]:
    return indomethacin_template(regimen).fill(patient_id, reason)


def templates(regimens: dict[str, dict[str, Any]]) -> dict[str, Template]:
    """Every suggestion template, built now (warm-up at knowledge load, and what the tests enumerate).
    `regimens` is the knowledge base's `parameters["regimens"]`."""
    found = {name: order_template(name) for name in ORDERS}
    found["radiotherapy"] = radiotherapy_template(regimens["radiotherapy"])
    found["indomethacin"] = indomethacin_template(regimens["indomethacin"])
    return found
