"""The NSAID safety screen (ho-rules 1.1 §5a): the one gate every indomethacin suggestion passes through.

`screen_nsaid` reads what the record (and the order session's drafts) holds and returns what it found,
each finding with its source, what it could not check, and the decision: suggest, suggest with
cautions, or not suggested, with the [LIT] IDs (catalogue 2.6) that decided it. The thresholds and
look-backs are knowledge (parameters.toml [nsaid_screen]); the card wording is cards.toml [nsaid_screen].
Pure: no I/O, no clock (`now` is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from hofhir.clinical.facts import Entry, Measurement, PatientFacts, concept_text
from hofhir.clinical.kidney import CkdEpi2021, egfr_from_creatinine
from hofhir.clinical.rules.common import say, within_days
from hofhir.knowledge import Knowledge

# Draft orders as evaluate.py passes them: (the order as a dict, the value sets it falls in).
Drafts = Sequence[tuple[dict[str, Any], set[str]]]


class Decision(StrEnum):
    SUGGEST = "suggest"
    SUGGEST_WITH_CAUTIONS = "suggest-with-cautions"
    NOT_SUGGESTED = "not-suggested"


class Effect(StrEnum):
    AVOID = "avoid"  # indomethacin is not suggested
    CAUTION = "caution"  # suggested, with a caution line


@dataclass(frozen=True)
class ScreenFinding:
    """One row of the §5a table as found in the record (or the one it could not check)."""

    code: str  # short, stable: "age", "kidney_severe", "egfr_severe", "ulcer", "heart_failure", ...
    effect: Effect
    rules: tuple[str, ...]  # the catalogue IDs behind the row (LIT-*; P-04 for the bleeding line)
    text: str  # the card line: the finding and its source


@dataclass(frozen=True)
class NsaidScreen:
    decision: Decision
    findings: tuple[ScreenFinding, ...]
    unchecked: tuple[str, ...]  # what the record does not let the screen check (short codes)

    @property
    def avoid(self) -> tuple[ScreenFinding, ...]:
        return tuple(f for f in self.findings if f.effect is Effect.AVOID)

    @property
    def cautions(self) -> tuple[ScreenFinding, ...]:
        return tuple(f for f in self.findings if f.effect is Effect.CAUTION)

    @property
    def rules(self) -> tuple[str, ...]:
        """The IDs that decided: the 'avoid' rows when not suggested, else the caution rows."""
        deciding = self.avoid if self.decision is Decision.NOT_SUGGESTED else self.cautions
        return tuple(dict.fromkeys(r for f in deciding for r in f.rules))

    @property
    def all_rules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r for f in self.findings for r in f.rules))


def _date(when: datetime | None) -> str:
    return when.date().isoformat() if when is not None else "no date"


def _since(entry: Entry) -> str:
    return f"{entry.resource}, {_date(entry.when)}"


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class _Params:
    min_age: int
    egfr_avoid_below: float
    egfr_caution_below: float
    kidney_days: int
    fracture_days: int
    ulcer_days: int
    medication_recent_days: int

    @classmethod
    def of(cls, k: Knowledge) -> _Params:
        p = k.parameters["nsaid_screen"]
        return cls(
            min_age=int(p["avoid_from_age_years"]),
            egfr_avoid_below=float(p["egfr_avoid_below"]),
            egfr_caution_below=float(p["egfr_caution_below"]),
            kidney_days=int(p["kidney_lookback_days"]),
            fracture_days=int(p["long_bone_fracture_lookback_days"]),
            ulcer_days=int(p["ulcer_lookback_days"]),
            medication_recent_days=k.window("medication_recent_days"),
        )


class _Screen:
    def __init__(self, facts: PatientFacts, k: Knowledge, now: datetime) -> None:
        self.facts, self.k, self.now = facts, k, now
        self.p = _Params.of(k)
        self.findings: list[ScreenFinding] = []
        self.unchecked: list[str] = []
        self.thresholds = self._thresholds()

    def add(self, code: str, effect: Effect, rules: tuple[str, ...], key: str, **fields: Any) -> None:
        """One finding; its text may name any threshold of the screen as well as its own fields."""
        text = say(self.k, "nsaid_screen", key, **(self.thresholds | fields))
        self.findings.append(ScreenFinding(code, effect, rules, text))

    def _thresholds(self) -> dict[str, Any]:
        p = self.p
        return {
            "min_age": p.min_age,
            "egfr_avoid_below": _number(p.egfr_avoid_below),
            "egfr_caution_below": _number(p.egfr_caution_below),
            "kidney_days": p.kidney_days,
            "fracture_days": p.fracture_days,
            "ulcer_days": p.ulcer_days,
        }

    # ----- the rows of the §5a table -----

    def age(self) -> None:
        age = self.facts.age_on(self.now)
        if age is None:
            self.unchecked.append("age")
            self.add("age_unknown", Effect.CAUTION, ("LIT-BEERS-INDOMETHACIN",), "age_unknown")
        elif age >= self.p.min_age:
            birth = self.facts.birth_date.isoformat() if self.facts.birth_date else "?"
            self.add(
                "age",
                Effect.AVOID,
                ("LIT-BEERS-INDOMETHACIN",),
                "age",
                age=age,
                date=self.now.date().isoformat(),
                birth_date=birth,
            )

    def kidney(self) -> None:
        f = self.facts
        aki = {e.resource for e in f.recorded("acute_kidney_failure")}
        severe_found = False
        for e in f.recorded("kidney_severe"):
            if e.resource in aki:
                hit = within_days(e.when, self.now, self.p.kidney_days) or (e.active and e.when is None)
                key, extra = "aki", {"source": _since(e)}
            elif e.resource_type == "Procedure":
                hit = within_days(e.when, self.now, self.p.kidney_days)
                key, extra = "dialysis_procedure", {"resource": e.resource, "date": _date(e.when)}
            elif e.resource_type == "Condition":
                hit, key, extra = e.active, "kidney_severe", {"source": _since(e)}
            else:
                continue
            if hit:
                self.add("kidney_severe", Effect.AVOID, ("LIT-BEERS-RENAL",), key, display=e.display, **extra)
                severe_found = True
        moderate = [e for e in f.recorded("kidney_moderate") if e.resource_type == "Condition" and e.active]
        egfr_known = self.egfr()
        if moderate and not severe_found:
            e = moderate[0]
            self.add(
                "kidney_moderate",
                Effect.CAUTION,
                ("LIT-BEERS-RENAL",),
                "kidney_moderate",
                display=e.display,
                source=_since(e),
            )
        if not (egfr_known or severe_found or moderate):
            self.unchecked.append("kidney_function")

    def egfr(self) -> bool:
        """The latest eGFR within the look-back (computed from creatinine when none is reported); True if known."""
        f = self.facts
        days = self.p.kidney_days
        reported = [m for m in f.measurements.get("egfr", []) if m.value is not None and m.when is not None]
        recent = [m for m in reported if within_days(m.when, self.now, days)]
        value: float | None = None
        source = ""
        rules: tuple[str, ...] = ("LIT-BEERS-RENAL",)
        why_unknown = ""
        if recent:
            m = max(recent, key=lambda x: x.when or self.now)
            assert m.value is not None
            value = m.value
            source = say(
                self.k,
                "nsaid_screen",
                "egfr_reported",
                value=_number(round(m.value, 1)),
                date=_date(m.when),
                resource=m.resource,
            )
        else:
            creatinine = [
                m
                for m in f.measurements.get("creatinine", [])
                if m.value is not None and m.when is not None and within_days(m.when, self.now, days)
            ]
            if creatinine:
                m = max(creatinine, key=lambda x: x.when or self.now)
                computed = egfr_from_creatinine(
                    m.value, m.unit, f.age_on(m.when), f.sex, CkdEpi2021.from_knowledge(self.k)
                )
                shown = f"{_number(m.value or 0)} {m.unit}".strip()
                if computed.value is None:
                    why_unknown = say(
                        self.k,
                        "nsaid_screen",
                        "egfr_not_computed",
                        creatinine=shown,
                        date=_date(m.when),
                        resource=m.resource,
                        why=computed.why_not,
                    )
                else:
                    value = float(round(computed.value))
                    rules = ("LIT-BEERS-RENAL", "LIT-CKD-EPI-2021")
                    source = say(
                        self.k,
                        "nsaid_screen",
                        "egfr_computed",
                        value=_number(value),
                        date=_date(m.when),
                        creatinine=shown,
                        resource=m.resource,
                    )
            else:
                older = reported + self._dated("creatinine")
                if older:
                    last = max(older, key=lambda x: x.when or self.now)
                    why_unknown = say(
                        self.k,
                        "nsaid_screen",
                        "kidney_lab_old",
                        display=last.display,
                        date=_date(last.when),
                        resource=last.resource,
                        **self.thresholds,
                    )
        if value is None:
            if why_unknown:
                self.unchecked.append("egfr")
                self.add("kidney_unknown", Effect.CAUTION, (), "kidney_unknown_detail", detail=why_unknown)
                return True  # something is said about kidney function; the generic line is not needed
            return False
        if value < self.p.egfr_avoid_below:
            self.add("egfr_severe", Effect.AVOID, rules, "egfr_severe", egfr=source)
        elif value < self.p.egfr_caution_below:
            self.add("egfr_moderate", Effect.CAUTION, rules, "egfr_moderate", egfr=source)
        return True

    def _dated(self, concept: str) -> list[Measurement]:
        return [m for m in self.facts.measurements.get(concept, []) if m.when is not None]

    def ulcer(self) -> None:
        for e in self.facts.recorded("gi_ulcer_bleeding"):
            if e.resource_type != "Condition":
                continue
            if e.active:
                key = "ulcer_active"
            elif within_days(e.when, self.now, self.p.ulcer_days):
                key = "ulcer_recent"
            else:
                continue
            self.add("ulcer", Effect.AVOID, ("LIT-BEERS-ULCER",), key, display=e.display, source=_since(e))

    def heart_failure(self) -> None:
        for e in self.facts.recorded("heart_failure"):
            if e.resource_type == "Condition" and e.active:
                self.add(
                    "heart_failure",
                    Effect.AVOID,
                    ("LIT-BEERS-HF",),
                    "heart_failure",
                    display=e.display,
                    source=_since(e),
                )

    def acetabular(self) -> None:
        fractures = [
            e
            for e in self.facts.recorded("long_bone_fracture")
            if e.resource_type == "Condition" and within_days(e.when, self.now, self.p.fracture_days)
        ]
        if fractures:
            e = fractures[0]
            self.add(
                "nonunion_long_bone",
                Effect.AVOID,
                ("LIT-NONUNION-LONG-BONE",),
                "nonunion_long_bone",
                display=e.display,
                source=_since(e),
            )
        else:
            self.add(
                "nonunion_acetabulum",
                Effect.CAUTION,
                ("LIT-NONUNION-ACETABULUM", "LIT-ACETABULAR-NO-BENEFIT"),
                "nonunion_acetabulum",
            )

    def bleeding(self, drafts: Drafts) -> None:
        active = [
            e.display
            for e in self.facts.recorded("anticoagulant", "antiplatelet")
            if e.active or within_days(e.when, self.now, self.p.medication_recent_days)
        ]
        drafted = [
            concept_text(order.get("medicationCodeableConcept")) or str(order.get("resourceType"))
            for order, concepts in drafts
            if concepts & {"anticoagulant", "antiplatelet"}
            and str(order.get("resourceType", "")).startswith("Medication")
        ]
        if active:
            self.add(
                "bleeding",
                Effect.CAUTION,
                ("LIT-BEERS-ANTICOAG", "P-04"),
                "bleeding_active",
                drugs=", ".join(dict.fromkeys(active)),
            )
        if drafted:
            self.add(
                "bleeding",
                Effect.CAUTION,
                ("LIT-BEERS-ANTICOAG", "P-04"),
                "bleeding_drafted",
                drugs=", ".join(dict.fromkeys(drafted)),
            )

    def result(self) -> NsaidScreen:
        if "kidney_function" in self.unchecked:
            self.add("kidney_unknown", Effect.CAUTION, (), "kidney_unknown")
        if any(f.effect is Effect.AVOID for f in self.findings):
            decision = Decision.NOT_SUGGESTED
        elif self.findings:
            decision = Decision.SUGGEST_WITH_CAUTIONS
        else:
            decision = Decision.SUGGEST
        return NsaidScreen(decision, tuple(self.findings), tuple(dict.fromkeys(self.unchecked)))


def screen_nsaid(
    facts: PatientFacts,
    k: Knowledge,
    now: datetime,
    *,
    acetabular_orif: bool = False,
    drafts: Drafts = (),
) -> NsaidScreen:
    """Apply every row of the §5a table to this record (and the drafts of this order session).

    `acetabular_orif`: the prophylaxis is for an acetabular fracture fixation (§6), which adds the
    nonunion rows. An anticoagulant or antiplatelet agent drafted in the same session counts as active.
    """
    screen = _Screen(facts, k, now)
    screen.age()
    screen.kidney()
    screen.ulcer()
    screen.heart_failure()
    if acetabular_orif:
        screen.acetabular()
    screen.bleeding(drafts)
    return screen.result()


__all__ = ["Decision", "Drafts", "Effect", "NsaidScreen", "ScreenFinding", "screen_nsaid"]
