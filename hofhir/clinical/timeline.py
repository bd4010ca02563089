"""The HO story of one patient as data: what happened when, the windows that matter, and "now".

A pure function (no I/O, no clock): PatientFacts + the Evaluation (+ knowledge) -> Timeline. The edge
draws it (cds_hooks/timeline_svg.py); the CLI and the preview page say it in words from the same model.

What it holds (ho-rules-v1 §2-§7):
- index events per population, each with the weeks 2-12 band of greatest attention (D-01, D-04) and the
  12-month surveillance window (D-02);
- the relevance window of §3a (1.1): the last `[relevance] window_days` before now, and whether the patient
  is inside it;
- lab series (ALP, calcium, temperature, GCS) with their reference ranges;
- signs with onset and resolution; imaging and duplex studies; procedures (THA, ORIF, excision,
  radiotherapy); prophylactic and interacting drugs with their spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hofhir.clinical.evaluate import Evaluation, no_cards_message
from hofhir.clinical.facts import Entry, PatientFacts
from hofhir.clinical.model import Population
from hofhir.clinical.rules.relevance import window_days
from hofhir.fhir.dates import ensure_aware
from hofhir.knowledge import Knowledge

# Lanes of the picture, top to bottom, and the value sets (terminology concepts) drawn in each. These are
# the presentation's grouping, not clinical logic: a concept absent here is simply not drawn.
LANES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "signs",
        "Signs",
        (
            "sign_swelling",
            "sign_erythema",
            "sign_warmth",
            "sign_tenderness",
            "hip_pain",
            "poor_hip_rom",
            "fever",
            "malaise",
            "dvt",
            "spasticity",
            "pressure_ulcer",
        ),
    ),
    ("imaging", "Imaging", ("bone_scan", "hip_radiograph", "hip_ultrasound", "ct_planning")),
    ("duplex", "Duplex", ("venous_duplex",)),
    (
        "procedures",
        "Procedures",
        ("tha", "tha_revision", "hemiarthroplasty", "acetabular_orif", "ho_excision", "biopsy", "radiotherapy"),
    ),
    (
        "drugs",
        "Drugs",
        ("indomethacin", "nsaid", "aspirin", "etidronate", "bisphosphonate", "anticoagulant", "antispasticity"),
    ),
)
# Measured results drawn as series, in this order (ALP first: it rises before the signs, L-01).
SERIES: tuple[tuple[str, str], ...] = (
    ("alp", "ALP"),
    ("calcium", "Calcium"),
    ("body_temperature", "Temperature"),
    ("gcs_total", "GCS"),
)
POPULATION_LABELS: dict[Population, str] = {
    Population.SCI: "Spinal cord injury",
    Population.TBI: "Traumatic brain injury",
    Population.THA: "Total hip arthroplasty",
    Population.ACETABULAR_ORIF: "Acetabular ORIF",
    Population.BURN: "Burn",
    Population.STROKE: "Stroke",
    Population.FRACTURE: "Fracture",
    Population.HO_HISTORY: "Heterotopic ossification",
}


@dataclass(frozen=True)
class Band:
    start: datetime
    end: datetime
    label: str


@dataclass(frozen=True)
class IndexMark:
    """An index event (§2) with its bands: weeks 2-12 and the 12-month window."""

    population: Population
    when: datetime
    resource: str
    label: str
    attention: Band
    window: Band


@dataclass(frozen=True)
class Event:
    """A dated item in a lane: a point (end None, not ongoing) or a span (to `end`, or to now if ongoing)."""

    lane: str
    concept: str
    label: str
    start: datetime
    end: datetime | None
    ongoing: bool
    resource: str
    ordered_only: bool = False


@dataclass(frozen=True)
class Point:
    when: datetime
    value: float
    above: bool | None
    resource: str


@dataclass(frozen=True)
class Series:
    concept: str
    label: str
    unit: str
    low: float | None
    high: float | None
    range_source: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Lane:
    key: str
    label: str
    events: tuple[Event, ...]


@dataclass
class Timeline:
    patient_id: str | None
    now: datetime
    start: datetime  # the span the picture shows
    end: datetime
    index_marks: list[IndexMark] = field(default_factory=list)
    relevance: Band | None = None
    in_relevance_window: bool = False
    lanes: list[Lane] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    risk_level: str | None = None
    undated: list[str] = field(default_factory=list)  # items the record holds without a date

    def is_empty(self) -> bool:
        return not self.index_marks and not self.series and not any(lane.events for lane in self.lanes)

    def sentences(self) -> list[str]:
        """The text alternative: the same story in words, in time order."""
        day = _day
        out: list[str] = []
        if self.relevance is not None:
            inside = "inside" if self.in_relevance_window else "outside"
            out.append(
                f"As of {day(self.now)}; relevance window {day(self.relevance.start)} to {day(self.relevance.end)}: "
                f"the patient is {inside} it."
            )
        for mark in self.index_marks:
            out.append(
                f"{mark.label} on {day(mark.when)}: weeks 2-12 from {day(mark.attention.start)} to "
                f"{day(mark.attention.end)}; 12-month window to {day(mark.window.end)}."
            )
        for series in self.series:
            rng = ""
            if series.high is not None:
                rng = f" (reference {_num(series.low)}-{_num(series.high)} {series.unit})"
            values = ", ".join(
                f"{_num(p.value)} {series.unit} on {day(p.when)}{' (above range)' if p.above else ''}"
                for p in series.points
            )
            out.append(f"{series.label}{rng}: {values}.")
        for lane in self.lanes:
            for e in lane.events:
                if e.ongoing:
                    span = f"from {day(e.start)}, ongoing"
                elif e.end is not None:
                    span = f"from {day(e.start)} to {day(e.end)}"
                else:
                    span = f"on {day(e.start)}"
                ordered = " (ordered)" if e.ordered_only else ""
                out.append(f"{lane.label}: {e.label}{ordered} {span}.")
        return out

    def as_dict(self) -> dict[str, Any]:
        iso = _iso
        return {
            "patient": self.patient_id,
            "now": iso(self.now),
            "start": iso(self.start),
            "end": iso(self.end),
            "riskLevel": self.risk_level,
            "relevanceWindow": (
                {"start": iso(self.relevance.start), "end": iso(self.relevance.end), "inside": self.in_relevance_window}
                if self.relevance
                else None
            ),
            "indexEvents": [
                {
                    "population": m.population.value,
                    "date": iso(m.when),
                    "resource": m.resource,
                    "label": m.label,
                    "weeks2to12": [iso(m.attention.start), iso(m.attention.end)],
                    "window": [iso(m.window.start), iso(m.window.end)],
                }
                for m in self.index_marks
            ],
            "series": [
                {
                    "concept": s.concept,
                    "label": s.label,
                    "unit": s.unit,
                    "low": s.low,
                    "high": s.high,
                    "rangeSource": s.range_source,
                    "points": [{"date": iso(p.when), "value": p.value, "above": p.above} for p in s.points],
                }
                for s in self.series
            ],
            "lanes": [
                {
                    "lane": lane.key,
                    "label": lane.label,
                    "events": [
                        {
                            "concept": e.concept,
                            "label": e.label,
                            "start": iso(e.start),
                            "end": iso(e.end) if e.end else None,
                            "ongoing": e.ongoing,
                            "ordered": e.ordered_only,
                            "resource": e.resource,
                        }
                        for e in lane.events
                    ],
                }
                for lane in self.lanes
            ],
            "undated": list(self.undated),
            "text": self.sentences(),
        }


def _iso(when: datetime) -> str:
    return when.isoformat()


def _day(when: datetime) -> str:
    return when.date().isoformat()


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _event(lane: str, entry: Entry, now: datetime) -> Event | None:
    if entry.when is None:
        return None
    start = ensure_aware(entry.when)
    end = ensure_aware(entry.until) if entry.until else None
    ongoing = False
    if entry.resource_type == "Condition" or entry.resource_type.startswith("Medication"):
        # A condition or a drug that is still active runs to now; a resolved one to its end (if known).
        ongoing = entry.active and end is None and not entry.ordered_only
    if end is not None and end > now:
        end, ongoing = None, True
    return Event(lane, entry.concept, entry.display, start, end, ongoing, entry.resource, entry.ordered_only)


def build_timeline(facts: PatientFacts, evaluation: Evaluation, k: Knowledge) -> Timeline:
    """The timeline of `facts` as of the evaluation's `now` (taken from its trace, never from a clock)."""
    now = ensure_aware(datetime.fromisoformat(str(evaluation.trace["now"])))
    attention_from = timedelta(days=k.window("surveillance_start_days"))
    attention_to = timedelta(days=k.window("greatest_attention_end_days"))
    window_to = timedelta(days=k.window("surveillance_end_days"))
    relevance_days = window_days(k)
    relevance = Band(now - timedelta(days=relevance_days), now, f"relevance window ({relevance_days} days, §3a)")

    marks: list[IndexMark] = []
    undated: list[str] = []
    for population in facts.populations():
        for ev in facts.index_events.get(population, []):
            if ev.when is None:
                undated.append(f"{POPULATION_LABELS[population]}: {ev.display} ({ev.resource})")
                continue
            when = ensure_aware(ev.when)
            marks.append(
                IndexMark(
                    population,
                    when,
                    ev.resource,
                    f"{POPULATION_LABELS[population]}: {ev.display}",
                    Band(when + attention_from, when + attention_to, "weeks 2-12"),
                    Band(when, when + window_to, "12-month window"),
                )
            )
    marks.sort(key=lambda m: (m.when, m.population.value))

    lanes: list[Lane] = []
    for key, title, concepts in LANES:
        seen: set[str] = set()
        events: list[Event] = []
        for concept in concepts:
            for entry in facts.of(concept):
                if entry.resource in seen:
                    continue  # one resource in several value sets (indomethacin is an NSAID) is drawn once
                if key == "procedures" and entry.resource_type not in ("Procedure", "ServiceRequest"):
                    continue  # a THA "history" Condition is not the operation
                seen.add(entry.resource)
                event = _event(key, entry, now)
                if event is None:
                    undated.append(f"{title}: {entry.display} ({entry.resource})")
                else:
                    events.append(event)
        events.sort(key=lambda e: (e.start, e.label))
        lanes.append(Lane(key, title, tuple(events)))

    series: list[Series] = []
    for concept, title in SERIES:
        measured = [m for m in facts.measurements.get(concept, []) if m.when is not None and m.value is not None]
        if not measured:
            continue
        measured.sort(key=lambda m: m.when or now)
        latest = measured[-1]
        points = tuple(
            Point(ensure_aware(m.when), float(m.value), m.above_range, m.resource)
            for m in measured
            if m.when is not None and m.value is not None
        )
        series.append(Series(concept, title, latest.unit, latest.low, latest.high, latest.range_source, points))

    # The evaluation's own verdict when it records one (trace.relevanceWindow), else the §3a test here.
    recorded = evaluation.trace.get("relevanceWindow")
    if isinstance(recorded, dict) and isinstance(recorded.get("inside"), bool):
        inside = bool(recorded["inside"])
    else:
        inside = _in_relevance(facts, evaluation, marks, lanes, relevance)
    dates = [m.when for m in marks] + [p.when for s in series for p in s.points]
    dates += [d for lane in lanes for e in lane.events for d in (e.start, e.end) if d is not None]
    start = min([*dates, now])
    span = max(now - start, timedelta(days=30))
    start = start - max(span * 0.05, timedelta(days=3))
    end = now + max(span * 0.12, timedelta(days=10))
    return Timeline(
        patient_id=facts.patient_id,
        now=now,
        start=start,
        end=end,
        index_marks=marks,
        relevance=relevance,
        in_relevance_window=inside,
        lanes=lanes,
        series=series,
        risk_level=evaluation.trace.get("riskLevel"),
        undated=undated,
    )


def _in_relevance(
    facts: PatientFacts, evaluation: Evaluation, marks: list[IndexMark], lanes: list[Lane], relevance: Band
) -> bool:
    """ho-rules-v1 §3a: an index event in the window, active HO with onset in it, an excision in it, or suspicion."""
    if any(relevance.start <= m.when <= relevance.end for m in marks if m.population is not Population.HO_HISTORY):
        return True
    for entry in facts.recorded("ho"):
        active = entry.resource_type == "Condition" and entry.active and entry.when is not None
        if active and entry.when is not None and relevance.start <= ensure_aware(entry.when) <= relevance.end:
            return True
    for lane in lanes:
        for e in lane.events:
            if e.concept == "ho_excision" and not e.ordered_only and relevance.start <= e.start <= relevance.end:
                return True
    return any(g.topic.value == "ho-suspected" for g in evaluation.guidance)


def quiet_reason(evaluation: Evaluation, k: Knowledge) -> str | None:
    """Why an evaluation has no card, in words (None when it has cards): the evaluation's own reason code
    (deceased, no population, outside the relevance window, ...) in the words of cards.toml."""
    if evaluation.guidance:
        return None
    message = no_cards_message(evaluation, k)
    return f"No cards: {message}" if message else "No cards."
