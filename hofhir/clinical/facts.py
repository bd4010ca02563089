"""PatientFacts: the typed, dated clinical picture the rules read, derived from validated FHIR dicts.

No I/O and no clock: `build_facts` is given `now`. What the record does not say stays unknown
(None), never "absent". Entered-in-error, refuted, cancelled, stopped and not-done items are ignored
(and listed in `ignored` for the trace).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from hofhir.clinical.model import Population
from hofhir.fhir.dates import days_between, parse_date, parse_when, years_between
from hofhir.fhir.read import ClinicalInput, label, relevant_sets
from hofhir.knowledge import Knowledge
from hofhir.knowledge.terminology import (
    burn_is_full_thickness,
    burn_tbsa_decile,
    icd_codes,
    tbi_loc_over_24h,
)

# Which value sets put a patient in a population (burn is decided by depth below).
POPULATION_SETS: dict[Population, tuple[str, ...]] = {
    Population.SCI: ("sci",),
    Population.TBI: ("tbi",),
    Population.THA: ("tha",),
    Population.ACETABULAR_ORIF: ("acetabular_orif",),
    Population.STROKE: ("stroke",),
    Population.FRACTURE: ("long_bone_fracture", "acetabular_fracture"),
    Population.HO_HISTORY: ("ho",),
}
PROCEDURE_POPULATIONS = frozenset({Population.THA, Population.ACETABULAR_ORIF})
MEASURED = frozenset({"alp", "calcium", "body_temperature", "gcs_total", "egfr", "creatinine"})

# Status values that take a resource out of the picture (ho-rules-v1 §9).
IGNORED_STATUS: dict[str, frozenset[str]] = {
    "Observation": frozenset({"entered-in-error", "cancelled"}),
    "Procedure": frozenset({"entered-in-error", "not-done", "stopped", "preparation", "on-hold", "unknown"}),
    "MedicationRequest": frozenset({"entered-in-error", "cancelled", "stopped", "draft"}),
    "MedicationStatement": frozenset({"entered-in-error", "not-taken", "stopped"}),
    "MedicationAdministration": frozenset({"entered-in-error", "not-done", "stopped"}),
    "ServiceRequest": frozenset({"entered-in-error", "revoked", "draft"}),
    "DiagnosticReport": frozenset({"entered-in-error", "cancelled"}),
}
IGNORED_VERIFICATION = frozenset({"entered-in-error", "refuted"})
INACTIVE_CLINICAL = frozenset({"inactive", "remission", "resolved"})
# Observation values that say a finding is absent (SNOMED Absent/No/Negative, HL7 v2 N, "false").
NEGATIVE_VALUES = frozenset({"2667000", "373067005", "260385009", "N", "n", "no", "false", "absent"})
FAHRENHEIT = frozenset({"[degF]", "degF", "°F", "F", "deg F"})


@dataclass(frozen=True)
class Entry:
    """One coded, dated item of the record, under one value set (`concept`)."""

    concept: str
    resource: str
    resource_type: str
    display: str
    when: datetime | None
    until: datetime | None = None
    active: bool = True
    ordered_only: bool = False  # a ServiceRequest on the record: asked for, not (yet) resulted
    icd: tuple[str, ...] = ()
    site: str = ""
    note: str = ""


@dataclass(frozen=True)
class Measurement:
    """A numeric result with its unit and the range it is judged against."""

    concept: str
    resource: str
    display: str
    when: datetime | None
    value: float | None
    unit: str
    low: float | None
    high: float | None
    range_source: str  # "lab", "default (<source>)" or "" when no range applies
    interpretation: str = ""

    @property
    def above_range(self) -> bool | None:
        if self.value is not None and self.high is not None:
            return self.value > self.high
        if self.interpretation in ("H", "HH", "HU"):
            return True
        if self.interpretation in ("N", "L", "LL"):
            return False
        return None


@dataclass(frozen=True)
class IndexEvent:
    population: Population
    when: datetime | None
    resource: str
    display: str


@dataclass
class PatientFacts:
    patient_id: str | None
    sex: str | None
    birth_date: date | None
    deceased: bool = False
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    measurements: dict[str, list[Measurement]] = field(default_factory=dict)
    index_events: dict[Population, list[IndexEvent]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    # ----- queries the rules use -----

    def of(self, *concepts: str) -> list[Entry]:
        out: list[Entry] = []
        for concept in concepts:
            out.extend(self.entries.get(concept, ()))
        return out

    def recorded(self, *concepts: str) -> list[Entry]:
        """Entries that say the thing happened or exists (not merely ordered)."""
        return [e for e in self.of(*concepts) if not e.ordered_only]

    def latest_result(self, concept: str) -> Measurement | None:
        dated = [m for m in self.measurements.get(concept, ()) if m.when is not None]
        return max(dated, key=lambda m: m.when) if dated else None  # type: ignore[arg-type,return-value]

    def populations(self) -> list[Population]:
        return [p for p in Population if self.index_events.get(p)]

    def index_event(self, population: Population) -> IndexEvent | None:
        """The most recent dated index event of a population (an undated one if none is dated)."""
        events = self.index_events.get(population) or []
        dated = [e for e in events if e.when is not None]
        if dated:
            return max(dated, key=lambda e: e.when)  # type: ignore[arg-type,return-value]
        return events[0] if events else None

    def age_on(self, when: datetime | None) -> int | None:
        if self.birth_date is None or when is None:
            return None
        return years_between(self.birth_date, when.date())


# ---------- building ----------


def _text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and isinstance(coding.get("display"), str):
            return str(coding["display"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return str(coding["code"])
    return ""


def _status_code(concept: Any) -> str:
    if isinstance(concept, dict):
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                return str(coding["code"])
    return ""


def _site(resource: dict[str, Any]) -> str:
    sites = resource.get("bodySite")
    if isinstance(sites, list):
        return "; ".join(t for t in (_text(s) for s in sites) if t)
    return _text(sites)


def _period_start(resource: dict[str, Any], prefix: str) -> datetime | None:
    for suffix in ("DateTime", "Instant"):
        when = parse_when(resource.get(prefix + suffix))
        if when:
            return when
    period = resource.get(prefix + "Period")
    if isinstance(period, dict):
        return parse_when(period.get("start")) or parse_when(period.get("end"))
    return None


def _period_end(resource: dict[str, Any], prefix: str) -> datetime | None:
    period = resource.get(prefix + "Period")
    if isinstance(period, dict):
        return parse_when(period.get("end"))
    return None


def _primary_concept(resource: dict[str, Any]) -> Any:
    rtype = resource.get("resourceType")
    if rtype in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
        med = resource.get("medicationCodeableConcept")
        if med is None:
            for contained in resource.get("contained") or []:
                if isinstance(contained, dict) and contained.get("resourceType") == "Medication":
                    return contained.get("code")
        return med
    return resource.get("code")


def _observation_negative(resource: dict[str, Any]) -> bool:
    if resource.get("valueBoolean") is False:
        return True
    value = resource.get("valueCodeableConcept")
    if isinstance(value, dict):
        for coding in value.get("coding") or []:
            if isinstance(coding, dict) and coding.get("code") in NEGATIVE_VALUES:
                return True
        if isinstance(value.get("text"), str) and value["text"].strip().lower() in NEGATIVE_VALUES:
            return True
    return False


def _quantity(resource: dict[str, Any]) -> tuple[float | None, str]:
    qty = resource.get("valueQuantity")
    if not isinstance(qty, dict):
        return None, ""
    value = qty.get("value")
    unit = qty.get("code") or qty.get("unit") or ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value) if isinstance(value, str) else None
        except ValueError:
            value = None
    return (float(value) if value is not None else None), str(unit)


def _lab_range(resource: dict[str, Any]) -> tuple[float | None, float | None]:
    for rr in resource.get("referenceRange") or []:
        if not isinstance(rr, dict):
            continue
        low = rr.get("low", {}).get("value") if isinstance(rr.get("low"), dict) else None
        high = rr.get("high", {}).get("value") if isinstance(rr.get("high"), dict) else None
        if low is not None or high is not None:
            return (float(low) if low is not None else None), (float(high) if high is not None else None)
    return None, None


class _Builder:
    def __init__(self, inputs: ClinicalInput, knowledge: Knowledge, now: datetime) -> None:
        self.k = knowledge
        self.now = now
        patient = inputs.patient or {}
        self.facts = PatientFacts(
            patient_id=patient.get("id") if isinstance(patient.get("id"), str) else None,
            sex=patient.get("gender") if isinstance(patient.get("gender"), str) else None,
            birth_date=parse_date(patient.get("birthDate")),
            deceased=patient.get("deceasedBoolean") is True or isinstance(patient.get("deceasedDateTime"), str),
        )
        self.inputs = inputs

    def add(self, entry: Entry) -> None:
        self.facts.entries.setdefault(entry.concept, []).append(entry)

    def build(self) -> PatientFacts:
        for index, resource in enumerate(self.inputs.resources):
            self.read(resource, index)
        self.derive_index_events()
        return self.facts

    def read(self, resource: dict[str, Any], index: int) -> None:
        rtype = str(resource.get("resourceType"))
        ref = label(resource, index)
        status = resource.get("status")
        if isinstance(status, str) and status in IGNORED_STATUS.get(rtype, frozenset()):
            self.facts.ignored.append(f"{ref}: status {status}")
            return
        if rtype == "Condition":
            verification = _status_code(resource.get("verificationStatus"))
            if verification in IGNORED_VERIFICATION:
                self.facts.ignored.append(f"{ref}: verificationStatus {verification}")
                return
        if rtype == "Observation" and _observation_negative(resource):
            self.facts.ignored.append(f"{ref}: finding recorded as absent")
            return
        concepts = relevant_sets(resource, self.k.terminology)
        if not concepts:
            return
        when, until, active, ordered = self.timing(rtype, resource)
        primary = _primary_concept(resource)
        display = _text(primary) or rtype
        icd = tuple(icd_codes(primary))
        site = _site(resource)
        note = self.note(rtype, resource)
        for concept in sorted(concepts):
            self.add(
                Entry(
                    concept=concept,
                    resource=ref,
                    resource_type=rtype,
                    display=display,
                    when=when,
                    until=until,
                    active=active,
                    ordered_only=ordered,
                    icd=icd,
                    site=site,
                    note=note,
                )
            )
            if rtype == "Observation" and concept in MEASURED:
                self.measure(concept, resource, ref, display, when)

    def timing(self, rtype: str, r: dict[str, Any]) -> tuple[datetime | None, datetime | None, bool, bool]:
        """(when, until, still active, ordered only) for each resource type."""
        status = r.get("status") if isinstance(r.get("status"), str) else ""
        if rtype == "Condition":
            when = _period_start(r, "onset") or parse_when(r.get("recordedDate"))
            until = parse_when(r.get("abatementDateTime")) or _period_end(r, "abatement")
            clinical = _status_code(r.get("clinicalStatus"))
            active = clinical not in INACTIVE_CLINICAL and until is None
            return when, until, active, False
        if rtype == "Observation":
            return _period_start(r, "effective") or parse_when(r.get("issued")), None, True, False
        if rtype == "Procedure":
            return _period_start(r, "performed"), _period_end(r, "performed"), status == "in-progress", False
        if rtype == "MedicationRequest":
            when = parse_when(r.get("authoredOn"))
            return when, None, status in ("active", "on-hold", "unknown", ""), False
        if rtype in ("MedicationStatement", "MedicationAdministration"):
            return (
                _period_start(r, "effective"),
                _period_end(r, "effective"),
                status in ("active", "in-progress"),
                False,
            )
        if rtype == "ServiceRequest":
            when = parse_when(r.get("authoredOn")) or _period_start(r, "occurrence")
            return when, None, status == "active", status != "completed"
        if rtype == "DiagnosticReport":
            return _period_start(r, "effective") or parse_when(r.get("issued")), None, True, False
        return None, None, True, False

    @staticmethod
    def note(rtype: str, r: dict[str, Any]) -> str:
        parts: list[str] = []
        if rtype == "DiagnosticReport" and isinstance(r.get("conclusion"), str):
            parts.append(r["conclusion"])
        if rtype == "Observation":
            if isinstance(r.get("valueString"), str):
                parts.append(r["valueString"])
            parts.append(_text(r.get("valueCodeableConcept")))
            for interp in r.get("interpretation") or []:
                parts.append(_status_code(interp))
        return " ".join(p for p in parts if p)

    def measure(self, concept: str, r: dict[str, Any], ref: str, display: str, when: datetime | None) -> None:
        value, unit = _quantity(r)
        interpretation = ""
        for interp in r.get("interpretation") or []:
            interpretation = _status_code(interp) or interpretation
        if concept == "body_temperature" and value is not None and unit in FAHRENHEIT:
            value, unit = round((value - 32) * 5 / 9, 2), "Cel"
        low, high = _lab_range(r)
        range_source = "lab" if (low is not None or high is not None) else ""
        if not range_source:
            low, high, range_source = self.default_range(r, unit, when)
        self.facts.measurements.setdefault(concept, []).append(
            Measurement(concept, ref, display, when, value, unit, low, high, range_source, interpretation)
        )

    def default_range(
        self, r: dict[str, Any], unit: str, when: datetime | None
    ) -> tuple[float | None, float | None, str]:
        """The knowledge base's default range for this LOINC code and unit, adults only where it says so."""
        codes = {c.get("code") for c in (r.get("code") or {}).get("coding") or [] if isinstance(c, dict)}
        for spec in (self.k.parameters.get("reference_ranges") or {}).values():
            if not codes & set(spec.get("loinc", [])):
                continue
            if unit not in spec.get("units", []):
                return None, None, ""
            age = self.facts.age_on(when)
            if spec.get("adults_only") and (age is None or age < int(self.k.param("age", "adult_from_years"))):
                return None, None, ""
            return (
                float(spec["low"]),
                float(spec["high"]),
                f"default ({spec.get('source', 'knowledge base')})",
            )
        return None, None, ""

    # ----- index events (ho-rules-v1 §2) -----

    def derive_index_events(self) -> None:
        f = self.facts
        for population, sets in POPULATION_SETS.items():
            for entry in f.recorded(*sets):
                if population in PROCEDURE_POPULATIONS and entry.resource_type != "Procedure":
                    continue  # a population by procedure needs the procedure done, not a diagnosis or an order
                if population not in PROCEDURE_POPULATIONS and entry.resource_type not in ("Condition",):
                    continue
                self.add_index(population, entry)
        # ho-rules-v1 §2: "coma after trauma" is the TBI population too (not a nontraumatic coma, R40.2A).
        trauma = [
            e for e in f.recorded("long_bone_fracture", "acetabular_fracture", "sci") if e.resource_type == "Condition"
        ] + [
            e
            for entries in f.entries.values()
            for e in entries
            if e.resource_type == "Condition" and any(c.startswith("S") for c in e.icd)
        ]
        if trauma:
            for coma in f.recorded("coma"):
                if coma.resource_type == "Condition" and not any(c.startswith("R402A") for c in coma.icd):
                    self.add_index(Population.TBI, coma)
        for entry in f.recorded("burn", "burn_full_thickness"):
            if entry.resource_type == "Condition" and (
                entry.concept == "burn_full_thickness" or any(burn_is_full_thickness(c) for c in entry.icd)
            ):
                self.add_index(Population.BURN, entry)

    def add_index(self, population: Population, entry: Entry) -> None:
        events = self.facts.index_events.setdefault(population, [])
        if not any(e.resource == entry.resource for e in events):
            events.append(IndexEvent(population, entry.when, entry.resource, entry.display))


