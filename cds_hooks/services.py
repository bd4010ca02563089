"""The service catalogue: each CDS Service is a declaration (id, hook, title, description, prefetch).

Service ids and prefetch keys are a contract EHRs configure against (design.md): never rename them.
Prefetch templates ask for exactly what the rules read; the Observation codes come from the knowledge
base's value sets so the template and the rules cannot drift apart. CDS Hooks 2.0.1 defines no date
token (only context fields and the user ids), so the templates carry no date window: the rules apply
their windows (surveillance 12 months, SAP 14 days, duplex 7 days...) to what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hofhir.knowledge import Knowledge
from hofhir.knowledge.terminology import LOINC, SNOMED

PREFETCH_KEYS = ("patient", "conditions", "observations", "procedures", "medications")
# Observation codes the rules read: labs, vital signs, scores, and findings recorded as Observations.
OBSERVATION_SETS = (
    "alp",
    "calcium",
    "body_temperature",
    "gcs_total",
    "poor_hip_rom",
    "sign_swelling",
    "sign_erythema",
    "sign_warmth",
    "sign_tenderness",
    "spasticity",
    "bone_scan",
    "hip_radiograph",
    "hip_ultrasound",
    "venous_duplex",
    "ct_planning",
    "pressure_ulcer",
    # ho-rules 1.1 §5a: the NSAID safety screen reads eGFR, or creatinine to compute it (CKD-EPI 2021).
    "egfr",
    "creatinine",
)


@dataclass(frozen=True)
class CdsService:
    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str] = field(default_factory=dict)
    usage_requirements: str | None = None

    def discovery(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": dict(self.prefetch),
        }
        if self.usage_requirements:
            out["usageRequirements"] = self.usage_requirements
        return out


def observation_codes(k: Knowledge) -> str:
    codes: list[str] = []
    for name in OBSERVATION_SETS:
        for system, code in sorted(k.terminology.codes(name)):
            if system in (LOINC, SNOMED):
                token = f"{system}|{code}"
                if token not in codes:
                    codes.append(token)
    return ",".join(codes)


def prefetch_templates(k: Knowledge) -> dict[str, str]:
    pid = "{{context.patientId}}"
    return {
        "patient": f"Patient/{pid}",
        "conditions": f"Condition?patient={pid}",
        "observations": f"Observation?patient={pid}&code={observation_codes(k)}",
        "procedures": f"Procedure?patient={pid}",
        "medications": f"MedicationRequest?patient={pid}",
    }


def catalogue(k: Knowledge) -> dict[str, CdsService]:
    prefetch = prefetch_templates(k)
    usage = "Works from prefetch alone; without it, needs fhirServer access to read Patient, Condition, Observation, Procedure and MedicationRequest."
    services = [
        CdsService(
            "hofhir-patient-view",
            "patient-view",
            "Heterotopic ossification: risk, surveillance, suspicion, rehabilitation",
            "On opening the chart: HO risk level with its factors, what to watch and when to check alkaline phosphatase, "
            "suspected HO with the imaging to confirm it and the DVT differential, prophylaxis gaps, and positioning and motion guidance.",
            prefetch,
            usage,
        ),
        CdsService(
            "hofhir-encounter-start",
            "encounter-start",
            "Heterotopic ossification: risk and surveillance at admission",
            "At the start of an encounter: the same HO guidance as on opening the chart.",
            prefetch,
            usage,
        ),
        CdsService(
            "hofhir-encounter-discharge",
            "encounter-discharge",
            "Heterotopic ossification: education at discharge",
            "At discharge of a patient at moderate or high HO risk, or with HO: the risk and what to teach patient and family.",
            prefetch,
            usage,
        ),
        CdsService(
            "hofhir-order-select",
            "order-select",
            "Heterotopic ossification: imaging, excision readiness, prophylaxis",
            "While orders are chosen: imaging that is too early or a biopsy of suspected HO, HO excision maturity criteria, "
            "prophylaxis for hip arthroplasty at risk, and motion orders too soon after HO resection.",
            prefetch,
            usage,
        ),
        CdsService(
            "hofhir-order-sign",
            "order-sign",
            "Heterotopic ossification: checks before signing orders",
            "Before orders are signed: the same order checks as order-select, over all draft orders.",
            prefetch,
            usage,
        ),
    ]
    return {s.id: s for s in services}
