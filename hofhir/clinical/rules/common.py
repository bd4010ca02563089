"""Small helpers the rule modules share: card texts, windows, what the record already holds."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hofhir.clinical.facts import Entry, IndexEvent, PatientFacts
from hofhir.clinical.model import Factor, FactorStatus, OverrideReason, Population
from hofhir.fhir.dates import days_between
from hofhir.knowledge import Knowledge


def say(k: Knowledge, section: str, key: str, **fields: Any) -> str:
    template = k.cards[section][key]
    return str(template).format(**fields) if fields else str(template)


def factor(k: Knowledge, code: str, rule: str, status: FactorStatus, evidence: str = "", **fields: Any) -> Factor:
    """A Factor named from cards.toml [factors] (placeholders filled from parameters by the caller)."""
    return Factor(rule, say(k, "factors", code, **fields), status, evidence, code)


def weeks(days: int) -> int:
    return round(days / 7)


def months(days: int) -> int:
    return round(days / 30.44)


def advice_lines(k: Knowledge, key: str) -> tuple[str, ...]:
    value = k.cards["advice"][key]
    return tuple(value) if isinstance(value, list) else (str(value),)


def override(k: Knowledge, *codes: str) -> tuple[OverrideReason, ...]:
    return tuple(OverrideReason(code, str(k.cards["override_reasons"][code])) for code in codes)


def population_names(k: Knowledge, populations: list[Population] | tuple[Population, ...]) -> str:
    names = [str(k.cards["populations"][p.value]) for p in populations]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def days_since(when: datetime | None, now: datetime) -> float | None:
    return days_between(when, now) if when is not None else None


def within_days(when: datetime | None, now: datetime, days: int) -> bool:
    """True when `when` lies in the last `days` days (inclusive), not in the future beyond a day."""
    if when is None:
        return False
    age = days_between(when, now)
    return -1 <= age <= days


def done_or_ordered_since(facts: PatientFacts, concept: str, since: datetime) -> list[Entry]:
    """Studies or labs of a kind that are resulted, done or ordered since a time (redundancy check)."""
    return [e for e in facts.of(concept) if (e.when is not None and e.when >= since) or (e.ordered_only and e.active)]


def recent_since(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def at_risk_events(facts: PatientFacts, include_history: bool = True) -> list[IndexEvent]:
    """The most recent dated index event of every population present."""
    out: list[IndexEvent] = []
    for population in facts.populations():
        if population is Population.HO_HISTORY and not include_history:
            continue
        event = facts.index_event(population)
        if event is not None:
            out.append(event)
    return out


def current(entry: Entry, now: datetime, recent_days: int) -> bool:
    """ho-rules-v1 §4 (1.1): a sign counts only while current. A Condition: clinicalStatus active,
    recurrence or relapse (or absent), no past abatement, onset (or recordedDate) in the last
    `recent_days` days. Anything else (an Observation): effective in the last `recent_days` days."""
    if entry.resource_type == "Condition" and not entry.active:
        return False  # resolved, inactive, remission, or abated in the past: history, not a sign
    return within_days(entry.when, now, recent_days)


def sign_days(k: Knowledge) -> int:
    return int(k.param("signs", "current_days"))


def latest_procedure(facts: PatientFacts, concept: str, now: datetime, days: int) -> Entry | None:
    """The most recent completed procedure of a kind performed in the last `days` days (dated), or None."""
    done = [
        e
        for e in facts.recorded(concept)
        if e.resource_type == "Procedure" and e.when is not None and within_days(e.when, now, days)
    ]
    return max(done, key=lambda e: e.when or now) if done else None
