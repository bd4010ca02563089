"""Findings -> Guidance: one hook-neutral card per topic, its reasons, the evidence, the suggestions.

Guidance is what a CDS Hooks card is made from (the web edge adds uuids, the source label and links).
It travels between web and worker as plain JSON (`as_dict` / `from_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from hofhir.clinical.model import Finding, Indicator, OverrideReason, Population, Suggestion, Topic
from hofhir.knowledge import Knowledge

TOPIC_SYSTEM = "http://hofhir.org/fhir/CodeSystem/card-topic"
SUMMARY_LIMIT = 139  # CDS Hooks 2.0.1: summary "<140 characters"
TOPIC_ORDER = list(Topic)


@dataclass(frozen=True)
class Guidance:
    topic: Topic
    topic_display: str
    indicator: Indicator
    summary: str
    detail: str  # GitHub-flavoured markdown, no raw HTML
    rules: tuple[str, ...]
    populations: tuple[str, ...]
    risk_level: str | None
    knowledge_version: str
    suggestions: tuple[Suggestion, ...] = ()
    override_reasons: tuple[OverrideReason, ...] = ()

    def explanation(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rules": list(self.rules),
            "populations": list(self.populations),
            "knowledgeVersion": self.knowledge_version,
        }
        if self.risk_level is not None:
            out["riskLevel"] = self.risk_level
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic.value,
            "topicDisplay": self.topic_display,
            "indicator": self.indicator.value,
            "summary": self.summary,
            "detail": self.detail,
            "rules": list(self.rules),
            "populations": list(self.populations),
            "riskLevel": self.risk_level,
            "knowledgeVersion": self.knowledge_version,
            "suggestions": [
                {"label": s.label, "description": s.description, "resource": s.resource} for s in self.suggestions
            ],
            "overrideReasons": [{"code": o.code, "display": o.display} for o in self.override_reasons],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Guidance:
        return cls(
            topic=Topic(data["topic"]),
            topic_display=str(data["topicDisplay"]),
            indicator=Indicator(data["indicator"]),
            summary=str(data["summary"]),
            detail=str(data["detail"]),
            rules=tuple(data["rules"]),
            populations=tuple(data["populations"]),
            risk_level=data.get("riskLevel"),
            knowledge_version=str(data["knowledgeVersion"]),
            suggestions=tuple(
                Suggestion(s["label"], s["description"], s["resource"]) for s in data.get("suggestions", [])
            ),
            override_reasons=tuple(OverrideReason(o["code"], o["display"]) for o in data.get("overrideReasons", [])),
        )


def md(text: str) -> str:
    """Record-derived text inside markdown: no raw HTML reaches the card."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _shorten(summary: str) -> str:
    if len(summary) <= SUMMARY_LIMIT:
        return summary
    return summary[: SUMMARY_LIMIT - 1].rstrip(" ,;:") + "…"


QUOTES_PER_ITEM = 2


def _evidence_section(k: Knowledge, rules: tuple[str, ...]) -> str:
    """The card's **Evidence** part for these rule IDs ("" when none is cited): the same few rule sets come
    up call after call, so each is written once per knowledge value."""
    return k.derive(("evidence-section", rules), lambda: _write_evidence(k, rules))


def _write_evidence(k: Knowledge, rules: tuple[str, ...]) -> str:
    lines = _evidence_lines(k, rules)
    return "**Evidence**\n\n" + "\n".join(lines) if lines else ""


def _evidence_lines(k: Knowledge, rules: tuple[str, ...]) -> list[str]:
    """One line per cited ID; each distinct quote is printed once per card, even when several IDs share it."""
    lines: list[str] = []
    printed: set[str] = set()
    for ident in rules:
        item = k.evidence.get(ident)
        if item is None:
            continue
        label = "[LIT]" if item.is_literature else item.source
        flag = " *(contested: presented as such)*" if item.contested else ""
        if item.quotes:
            fresh = [q for q in dict.fromkeys(item.quotes) if q not in printed][:QUOTES_PER_ITEM]
            printed.update(fresh)
            if fresh:
                quote = " … ".join(f"“{q}”" for q in fresh)
                lines.append(f"- **{ident}** ({label}){flag}: {md(quote)}")
            else:
                lines.append(f"- **{ident}** ({label}){flag}: {md(item.statement)} (quoted above).")
        else:
            lines.append(f"- **{ident}** ({label}){flag}: {md(item.statement)}. {md(item.text)}")
    return lines


def combine(findings: list[Finding], k: Knowledge) -> list[Guidance]:
    """One card per topic: the reasons of every finding of that topic, the highest indicator, one summary."""
    by_topic: dict[Topic, list[Finding]] = {}
    for f in findings:
        by_topic.setdefault(f.topic, []).append(f)
    out: list[Guidance] = []
    for topic in TOPIC_ORDER:
        group = by_topic.get(topic)
        if not group:
            continue
        lead = max(group, key=lambda f: (f.indicator.rank, f.priority))
        rules = tuple(dict.fromkeys(r for f in group for r in f.rules))
        populations = tuple(
            dict.fromkeys(p.value if isinstance(p, Population) else str(p) for f in group for p in f.populations)
        )
        suggestions: list[Suggestion] = []
        seen_codes: set[bytes] = set()
        for f in group:
            for s in f.suggestions:
                key = orjson.dumps(s.resource.get("code") or s.resource.get("medicationCodeableConcept"))
                if key not in seen_codes:
                    seen_codes.add(key)
                    suggestions.append(s)
        overrides = tuple({o.code: o for f in group for o in f.override_reasons}.values())
        detail = _detail(group, rules, k)
        out.append(
            Guidance(
                topic=topic,
                topic_display=str(k.cards["topics"][topic.value]),
                indicator=max((f.indicator for f in group), key=lambda i: i.rank),
                summary=_shorten(lead.summary),
                detail=detail,
                rules=rules,
                populations=populations,
                risk_level=lead.risk_level.value if topic is Topic.HO_RISK and lead.risk_level else None,
                knowledge_version=k.version,
                suggestions=tuple(suggestions),
                override_reasons=overrides,
            )
        )
    return out


def _detail(group: list[Finding], rules: tuple[str, ...], k: Knowledge) -> str:
    parts: list[str] = []
    reasons = [r for f in group for r in f.reasons]
    if reasons:
        parts.append("**Why**\n\n" + "\n".join(f"- {md(r)}" for r in dict.fromkeys(reasons)))
    advice = [a for f in group for a in f.advice]
    if advice:
        parts.append("**What the evidence suggests**\n\n" + "\n".join(f"- {md(a)}" for a in dict.fromkeys(advice)))
    cautions = [c for f in group for c in f.cautions]
    if cautions:
        parts.append("**Caution**\n\n" + "\n".join(f"- {md(c)}" for c in dict.fromkeys(cautions)))
    evidence = _evidence_section(k, rules)
    if evidence:
        parts.append(evidence)
    parts.append(
        k.derive("advice-footer", lambda: f"*Advice only; it never blocks an order. Knowledge base {md(k.version)}.*")
    )
    return "\n\n".join(parts)
