"""What rules conclude: findings, each citing catalogue IDs, before they are combined into guidance."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Population(StrEnum):
    """Index populations of ho-rules-v1 §2 (the codes cards carry in explanation.populations)."""

    SCI = "sci"
    TBI = "tbi"
    THA = "tha"
    ACETABULAR_ORIF = "acetabular-orif"
    BURN = "burn"
    STROKE = "stroke"
    FRACTURE = "fracture"
    HO_HISTORY = "ho-history"


class Topic(StrEnum):
    """Card topics of ho-rules-v1 §1 (system http://hofhir.org/fhir/CodeSystem/card-topic)."""

    HO_RISK = "ho-risk"
    HO_SURVEILLANCE = "ho-surveillance"
    HO_SUSPECTED = "ho-suspected"
    DVT_DIFFERENTIAL = "dvt-differential"
    HO_IMAGING = "ho-imaging"
    HO_SURGICAL_READINESS = "ho-surgical-readiness"
    HO_PROPHYLAXIS = "ho-prophylaxis"
    HO_REHABILITATION = "ho-rehabilitation"
    HO_POSTOPERATIVE_REHAB = "ho-postoperative-rehab"
    HO_EDUCATION = "ho-education"
    DATA_UNREADABLE = "data-unreadable"  # (1.1) a record the rules need could not be read


class Indicator(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class RiskLevel(StrEnum):
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"low": 0, "moderate": 1, "high": 2}[self.value]

    def at_least(self, other: RiskLevel) -> bool:
        return self.rank >= other.rank


def highest(levels: list[RiskLevel]) -> RiskLevel | None:
    return max(levels, key=lambda lv: lv.rank) if levels else None


class FactorStatus(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Factor:
    """A risk factor or criterion as assessed from the record."""

    rule: str  # catalogue ID
    name: str
    status: FactorStatus
    evidence: str = ""  # what in the record says so, or why it is unknown
    code: str = ""  # a short code (cards.toml [factors]) that logic keys on, never the display name


@dataclass(frozen=True)
class Suggestion:
    label: str
    description: str
    resource: dict[str, Any]  # a valid R4 resource (built through the R4B models)


@dataclass(frozen=True)
class OverrideReason:
    code: str
    display: str


@dataclass(frozen=True)
class Finding:
    topic: Topic
    indicator: Indicator
    rules: tuple[str, ...]
    summary: str
    populations: tuple[Population, ...] = ()
    reasons: tuple[str, ...] = ()  # markdown lines: why the card fires
    advice: tuple[str, ...] = ()  # markdown lines: what to do
    factors: tuple[Factor, ...] = ()
    risk_level: RiskLevel | None = None
    suggestions: tuple[Suggestion, ...] = ()
    override_reasons: tuple[OverrideReason, ...] = ()
    cautions: tuple[str, ...] = ()
    priority: int = 0  # the highest-priority finding of a topic gives the card its summary
    extra: dict[str, Any] = field(default_factory=dict)
