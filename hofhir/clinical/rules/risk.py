"""HO risk level per index population (ho-rules-v1 §3). Pure functions over PatientFacts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hofhir.clinical.facts import Entry, IndexEvent, PatientFacts
from hofhir.clinical.model import Factor, FactorStatus, Finding, Indicator, Population, RiskLevel, Topic, highest
from hofhir.clinical.rules.common import factor, population_names, say
from hofhir.clinical.rules.pictures import burn_tbsa, sci_picture, tbi_picture
from hofhir.fhir.dates import days_between
from hofhir.knowledge import Knowledge

PRESENT, ABSENT, UNKNOWN = FactorStatus.PRESENT, FactorStatus.ABSENT, FactorStatus.UNKNOWN

# Evidence every population's assessment cites (ho-rules-v1 §2 table).
POPULATION_EVIDENCE: dict[Population, tuple[str, ...]] = {
    Population.SCI: ("E-01", "R-20"),
    Population.TBI: ("E-02", "N-07"),
    Population.THA: ("E-05",),
    Population.ACETABULAR_ORIF: ("E-07",),
    Population.BURN: ("R-10",),
    Population.STROKE: ("E-03",),
    Population.FRACTURE: ("R-09", "R-18"),
}


@dataclass(frozen=True)
class PopulationRisk:
    population: Population
    level: RiskLevel
    index: IndexEvent | None
    factors: tuple[Factor, ...]
    rules: tuple[str, ...]
    basis: str  # one line: how the level was reached
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RiskAssessment:
    level: RiskLevel | None  # None: no at-risk population
    populations: tuple[PopulationRisk, ...]
    modifiers: tuple[str, ...]
    context: tuple[str, ...]
    rules: tuple[str, ...]

    def for_population(self, population: Population) -> PopulationRisk | None:
        return next((p for p in self.populations if p.population == population), None)


def _present(k: Knowledge, rule: str, code: str, entries: list[Entry], **fields: object) -> Factor:
    e = entries[0]
    when = f", {e.when.date()}" if e.when else ""
    return factor(k, code, rule, PRESENT, f"{e.display}{when}", **fields)


def _recorded_or_unknown(k: Knowledge, rule: str, code: str, entries: list[Entry], **fields: object) -> Factor:
    """Conditions absent from the record are not known to be absent: report 'not recorded'."""
    if entries:
        return _present(k, rule, code, entries, **fields)
    return factor(k, code, rule, UNKNOWN, "not recorded", **fields)


def _present_count(factors: tuple[Factor, ...] | list[Factor]) -> int:
    return sum(1 for f in factors if f.status is PRESENT)


# ---------- SCI ----------


def sci_risk(facts: PatientFacts, k: Knowledge) -> PopulationRisk:
    index = facts.index_event(Population.SCI)
    picture = sci_picture(facts)
    age_limit = int(k.param("age", "sci_age_over_years"))
    # ho-rules-v1 §3 (1.1): N-01 is the age at the injury that defines the population, its earliest event.
    injury = facts.first_index_event(Population.SCI)
    age = facts.age_on(injury.when if injury else None)
    if age is None:
        n01 = factor(k, "sci_age", "N-01", UNKNOWN, "birth date or injury date not recorded", age=age_limit)
    else:
        n01 = factor(k, "sci_age", "N-01", PRESENT if age > age_limit else ABSENT, f"{age} years", age=age_limit)
    if picture.complete is True:
        n02 = _present(k, "N-02", "sci_complete", facts.recorded("sci_complete"))
    elif picture.complete is False:
        n02 = factor(k, "sci_complete", "N-02", ABSENT, "incomplete lesion recorded")
    else:
        n02 = factor(k, "sci_complete", "N-02", UNKNOWN, "completeness not recorded")
    n03 = spasticity_factor(facts, k, "N-03")
    n04 = _recorded_or_unknown(k, "N-04", "pressure_ulcer", facts.recorded("pressure_ulcer"))
    factors = (n01, n02, n03, n04)
    count = _present_count(factors)
    rules = ["N-05", *(f.rule for f in factors if f.status is PRESENT)]
    notes: list[str] = []
    if count >= 2:
        level, basis = RiskLevel.HIGH, say(k, "reasons", "sci_high", count=count, high=2)
    elif count == 0 and picture.lumbosacral_only:
        level, basis = RiskLevel.LOW, say(k, "reasons", "sci_low")
        rules.append("N-06")
    else:
        level, basis = RiskLevel.MODERATE, say(k, "reasons", "sci_moderate", count=count)
    if picture.lumbosacral_only and level is not RiskLevel.LOW:
        notes.append(say(k, "reasons", "sci_lumbosacral"))
        rules.append("N-06")
    return PopulationRisk(Population.SCI, level, index, factors, tuple(dict.fromkeys(rules)), basis, tuple(notes))


def spasticity_factor(facts: PatientFacts, k: Knowledge, rule: str) -> Factor:
    conditions = facts.recorded("spasticity")
    if conditions:
        return _present(k, rule, "spasticity", conditions)
    drugs = facts.recorded("antispasticity")
    if drugs:
        e = drugs[0]
        return factor(k, "spasticity", rule, PRESENT, f"antispasticity drug: {e.display}")
    return factor(k, "spasticity", rule, UNKNOWN, "not recorded")


# ---------- TBI ----------


def tbi_risk(facts: PatientFacts, k: Knowledge, now: datetime) -> PopulationRisk:
    index = facts.index_event(Population.TBI)
    picture = tbi_picture(facts, k, now)
    long_coma = float(k.param("coma", "long_coma_days"))
    days = f"{long_coma:g}"
    if picture.severe_because:
        n07 = factor(k, "tbi_severe", "N-07", PRESENT, "; ".join(picture.severe_because))
    elif picture.not_severe_because:
        # ho-rules-v1 §3 (1.1): a recorded answer (GCS 15, LOC of 30 minutes or less) is an answer.
        n07 = factor(k, "tbi_severe", "N-07", ABSENT, "; ".join(picture.not_severe_because))
    else:
        n07 = factor(k, "tbi_severe", "N-07", UNKNOWN, ", ".join(picture.not_recorded))
    if picture.coma_days is None:
        n08 = factor(k, "coma_long", "N-08", UNKNOWN, "coma duration not recorded", days=days)
    else:
        status = PRESENT if picture.coma_days > long_coma else ABSENT
        evidence = f"{picture.coma_days:.0f} days: {picture.coma_evidence}"
        n08 = factor(k, "coma_long", "N-08", status, evidence, days=days)
    n09 = _recorded_or_unknown(k, "N-09", "long_bone_fracture", facts.recorded("long_bone_fracture"))
    n10 = spasticity_factor(facts, k, "N-10")
    factors = (n07, n08, n09, n10)
    count = _present_count(factors)
    if count >= 2:
        level, basis = RiskLevel.HIGH, f"{count} TBI risk factors (2 or more: high)"
    elif count == 1:
        level, basis = RiskLevel.MODERATE, "1 TBI risk factor"
    else:
        level, basis = RiskLevel.LOW, "no TBI risk factor recorded"
    rules = ["N-07", *(f.rule for f in factors if f.status is PRESENT)]
    return PopulationRisk(Population.TBI, level, index, factors, tuple(dict.fromkeys(rules)), basis)


# ---------- THA ----------

HIP_SURGERY_SETS = ("tha", "acetabular_orif", "ho_excision")


def prior_ho_after_hip_surgery(facts: PatientFacts, before: datetime | None) -> Entry | None:
    """R-02: an HO diagnosis that followed an earlier hip operation (or an earlier HO excision)."""
    surgeries = [e for e in facts.recorded(*HIP_SURGERY_SETS) if e.resource_type == "Procedure"]
    prosthesis = facts.recorded("hip_prosthesis")
    for ho in facts.recorded("ho"):
        if ho.resource_type != "Condition":
            continue
        if before is not None and ho.when is not None and ho.when >= before:
            continue
        for surgery in surgeries:
            if surgery.when is None or ho.when is None or surgery.when <= ho.when:
                return ho
        if prosthesis:
            return ho
    for excision in facts.recorded("ho_excision"):
        if excision.resource_type == "Procedure" and (
            before is None or excision.when is None or excision.when < before
        ):
            return excision
    return None


def _sides(entries: list[Entry]) -> set[str]:
    sides: set[str] = set()
    for e in entries:
        text = f"{e.site} {e.display}".lower()
        for code in e.icd:
            if code.startswith(("M161", "M163", "M165", "M167", "Z9664", "M2575")) and code[-1] in "12":
                sides.add({"1": "right", "2": "left"}[code[-1]])
        if "right" in text:
            sides.add("right")
        if "left" in text:
            sides.add("left")
    return sides


def tha_factors(
    facts: PatientFacts,
    k: Knowledge,
    surgery: Entry | None,
    reference: datetime,
    planned_revision: bool = False,
) -> tuple[list[Factor], list[Factor]]:
    """(strong factors, other factors) for a THA done at `surgery` (or planned, surgery=None, at `reference`)."""
    strong: list[Factor] = []
    other: list[Factor] = []
    surgery_date = surgery.when if surgery else reference
    prior = prior_ho_after_hip_surgery(facts, surgery_date)
    strong.append(
        factor(k, "prior_ho", "R-02", PRESENT, f"{prior.display} ({prior.resource})")
        if prior
        else factor(k, "prior_ho", "R-02", UNKNOWN, "not recorded")
    )
    strong.append(_recorded_or_unknown(k, "R-07", "bone_forming", facts.recorded("bone_forming_disorder")))
    if facts.sex is None or facts.sex == "unknown":
        other.append(factor(k, "male", "R-01", UNKNOWN, "sex not recorded"))
    else:
        other.append(factor(k, "male", "R-01", PRESENT if facts.sex == "male" else ABSENT, facts.sex))
    hip_entries = facts.recorded("hip_oa", "hip_prosthesis")
    bilateral = facts.recorded("hip_oa_bilateral")
    if bilateral:
        other.append(_present(k, "R-03", "bilateral_hip", bilateral))
    elif _sides(hip_entries) == {"right", "left"}:
        other.append(factor(k, "bilateral_hip", "R-03", PRESENT, "right and left hip disease recorded"))
    else:
        other.append(factor(k, "bilateral_hip", "R-03", UNKNOWN, "not recorded"))
    if facts.recorded("hip_oa") and facts.recorded("hip_osteophyte"):
        other.append(_present(k, "R-04", "hypertrophic_oa", facts.recorded("hip_osteophyte")))
    else:
        other.append(factor(k, "hypertrophic_oa", "R-04", UNKNOWN, "not recorded"))
    poor_rom = [
        e for e in facts.recorded("poor_hip_rom") if e.when is None or surgery_date is None or e.when <= surgery_date
    ]
    other.append(_recorded_or_unknown(k, "R-05", "poor_rom", poor_rom))
    if planned_revision or (
        surgery is not None and surgery.resource in {e.resource for e in facts.recorded("tha_revision")}
    ):
        other.append(factor(k, "revision", "R-11", PRESENT, surgery.display if surgery else "revision ordered"))
    other.append(_recorded_or_unknown(k, "R-13", "immobilization", facts.recorded("immobility")))
    if surgery is not None and surgery.when is not None:
        other.extend(_postoperative_factors(facts, k, surgery.when))
    return strong, other


def _postoperative_factors(facts: PatientFacts, k: Knowledge, surgery_date: datetime) -> list[Factor]:
    out: list[Factor] = []
    threshold = float(k.param("fever", "threshold_celsius"))
    window = timedelta(days=k.window("fever_at_surgery_window_days"))
    temps = [m for m in facts.measurements.get("body_temperature", []) if m.when is not None and m.value is not None]
    near = [m for m in temps if abs(m.when - surgery_date) <= window]  # type: ignore[operator]
    fever_codes = [e for e in facts.recorded("fever") if e.when is not None and abs(e.when - surgery_date) <= window]
    if fever_codes or any(m.value is not None and m.value >= threshold for m in near):
        out.append(factor(k, "fever_at_surgery", "R-06", PRESENT, f">= {threshold:g} °C around the operation"))
    elif near:
        out.append(factor(k, "fever_at_surgery", "R-06", ABSENT, "temperature normal around the operation"))
    else:
        out.append(factor(k, "fever_at_surgery", "R-06", UNKNOWN, "no temperature recorded around the operation"))
    dislocation_days = k.window("early_dislocation_days")
    dislocations = [
        e
        for e in facts.recorded("prosthesis_dislocation")
        if e.when is not None and 0 <= days_between(surgery_date, e.when) <= dislocation_days
    ]
    out.append(_recorded_or_unknown(k, "R-15", "early_dislocation", dislocations, days=dislocation_days))
    search_end = surgery_date + timedelta(days=k.window("postoperative_fever_search_days"))
    fever_days = {
        m.when.date()
        for m in temps
        if m.when is not None and m.value is not None and m.value >= threshold and surgery_date < m.when <= search_end
    }
    limit = k.window("postoperative_fever_days")
    if len(fever_days) > limit:
        out.append(factor(k, "postop_fever", "R-16", PRESENT, f"fever on {len(fever_days)} days", days=limit))
    else:
        out.append(
            factor(
                k,
                "postop_fever",
                "R-16",
                UNKNOWN if not temps else ABSENT,
                "not recorded" if not temps else f"fever on {len(fever_days)} days",
                days=limit,
            )
        )
    hematomas = [e for e in facts.recorded("postop_hematoma") if e.when is None or e.when >= surgery_date]
    out.append(_recorded_or_unknown(k, "R-17", "hematoma", hematomas))
    return out


def tha_level(strong: list[Factor], other: list[Factor]) -> tuple[RiskLevel, str]:
    strong_n = _present_count(strong)
    other_n = _present_count(other)
    if strong_n:
        return RiskLevel.HIGH, "a strong THA risk factor (R-02 or R-07)"
    if other_n >= 2:
        return RiskLevel.HIGH, f"{other_n} THA risk factors (2 or more: high)"
    if other_n == 1:
        return RiskLevel.MODERATE, "1 THA risk factor"
    return RiskLevel.LOW, "no THA risk factor recorded"


def tha_risk(facts: PatientFacts, k: Knowledge, now: datetime) -> PopulationRisk:
    index = facts.index_event(Population.THA)
    surgery = next((e for e in facts.recorded("tha") if index and e.resource == index.resource), None)
    strong, other = tha_factors(facts, k, surgery, index.when if index and index.when else now)
    level, basis = tha_level(strong, other)
    factors = tuple(strong + other)
    rules = tuple(dict.fromkeys(f.rule for f in factors if f.status is PRESENT))
    return PopulationRisk(Population.THA, level, index, factors, rules, basis)


# ---------- other populations ----------


def burn_risk(facts: PatientFacts, k: Knowledge) -> PopulationRisk:
    index = facts.index_event(Population.BURN)
    decile = burn_tbsa(facts)
    limit = int(k.param("burn", "high_risk_tbsa_decile"))
    percent = limit * 10
    if decile is None:
        extent = factor(
            k, "burn_extent", "LIT-LEVI-2015", UNKNOWN, say(k, "reasons", "burn_extent_unknown"), percent=percent
        )
    else:
        status = PRESENT if decile >= limit else ABSENT
        extent = factor(
            k, "burn_extent", "LIT-LEVI-2015", status, f"{decile * 10}-{decile * 10 + 9} %", percent=percent
        )
    if extent.status is PRESENT:
        return PopulationRisk(
            Population.BURN,
            RiskLevel.HIGH,
            index,
            (extent,),
            ("R-10", "LIT-LEVI-2015"),
            say(k, "reasons", "burn_high", percent=percent),
        )
    return PopulationRisk(Population.BURN, RiskLevel.MODERATE, index, (extent,), ("R-10",), "full-thickness burn")


def general_factors(facts: PatientFacts, k: Knowledge, now: datetime) -> tuple[Factor, ...]:
    """R-19 (S2): prolonged immobility, extremity swelling, pressure ulcers, coma over 2 weeks."""
    picture = tbi_picture(facts, k, now)
    long_coma = float(k.param("coma", "long_coma_days"))
    days = f"{long_coma:g}"
    if picture.coma_days is not None and picture.coma_days > long_coma:
        coma = factor(k, "coma_long", "R-19", PRESENT, picture.coma_evidence, days=days)
    elif picture.coma_days is not None:
        evidence = f"{picture.coma_days:.0f} days: {picture.coma_evidence}"
        coma = factor(k, "coma_long", "R-19", ABSENT, evidence, days=days)
    else:
        coma = factor(k, "coma_long", "R-19", UNKNOWN, "not recorded", days=days)
    return (
        _recorded_or_unknown(k, "R-19", "immobility", facts.recorded("immobility")),
        _recorded_or_unknown(k, "R-19", "swelling", facts.recorded("sign_swelling")),
        _recorded_or_unknown(k, "R-19", "pressure_ulcer", facts.recorded("pressure_ulcer")),
        coma,
    )


def general_risk(facts: PatientFacts, k: Knowledge, population: Population, now: datetime) -> PopulationRisk:
    index = facts.index_event(population)
    factors = general_factors(facts, k, now)
    count = _present_count(factors)
    if count:
        return PopulationRisk(
            population,
            RiskLevel.MODERATE,
            index,
            factors,
            ("R-19",),
            f"{count} of the general risk factors (R-19)",
        )
    return PopulationRisk(
        population, RiskLevel.LOW, index, factors, (), "none of the general risk factors (R-19) recorded"
    )


def acetabular_risk(facts: PatientFacts) -> PopulationRisk:
    return PopulationRisk(
        Population.ACETABULAR_ORIF,
        RiskLevel.HIGH,
        facts.index_event(Population.ACETABULAR_ORIF),
        (),
        ("E-07",),
        "open fixation of an acetabular fracture (up to 50 % develop HO)",
    )


# ---------- the whole picture ----------


def assess(facts: PatientFacts, k: Knowledge, now: datetime) -> RiskAssessment:
    populations: list[PopulationRisk] = []
    present = set(facts.populations())
    if Population.SCI in present:
        populations.append(sci_risk(facts, k))
    if Population.TBI in present:
        populations.append(tbi_risk(facts, k, now))
    if Population.THA in present:
        populations.append(tha_risk(facts, k, now))
    if Population.ACETABULAR_ORIF in present:
        populations.append(acetabular_risk(facts))
    if Population.BURN in present:
        populations.append(burn_risk(facts, k))
    for population in (Population.STROKE, Population.FRACTURE):
        if population in present:
            populations.append(general_risk(facts, k, population, now))
    populations = [
        PopulationRisk(
            p.population,
            p.level,
            p.index,
            p.factors,
            POPULATION_EVIDENCE[p.population] + p.rules,
            p.basis,
            p.notes,
        )
        for p in populations
    ]
    level = highest([p.level for p in populations])
    modifiers: list[str] = []
    rules: list[str] = [r for p in populations for r in p.rules]
    age = facts.age_on(now)
    young = int(k.param("age", "young_child_under_years"))
    if level is not None and age is not None and age < young:
        level = RiskLevel.LOW
        modifiers.append(say(k, "reasons", "young_child", age=age))
        rules.append("E-06")
        # The modifier applies to every population, so that surveillance and rehabilitation (which read
        # the per-population levels) follow the lowered level too.
        populations = [
            PopulationRisk(
                p.population,
                RiskLevel.LOW,
                p.index,
                p.factors,
                (*p.rules, "E-06"),
                say(k, "reasons", "young_child_basis", basis=p.basis, young=young)
                if p.level is not RiskLevel.LOW
                else p.basis,
                p.notes,
            )
            for p in populations
        ]
    flaccid = facts.recorded("flaccid_limb")
    if level is not None and flaccid:
        modifiers.append(say(k, "reasons", "flaccid_limb", display=flaccid[0].display))
        rules.append("N-11")
    context: list[str] = []
    if Population.SCI in present and facts.recorded("anticoagulant"):
        context.append(say(k, "reasons", "anticoagulant_context"))
        rules += ["P-04", "LIT-ANTICOAGULANTS"]
    permissive = [e.display for e in facts.recorded("dvt", "pressure_ulcer")][:3]
    if level is not None and permissive:
        context.append(say(k, "reasons", "permissive_context", displays=", ".join(permissive)))
        rules.append("P-01")
    return RiskAssessment(level, tuple(populations), tuple(modifiers), tuple(context), tuple(dict.fromkeys(rules)))


# ---------- the ho-risk card ----------


def _factor_line(f: Factor) -> str:
    return f"{f.rule} {f.name}: {f.evidence}" if f.evidence else f"{f.rule} {f.name}"


def risk_finding(assessment: RiskAssessment, k: Knowledge) -> Finding | None:
    """ho-risk: level, the factors found, and those absent or not assessable, per population."""
    if assessment.level is None:
        return None
    populations = [p.population for p in assessment.populations]
    reasons: list[str] = []
    factors: list[Factor] = []
    for p in assessment.populations:
        when = f" on {p.index.when.date()}" if p.index and p.index.when else " (date not recorded)"
        event = p.index.display if p.index else population_names(k, [p.population])
        reasons.append(
            f"**{population_names(k, [p.population]).capitalize()}** ({event}{when}): {p.level.value}, {p.basis}."
        )
        found = [f for f in p.factors if f.status is FactorStatus.PRESENT]
        absent = [f for f in p.factors if f.status is FactorStatus.ABSENT]
        unknown = [f for f in p.factors if f.status is FactorStatus.UNKNOWN]
        if found:
            reasons.append(say(k, "reasons", "factors_found", lines="; ".join(_factor_line(f) for f in found)))
        if absent:
            reasons.append(say(k, "reasons", "factors_absent", lines="; ".join(_factor_line(f) for f in absent)))
        if unknown:
            lines = "; ".join(f"{f.name}: {f.evidence}" for f in unknown)
            reasons.append(say(k, "reasons", "factors_unknown", lines=lines))
        reasons.extend(p.notes)
        factors.extend(p.factors)
    reasons.extend(assessment.modifiers)
    summary_pops = [p.population for p in assessment.populations if p.level is assessment.level] or populations
    return Finding(
        topic=Topic.HO_RISK,
        indicator=Indicator.WARNING if assessment.level is RiskLevel.HIGH else Indicator.INFO,
        rules=assessment.rules,
        summary=say(
            k,
            "summaries",
            "risk",
            level_title=assessment.level.value.capitalize(),
            populations=population_names(k, summary_pops[:2]),
        ),
        populations=tuple(populations),
        reasons=tuple(reasons),
        advice=assessment.context,
        factors=tuple(factors),
        risk_level=assessment.level,
        priority=3,
    )
