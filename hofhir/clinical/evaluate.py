"""The one entry point: clinical input + clock (+ knowledge) -> Evaluation (guidance and trace).

No I/O and no clock read: `now` is given. Which topics a hook may answer with is ho-rules-v1 §8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hofhir.clinical.facts import PatientFacts, build_facts
from hofhir.clinical.guidance import Guidance, combine
from hofhir.clinical.model import Finding, Topic
from hofhir.clinical.rules import diagnosis, pictures, prophylaxis, rehab, relevance, risk, surgery
from hofhir.clinical.unreadable import unreadable_finding
from hofhir.fhir.dates import ensure_aware
from hofhir.fhir.read import ClinicalInput, InputError, relevant_sets
from hofhir.knowledge import Knowledge, default_knowledge

CHART_HOOKS = ("patient-view", "encounter-start")
ORDER_HOOKS = ("order-select", "order-sign")
DISCHARGE_HOOKS = ("encounter-discharge",)
SUPPORTED_HOOKS = CHART_HOOKS + ORDER_HOOKS + DISCHARGE_HOOKS

# ho-rules-v1 §8: the topics each hook may return.
HOOK_TOPICS: dict[str, frozenset[Topic]] = {
    **{
        h: frozenset(
            {
                Topic.HO_RISK,
                Topic.HO_SURVEILLANCE,
                Topic.HO_SUSPECTED,
                Topic.DVT_DIFFERENTIAL,
                Topic.HO_PROPHYLAXIS,
                Topic.HO_REHABILITATION,
                Topic.HO_POSTOPERATIVE_REHAB,
            }
        )
        for h in CHART_HOOKS
    },
    **{
        h: frozenset(
            {
                Topic.HO_IMAGING,
                Topic.HO_SURGICAL_READINESS,
                Topic.HO_PROPHYLAXIS,
                Topic.HO_POSTOPERATIVE_REHAB,
            }
        )
        for h in ORDER_HOOKS
    },
    "encounter-discharge": frozenset({Topic.HO_RISK, Topic.HO_EDUCATION}),
}
# ho-rules-v1 §1 (1.1): a record the rules need that cannot be read is said on any hook.
EVERY_HOOK_TOPICS = frozenset({Topic.DATA_UNREADABLE})
INACTIVE_DRAFTS = frozenset({"cancelled", "entered-in-error", "revoked", "stopped", "completed"})


@dataclass
class Evaluation:
    hook: str
    guidance: list[Guidance]
    trace: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"hook": self.hook, "guidance": [g.as_dict() for g in self.guidance], "trace": self.trace}

    @property
    def no_cards_reason(self) -> str | None:
        """Why the response has no cards, as a code (cards.toml [no_cards_reasons]); None when it has cards."""
        reason = self.trace.get("noCardsReason")
        return str(reason) if reason else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(
            str(data["hook"]),
            [Guidance.from_dict(g) for g in data["guidance"]],
            dict(data.get("trace") or {}),
        )


def chart_facts(inputs: ClinicalInput, k: Knowledge, now: datetime) -> PatientFacts:
    """What the rules read: the record's facts and the index events that need interpretation (TBI by coma
    after trauma, burn by depth). The timeline is drawn from these, so it shows what the cards judged."""
    facts = build_facts(inputs, k, now)
    pictures.derive_populations(facts, k)
    return facts


def evaluate(inputs: ClinicalInput, now: datetime, knowledge: Knowledge | None = None) -> Evaluation:
    """Evaluate every rule that applies to the hook; never raises on odd FHIR (only on an unsupported hook)."""
    if inputs.hook not in SUPPORTED_HOOKS:
        raise InputError(f"unsupported hook {inputs.hook!r}; hofhir answers {', '.join(SUPPORTED_HOOKS)}")
    k = knowledge or default_knowledge()
    now = ensure_aware(now)
    facts = chart_facts(inputs, k, now)
    assessment = risk.assess(facts, k, now)
    assessed = risk.risk_finding(assessment, k)  # the ho-risk card's content, for the chart hooks and the trace
    order_hook = inputs.hook in ORDER_HOOKS
    suspected = None if order_hook else diagnosis.suspicion(facts, k, now)
    window = relevance.relevance(facts, k, now, suspected is not None)
    session = _session_drafts(inputs, k) if order_hook else []
    drafts = _draft_orders(inputs, session)
    if inputs.hook in CHART_HOOKS:
        findings = _chart_findings(facts, assessment, assessed, k, now, suspected)
    elif order_hook:
        findings = _order_findings(facts, drafts, session, k, now)
    else:
        findings = _discharge_findings(facts, assessment, assessed, k)
    allowed = HOOK_TOPICS[inputs.hook]
    findings = [f for f in findings if f.topic in allowed]
    withheld: list[dict[str, str]] = []
    if not order_hook and not window.inside:
        # ho-rules-v1 §3a (1.1): outside the relevance window the chart cards are withheld; the assessment
        # stays in the trace (and in the Subscription write-back). Order hooks ignore the window.
        withheld = [
            {"topic": f.topic.value, "reason": relevance.OUTSIDE}
            for f in findings
            if f.topic in relevance.CHART_CARD_TOPICS
        ]
        findings = [f for f in findings if f.topic not in relevance.CHART_CARD_TOPICS]
    # ho-rules-v1 §1 (1.1), any hook, inside the relevance window or not (the unread record may be the one
    # that places the patient in it): a record the rules need that could not be read is never silent.
    unreadable = unreadable_finding(inputs, k)
    if unreadable is not None:
        findings.append(unreadable)
    # Guidance is for the living: a deceased patient's chart gets no HO cards (the trace says why).
    if facts.deceased:
        findings = []
    guidance = combine(findings, k)
    trace = {
        "knowledgeVersion": k.version,
        "now": now.isoformat(),
        "patient": facts.patient_id,
        "deceased": facts.deceased,
        "resourcesSeen": inputs.seen,
        "resourcesUsed": len(inputs.resources),
        "draftOrders": len(inputs.draft_orders),
        "rejected": [r.as_dict() for r in inputs.rejected],
        "dropped": inputs.dropped,
        "ignored": facts.ignored,
        "populations": {
            p.population.value: {
                "level": p.level.value,
                "index": p.index.resource if p.index else None,
                "indexDate": p.index.when.isoformat() if p.index and p.index.when else None,
                "basis": p.basis,
                "factors": [
                    {"rule": f.rule, "name": f.name, "status": f.status.value, "evidence": f.evidence}
                    for f in p.factors
                ],
            }
            for p in assessment.populations
        },
        "riskLevel": assessment.level.value if assessment.level else None,
        # The ho-risk assessment whether or not a card shows it (the write-back records it outside §3a too).
        "assessment": {"summary": assessed.summary, "rules": list(assessed.rules)} if assessed else None,
        "relevanceWindow": window.as_dict(),
        "withheld": withheld,
        "findings": [{"topic": f.topic.value, "rules": list(f.rules), "summary": f.summary} for f in findings],
        "noCardsReason": None if guidance else _no_cards_reason(facts, inputs.hook, window, withheld, drafts),
    }
    return Evaluation(inputs.hook, guidance, trace)


def no_cards_message(evaluation: Evaluation, knowledge: Knowledge | None = None) -> str | None:
    """The plain-words reason for an empty response (cards.toml [no_cards_reasons]), or None when it has cards."""
    code = evaluation.no_cards_reason
    if code is None:
        return None
    k = knowledge or default_knowledge()
    template = k.cards.get("no_cards_reasons", {}).get(code)
    if template is None:
        return code
    window = evaluation.trace.get("relevanceWindow") or {}
    return str(template).format(days=window.get("windowDays", relevance.window_days(k)))


def _no_cards_reason(
    facts: PatientFacts,
    hook: str,
    window: relevance.Relevance,
    withheld: list[dict[str, str]],
    drafts: list[tuple[dict[str, Any], set[str]]],
) -> str:
    """Why there are no cards, as a code of cards.toml [no_cards_reasons]."""
    if facts.deceased:
        return "deceased"
    if hook in ORDER_HOOKS:
        return "nothing-to-advise" if any(concepts for _, concepts in drafts) else "no-relevant-orders"
    if withheld or (not window.inside and facts.populations()):
        return relevance.OUTSIDE
    if not facts.populations():
        return "no-population"
    return "nothing-to-advise"


def _chart_findings(
    facts: PatientFacts,
    assessment: risk.RiskAssessment,
    assessed: Finding | None,
    k: Knowledge,
    now: datetime,
    suspected: diagnosis.Suspicion | None,
) -> list[Finding]:
    findings: list[Finding | None] = [
        assessed,
        diagnosis.surveillance(facts, assessment, k, now, suspected),
    ]
    if suspected is not None:
        findings.append(diagnosis.suspected_finding(suspected, facts, k, now))
    findings.append(diagnosis.dvt_differential(facts, k, now, suspected))
    findings.extend(prophylaxis.prophylaxis_indicated(facts, k, now))
    findings.append(rehab.rehabilitation(facts, assessment, k, suspected))
    findings.append(rehab.postoperative(facts, k, now))
    return [f for f in findings if f is not None]


def active_drafts(inputs: ClinicalInput) -> list[dict[str, Any]]:
    """Every active draft of the order session, selected or not."""
    return [order for order in inputs.draft_orders if order.get("status") not in INACTIVE_DRAFTS]


def relevant_drafts(inputs: ClinicalInput) -> list[dict[str, Any]]:
    """The draft orders the order rules look at: active ones; order-select looks at the new selections only."""
    selections = inputs.context.get("selections")
    selected = {s for s in selections if isinstance(s, str)} if isinstance(selections, list) else set()
    return [
        order
        for order in active_drafts(inputs)
        if not (
            inputs.hook == "order-select"
            and selected
            and f"{order.get('resourceType')}/{order.get('id')}" not in selected
        )
    ]


def _draft_orders(
    inputs: ClinicalInput, session: list[tuple[dict[str, Any], set[str]]]
) -> list[tuple[dict[str, Any], set[str]]]:
    """The drafts the hook is about (order-select: the selected ones), with their value sets: a subset of the
    session's drafts, already matched against the terminology once."""
    about = {id(order) for order in relevant_drafts(inputs)}
    return [(order, sets) for order, sets in session if id(order) in about]


