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
from hofhir.fhir.dates import parse_date, parse_when, years_between
from hofhir.fhir.read import ClinicalInput, label
from hofhir.knowledge import Knowledge
from hofhir.knowledge.terminology import icd_codes

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
_NO_STATUS: frozenset[str] = frozenset()
IGNORED_VERIFICATION = frozenset({"entered-in-error", "refuted"})
INACTIVE_CLINICAL = frozenset({"inactive", "remission", "resolved"})
# Observation values that say a finding is absent (SNOMED Absent/No/Negative, HL7 v2 N, "false").
NEGATIVE_VALUES = frozenset({"2667000", "373067005", "260385009", "N", "n", "no", "false", "absent"})
_NUMBERS = (int, float)
FAHRENHEIT = frozenset({"[degF]", "degF", "°F", "F", "deg F"})


@dataclass(frozen=True, init=False)
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
    verification: str = ""  # Condition.verificationStatus code ("" when absent)
    reasons: tuple[str, ...] = ()  # value sets named by the resource's reasonCode (orders, procedures)

    # The __init__ dataclass would write, with the same signature (tests/unit/test_facts_init.py), storing
    # into the instance dict: a frozen dataclass's own __init__ calls object.__setattr__ per field, which
    # cost three times as much as the rest of the instance (one or more per relevant resource).
    def __init__(
        self,
        concept: str,
        resource: str,
        resource_type: str,
        display: str,
        when: datetime | None,
        until: datetime | None = None,
        active: bool = True,
        ordered_only: bool = False,
        icd: tuple[str, ...] = (),
        site: str = "",
        note: str = "",
        verification: str = "",
        reasons: tuple[str, ...] = (),
    ) -> None:
        d = self.__dict__
        d["concept"] = concept
        d["resource"] = resource
        d["resource_type"] = resource_type
        d["display"] = display
        d["when"] = when
        d["until"] = until
        d["active"] = active
        d["ordered_only"] = ordered_only
        d["icd"] = icd
        d["site"] = site
        d["note"] = note
        d["verification"] = verification
        d["reasons"] = reasons


@dataclass(frozen=True, init=False)
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
    unit_known: bool = True  # False: a unit the knowledge base cannot read or convert (never compared)
    original: str = ""  # the value as recorded, when it was converted ("3.6 ukat/L")

    def __init__(  # as Entry's, for the same reason
        self,
        concept: str,
        resource: str,
        display: str,
        when: datetime | None,
        value: float | None,
        unit: str,
        low: float | None,
        high: float | None,
        range_source: str,
        interpretation: str = "",
        unit_known: bool = True,
        original: str = "",
    ) -> None:
        d = self.__dict__
        d["concept"] = concept
        d["resource"] = resource
        d["display"] = display
        d["when"] = when
        d["value"] = value
        d["unit"] = unit
        d["low"] = low
        d["high"] = high
        d["range_source"] = range_source
        d["interpretation"] = interpretation
        d["unit_known"] = unit_known
        d["original"] = original

    @property
    def above_range(self) -> bool | None:
        if self.unit_known and self.value is not None and self.high is not None:
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

    def add_index(self, population: Population, entry: Entry) -> None:
        events = self.index_events.setdefault(population, [])
        if not any(e.resource == entry.resource for e in events):
            events.append(IndexEvent(population, entry.when, entry.resource, entry.display))

    def first_index_event(self, population: Population) -> IndexEvent | None:
        """The earliest dated index event of a population (an undated one if none is dated)."""
        events = self.index_events.get(population) or []
        dated = [e for e in events if e.when is not None]
        if dated:
            return min(dated, key=lambda e: e.when)  # type: ignore[arg-type,return-value]
        return events[0] if events else None

    def age_on(self, when: datetime | None) -> int | None:
        if self.birth_date is None or when is None:
            return None
        return years_between(self.birth_date, when.date())


# ---------- building ----------


