"""Population "pictures": what the dated record means for a population (ho-rules-v1 §2-§3).

The facts (`hofhir.clinical.facts`) hold the dated record; this module interprets it: which comas are
"coma after trauma" (the TBI population), which burns are full thickness, how complete and how high a
spinal cord lesion is, how severe a brain injury was, how much body surface a burn covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hofhir.clinical.facts import Entry, Measurement, PatientFacts
from hofhir.clinical.model import Population
from hofhir.clinical.rules.common import say
from hofhir.fhir.dates import days_between
from hofhir.knowledge import Knowledge
from hofhir.knowledge.terminology import burn_is_full_thickness, burn_tbsa_decile, tbi_loc_over_24h

# ICD-10-CM R40.2A: nontraumatic coma: never "coma after trauma".
NONTRAUMATIC_COMA = "R402A"
# Concepts whose Conditions are injuries even when they carry no S/T code (a SNOMED-coded fracture).
TRAUMA_SETS = ("long_bone_fracture", "acetabular_fracture", "sci")


# ---------- the populations that need interpreting ----------


def trauma_entries(facts: PatientFacts) -> list[Entry]:
    """Injury Conditions: an ICD-10-CM S or T chapter code (ho-rules-v1 §2), or a fracture / SCI concept."""
    coded = [
        e
        for entries in facts.entries.values()
        for e in entries
        if e.resource_type == "Condition" and not e.ordered_only and any(c[:1] in ("S", "T") for c in e.icd)
    ]
    named = [e for e in facts.recorded(*TRAUMA_SETS) if e.resource_type == "Condition"]
    return list({e.resource: e for e in coded + named}.values())


def comas_after_trauma(facts: PatientFacts, k: Knowledge) -> list[Entry]:
    """Coma Conditions dated within `coma_after_trauma_days` of a dated injury (ho-rules-v1 §2, 1.1)."""
    limit = int(k.param("tbi", "coma_after_trauma_days"))
    injuries = [e.when for e in trauma_entries(facts) if e.when is not None]
    out: list[Entry] = []
    for coma in facts.recorded("coma"):
        if coma.resource_type != "Condition" or coma.when is None:
            continue
        if any(c.startswith(NONTRAUMATIC_COMA) for c in coma.icd):
            continue
        if any(abs(days_between(when, coma.when)) <= limit for when in injuries):
            out.append(coma)
    return out


def derive_populations(facts: PatientFacts, k: Knowledge) -> None:
    """Add the index events that need interpretation: TBI by coma after trauma, burn by depth."""
    for coma in comas_after_trauma(facts, k):
        facts.add_index(Population.TBI, coma)
    for entry in facts.recorded("burn", "burn_full_thickness"):
        if entry.resource_type == "Condition" and (
            entry.concept == "burn_full_thickness" or any(burn_is_full_thickness(c) for c in entry.icd)
        ):
            facts.add_index(Population.BURN, entry)


# ---------- SCI ----------


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


# ---------- TBI ----------


def loc_at_most_24h(code: str) -> bool:
    """S06 codes whose 6th character records a loss of consciousness of 24 hours or less (0 = none, 1-4)."""
    return code.startswith("S06") and len(code) >= 6 and code[5] in "01234"


@dataclass(frozen=True)
class TbiPicture:
    severe_because: tuple[str, ...]  # empty: no sign of severity recorded
    not_severe_because: tuple[str, ...]  # a recorded GCS over the threshold: N-07 absent (§3, 1.1)
    not_recorded: tuple[str, ...]  # what the record does not hold, and the parts it answers (a short LOC)
    coma_days: float | None  # longest recorded coma, None if no coma recorded
    coma_evidence: str


def _coma_span(
    comas: list[Entry], gcs: list[Measurement], severe_max: float, k: Knowledge, now: datetime
) -> tuple[float | None, str]:
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
                coma_days = span
                evidence = say(
                    k, "evidence", "gcs_run", max=f"{severe_max:g}", start=start.when.date(), end=m.when.date()
                )
        else:
            start = None
    return coma_days, evidence


def tbi_picture(facts: PatientFacts, k: Knowledge, now: datetime) -> TbiPicture:
    severe: list[str] = []
    not_severe: list[str] = []
    missing: list[str] = []
    severe_max = float(k.param("gcs", "severe_max"))
    gcs = [m for m in facts.measurements.get("gcs_total", []) if m.value is not None]
    low_gcs = [m for m in gcs if m.value is not None and m.value <= severe_max]
    if low_gcs:
        worst = min(low_gcs, key=lambda m: m.value or 0)
        severe.append(say(k, "evidence", "gcs_low", value=f"{worst.value:g}", resource=worst.resource))
    elif gcs:
        # ho-rules-v1 §3 (1.1): a recorded GCS over the threshold is an answer (N-07 absent), not unknown.
        worst = min(gcs, key=lambda m: m.value or 0)
        not_severe.append(
            say(k, "evidence", "gcs_not_low", value=f"{worst.value:g}", max=f"{severe_max:g}", resource=worst.resource)
        )
    codes = facts.recorded("gcs_severe_code")
    for entry in codes:
        severe.append(say(k, "evidence", "gcs_severe_code", max=f"{severe_max:g}", display=entry.display))
    if not gcs and not codes:
        missing.append(say(k, "evidence", "no_gcs"))
    loc_long = [e for e in facts.recorded("tbi") if any(tbi_loc_over_24h(c) for c in e.icd)]
    loc_short = [e for e in facts.recorded("tbi") if any(loc_at_most_24h(c) for c in e.icd)]
    for entry in loc_long:
        severe.append(say(k, "evidence", "loc_over_24h", display=entry.display))
    if loc_short and not loc_long:
        # A concussion coded "with LOC of 30 minutes or less" answers "LOC over 24 h": absent (§3, 1.1);
        # severity as a whole stays unknown unless a GCS answers it.
        missing.append(say(k, "evidence", "loc_not_over_24h", display=loc_short[0].display))
    if not loc_long and not loc_short:
        missing.append(say(k, "evidence", "no_loc"))
    comas = comas_after_trauma(facts, k)
    if comas:
        severe.append(say(k, "evidence", "coma", display=comas[0].display))
    else:
        missing.append(say(k, "evidence", "no_coma"))
    # Coma duration (N-08, and R-19 for every population) reads every recorded coma, as before 1.1.
    coma_days, evidence = _coma_span(facts.recorded("coma"), gcs, severe_max, k, now)
    return TbiPicture(
        tuple(dict.fromkeys(severe)), tuple(dict.fromkeys(not_severe)), tuple(missing), coma_days, evidence
    )


# ---------- burn ----------


def burn_tbsa(facts: PatientFacts) -> int | None:
    deciles = [d for e in facts.recorded("burn") for d in (burn_tbsa_decile(c) for c in e.icd) if d is not None]
    return max(deciles) if deciles else None