def _session_drafts(inputs: ClinicalInput, k: Knowledge) -> list[tuple[dict[str, Any], set[str]]]:
    """Every active draft of the order session, selected or not: what is drafted beside an order (an NSAID or
    an anticoagulant beside a THA) counts for ho-rules 1.1 §5/§5a even on order-select."""
    return [(order, relevant_sets(order, k.terminology)) for order in active_drafts(inputs)]


def _order_findings(
    facts: PatientFacts,
    drafts: list[tuple[dict[str, Any], set[str]]],
    session: list[tuple[dict[str, Any], set[str]]],
    k: Knowledge,
    now: datetime,
) -> list[Finding]:
    findings: list[Finding] = diagnosis.imaging_orders(facts, k, now, drafts)
    indicated = prophylaxis.prophylaxis_indicated(facts, k, now)
    for order, concepts in drafts:
        if "ho_excision" in concepts:
            findings.append(surgery.readiness(facts, k, now, order))
        if "tha" in concepts and not concepts & {"hemiarthroplasty"} and order.get("resourceType") == "ServiceRequest":
            found = prophylaxis.tha_order(facts, k, now, order, concepts, session)
            if found is not None:
                findings.append(found)
        if "nsaid" in concepts and order.get("resourceType", "").startswith("Medication"):
            found = prophylaxis.nsaid_order(facts, k, now, order, indicated, session)
            if found is not None:
                findings.append(found)
        if "rom_therapy" in concepts:
            found = rehab.rom_order_after_resection(facts, k, now, order)
            if found is not None:
                findings.append(found)
    return findings


def _discharge_findings(
    facts: PatientFacts, assessment: risk.RiskAssessment, assessed: Finding | None, k: Knowledge
) -> list[Finding]:
    findings = [assessed, rehab.education(facts, assessment, k)]
    return [f for f in findings if f is not None]