def concept_text(concept: Any) -> str:
    """A CodeableConcept in words: its text, else a coding's display, else a code; '' for anything else."""
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
        return "; ".join(t for t in (concept_text(s) for s in sites) if t)
    return concept_text(sites)


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
    if isinstance(value, bool) or not isinstance(value, _NUMBERS):
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


# The lab plans each knowledge value remembers (distinct LOINC codes and units; starts again when full).
LAB_PLANS = 4096
_LabPlan = tuple[tuple[float, str] | None, dict[str, Any] | None, bool]


class _Labs:
    """What the knowledge base says about a lab result's codes and unit (parameters.toml [unit_conversions],
    [reference_ranges]), worked out once per (codes, unit) and knowledge value: the same few labs come in
    call after call, and each used to test every spec."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        self.parameters = parameters
        self._plans: dict[tuple[tuple[str, ...], str], _LabPlan] = {}

    def plan(self, r: dict[str, Any], unit: str) -> _LabPlan:
        """(conversion, default range spec, unit readable) for an Observation with this unit.

        conversion: (factor, target unit) when the knowledge base converts the unit; default range spec:
        the lab's [reference_ranges] entry when it has one for the (converted) unit, else None; unit
        readable: False when the knowledge base has a default range for the lab and cannot read the unit.
        """
        codings = (r.get("code") or {}).get("coding") or []
        first = codings[0] if type(codings) is list and len(codings) == 1 else None  # most results: no loop
        key: tuple[tuple[str, ...], str]
        if type(first) is dict:
            key = ((str(first.get("code")),), unit)
        else:
            key = (tuple(str(c.get("code")) for c in codings if isinstance(c, dict)), unit)
        found = self._plans.get(key)
        if found is None:
            found = self._plan(set(key[0]), unit)
            if len(self._plans) >= LAB_PLANS:
                self._plans.clear()
            self._plans[key] = found
        return found

    def _plan(self, codes: set[str], unit: str) -> _LabPlan:
        conversion: tuple[float, str] | None = None
        for spec in (self.parameters.get("unit_conversions") or {}).values():
            if codes & set(spec.get("loinc", [])) and unit in spec.get("factors", {}):
                conversion = float(spec["factors"][unit]), str(spec["to"])
                unit = conversion[1]
                break
        for spec in (self.parameters.get("reference_ranges") or {}).values():
            if codes & set(spec.get("loinc", [])):
                readable = unit in spec.get("units", [])
                return conversion, (spec if readable else None), readable
        return conversion, None, True


def _labs(k: Knowledge) -> _Labs:
    return k.derive("facts-labs", lambda: _Labs(k.parameters))


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
        self.labs = _labs(knowledge)

    def build(self) -> PatientFacts:
        for index, resource in enumerate(self.inputs.resources):
            self.read(resource, index)
        self.derive_index_events()
        return self.facts

    def read(self, resource: dict[str, Any], index: int) -> None:
        rtype = str(resource.get("resourceType"))
        ref = label(resource, index)
        status = resource.get("status")
        if isinstance(status, str) and status in IGNORED_STATUS.get(rtype, _NO_STATUS):
            self.facts.ignored.append(f"{ref}: status {status}")
            return
        if rtype == "Condition":
            verification = _status_code(resource.get("verificationStatus"))
            if verification in IGNORED_VERIFICATION:
                self.facts.ignored.append(f"{ref}: verificationStatus {verification}")
                return
        if (
            rtype == "Observation"
            and ("valueBoolean" in resource or "valueCodeableConcept" in resource)  # else never negative
            and _observation_negative(resource)
        ):
            self.facts.ignored.append(f"{ref}: finding recorded as absent")
            return
        concepts = self.inputs.sets_of(index, self.k.terminology)
        if not concepts:
            return
        when, until, active, ordered = self.timing(rtype, resource)
        primary = _primary_concept(resource)
        display = concept_text(primary) or rtype
        icd = tuple(icd_codes(primary))
        site = _site(resource) if "bodySite" in resource else ""  # _site says "" without one
        note = self.note(rtype, resource)
        verification = _status_code(resource.get("verificationStatus")) if rtype == "Condition" else ""
        reason_sets: tuple[str, ...] = ()
        if resource.get("reasonCode"):
            reasons: set[str] = set()
            for reason in resource["reasonCode"]:
                reasons |= self.k.terminology.sets_for_concept(reason, use_text=True)
            reason_sets = tuple(sorted(reasons))
        entries = self.facts.entries
        for concept in sorted(concepts) if len(concepts) > 1 else concepts:
            entries.setdefault(concept, []).append(
                # Positional: keywords cost a dict per call (Entry's field order).
                Entry(
                    concept,
                    ref,
                    rtype,
                    display,
                    when,
                    until,
                    active,
                    ordered,
                    icd,
                    site,
                    note,
                    verification,
                    reason_sets,
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
            # ho-rules-v1 §4 (1.1): a past abatement makes a condition history; a future one does not.
            active = clinical not in INACTIVE_CLINICAL and (until is None or until > self.now)
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
            if "valueCodeableConcept" in r:  # concept_text is "" without one
                parts.append(concept_text(r["valueCodeableConcept"]))
            for interp in r.get("interpretation") or []:
                parts.append(_status_code(interp))
        return " ".join([p for p in parts if p]) if parts else ""

    def measure(self, concept: str, r: dict[str, Any], ref: str, display: str, when: datetime | None) -> None:
        value, unit = _quantity(r)
        interpretation = ""
        for interp in r.get("interpretation") or []:
            interpretation = _status_code(interp) or interpretation
        original = ""
        if concept == "body_temperature" and value is not None and unit in FAHRENHEIT:
            original = f"{value:g} {unit}"
            value, unit = round((value - 32) * 5 / 9, 2), "Cel"
        low, high = _lab_range(r)
        range_source = "lab" if (low is not None or high is not None) else ""
        unit_known = True
        conversion, default, readable = self.labs.plan(r, unit)
        if conversion is not None:
            # ho-rules-v1 §4 (1.1): a unit the knowledge base converts (µkat/L -> U/L), range and all.
            factor, target = conversion
            if value is not None:
                original = f"{value:g} {unit}"
                value = round(value * factor, 2)
            low = round(low * factor, 2) if low is not None else None
            high = round(high * factor, 2) if high is not None else None
            unit = target
        if not range_source:
            low, high, range_source = self.default_range(default, when)
            unit_known = readable
        self.facts.measurements.setdefault(concept, []).append(
            Measurement(
                concept,
                ref,
                display,
                when,
                value,
                unit,
                low,
                high,
                range_source,
                interpretation,
                unit_known,
                original,
            )
        )

    def default_range(
        self, spec: dict[str, Any] | None, when: datetime | None
    ) -> tuple[float | None, float | None, str]:
        """The knowledge base's default range (`spec`: from `_Labs.plan`), adults only where it says so."""
        if spec is None:
            return None, None, ""
        if spec.get("adults_only"):
            age = self.facts.age_on(when)
            if age is None or age < int(self.k.param("age", "adult_from_years")):
                return None, None, ""
        return float(spec["low"]), float(spec["high"]), f"default ({spec.get('source', 'knowledge base')})"

    # ----- index events (ho-rules-v1 §2) -----

    def derive_index_events(self) -> None:
        f = self.facts
        for population, sets in POPULATION_SETS.items():
            for entry in f.recorded(*sets):
                if population in PROCEDURE_POPULATIONS and entry.resource_type != "Procedure":
                    continue  # a population by procedure needs the procedure done, not a diagnosis or an order
                if population not in PROCEDURE_POPULATIONS and entry.resource_type not in ("Condition",):
                    continue
                self.facts.add_index(population, entry)
        # Populations that need interpreting (coma after trauma, burn depth) are added by
        # hofhir.clinical.rules.pictures.derive_populations: the facts hold the dated record only.


def build_facts(inputs: ClinicalInput, knowledge: Knowledge, now: datetime) -> PatientFacts:
    return _Builder(inputs, knowledge, now).build()
