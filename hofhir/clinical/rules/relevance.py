"""The relevance window (ho-rules-v1 §3a, 1.1): which charts get chart cards.

On patient-view, encounter-start and encounter-discharge the chart cards (ho-risk, ho-surveillance,
ho-rehabilitation, ho-education) appear only while the patient is in the window: an index event of §2
within the window, or HO active (an active HO condition with onset within it, an HO excision within it,
or ho-suspected firing now). Order hooks ignore the window. Its length is `[relevance] window_days`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hofhir.clinical.facts import Entry, PatientFacts
from hofhir.clinical.model import Population, Topic
from hofhir.knowledge import Knowledge

CHART_CARD_TOPICS = frozenset({Topic.HO_RISK, Topic.HO_SURVEILLANCE, Topic.HO_REHABILITATION, Topic.HO_EDUCATION})

# Why the patient is in the window (or not): codes the trace carries.
RECENT_INDEX_EVENT = "recent-index-event"
ACTIVE_HO = "active-ho"
RECENT_HO_EXCISION = "recent-ho-excision"
HO_SUSPECTED = "ho-suspected"
OUTSIDE = "outside-relevance-window"


@dataclass(frozen=True)
class Relevance:
    inside: bool
    reason: str  # one of the codes above
    evidence: str  # the resource that puts the patient in the window ("" when outside)
    window_days: int

    def as_dict(self) -> dict[str, object]:
        return {
            "inside": self.inside,
            "reason": self.reason,
            "evidence": self.evidence,
            "windowDays": self.window_days,
            "source": "parameters.toml [relevance] window_days (ho-rules-v1 §3a, D-02)",
        }


def window_days(k: Knowledge) -> int:
    return int(k.param("relevance", "window_days"))


def calendar_days(when: datetime, now: datetime) -> int:
    """Whole calendar days from `when` to `now` (UTC): an event 365 days ago is on day 365."""
    return (now.date() - when.date()).days


def in_window(when: datetime | None, now: datetime, days: int) -> bool:
    # One day of slack into the future, as elsewhere (a record written in another time zone).
    return when is not None and -1 <= calendar_days(when, now) <= days


def _latest(entries: list[Entry]) -> Entry:
    """The latest of entries that are all dated (in_window has checked)."""
    return max(entries, key=lambda e: e.when)  # type: ignore[arg-type,return-value]


def relevance(facts: PatientFacts, k: Knowledge, now: datetime, suspected: bool) -> Relevance:
    days = window_days(k)
    recent = [
        event
        for population, events in facts.index_events.items()
        if population is not Population.HO_HISTORY
        for event in events
        if in_window(event.when, now, days)
    ]
    if recent:
        event = max(recent, key=lambda e: e.when)  # type: ignore[arg-type,return-value]
        return Relevance(True, RECENT_INDEX_EVENT, event.resource, days)
    active = [
        e for e in facts.recorded("ho") if e.resource_type == "Condition" and e.active and in_window(e.when, now, days)
    ]
    if active:
        return Relevance(True, ACTIVE_HO, _latest(active).resource, days)
    excisions = [
        e for e in facts.recorded("ho_excision") if e.resource_type == "Procedure" and in_window(e.when, now, days)
    ]
    if excisions:
        return Relevance(True, RECENT_HO_EXCISION, _latest(excisions).resource, days)
    if suspected:
        return Relevance(True, HO_SUSPECTED, "", days)
    return Relevance(False, OUTSIDE, "", days)