def build_facts(inputs: ClinicalInput, knowledge: Knowledge, now: datetime) -> PatientFacts:
    return _Builder(inputs, knowledge, now).build()


# ---------- derived pictures the risk rules share ----------


@dataclass(frozen=True)
class SciPicture:
    complete: bool | None  # None: completeness not recorded
    levels: frozenset[str]  # "cervical", "thoracic", "lumbosacral"

    @property
    def lumbosacral_only(self) -> bool:
        return self.levels == frozenset({"lumbosacral"})


def sci_picture(facts: PatientFacts) -> SciPicture:
    complete: bool | None = None
    if facts.recorded("sci_complete"):
        complete = True
    elif facts.recorded("sci_incomplete"):
        complete = False
    levels = {
        level
        for level, concept in (
            ("cervical", "sci_cervical"),
            ("thoracic", "sci_thoracic"),
            ("lumbosacral", "sci_lumbosacral"),
        )
        if facts.recorded(concept)
    }
    return SciPicture(complete, frozenset(levels))


@dataclass(frozen=True)
class TbiPicture:
    severe_because: tuple[str, ...]  # empty: no sign of severity recorded
    coma_days: float | None  # longest recorded coma, None if no coma recorded
    coma_evidence: str


def tbi_picture(facts: PatientFacts, knowledge: Knowledge, now: datetime) -> TbiPicture:
    reasons: list[str] = []
    severe_max = float(knowledge.param("gcs", "severe_max"))
    gcs = [m for m in facts.measurements.get("gcs_total", []) if m.value is not None]
    low_gcs = [m for m in gcs if m.value is not None and m.value <= severe_max]
    if low_gcs:
        worst = min(low_gcs, key=lambda m: m.value or 0)
        reasons.append(f"GCS {worst.value:g} recorded ({worst.resource})")
    for entry in facts.recorded("gcs_severe_code"):
        reasons.append(f"GCS 3-8 coded ({entry.display})")
    for entry in facts.recorded("tbi"):
        if any(tbi_loc_over_24h(code) for code in entry.icd):
            reasons.append(f"loss of consciousness over 24 h ({entry.display})")
    comas = facts.recorded("coma")
    if comas:
        reasons.append(f"coma recorded ({comas[0].display})")
    coma_days: float | None = None
    evidence = ""
    for entry in comas:
        if entry.when is None:
            continue
        end = entry.until or (now if entry.active else None)
        if end is None:
            continue
        span = days_between(entry.when, end)
        if coma_days is None or span > coma_days:
            coma_days, evidence = span, f"{entry.display} ({entry.resource})"
    # A run of GCS <= 8 results with no better score in between also measures a coma.
    dated = sorted((m for m in gcs if m.when is not None), key=lambda m: m.when)  # type: ignore[arg-type,return-value]
    start: Measurement | None = None
    for m in dated:
        assert m.when is not None and m.value is not None
        if m.value <= severe_max:
            start = start or m
            assert start.when is not None
            span = days_between(start.when, m.when)
            if coma_days is None or span > coma_days:
                coma_days, evidence = (
                    span,
                    f"GCS <= {severe_max:g} from {start.when.date()} to {m.when.date()}",
                )
        else:
            start = None
    return TbiPicture(tuple(dict.fromkeys(reasons)), coma_days, evidence)


def burn_tbsa(facts: PatientFacts) -> int | None:
    deciles = [d for e in facts.recorded("burn") for d in (burn_tbsa_decile(c) for c in e.icd) if d is not None]
    return max(deciles) if deciles else None
