"""Prophylaxis: THA and NSAID orders (ho-rules §5) and gaps after acetabular ORIF or HO resection (§6).

Every indomethacin suggestion passes the NSAID safety screen of §5a (`nsaid_screen.screen_nsaid`); an
NSAID the clinician is ordering gets the screen's findings as cautions. Wording is cards.toml
([prophylaxis], [advice], [summaries], [nsaid_screen]); regimens are parameters.toml [regimens].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hofhir.clinical.facts import Entry, PatientFacts
from hofhir.clinical.model import Factor, FactorStatus, Finding, Indicator, Population, RiskLevel, Suggestion, Topic
from hofhir.clinical.rules.common import advice_lines, latest_procedure, override, recent_since, say
from hofhir.clinical.rules.nsaid_screen import Decision, Drafts, NsaidScreen, screen_nsaid
from hofhir.clinical.rules.risk import tha_factors, tha_level
from hofhir.fhir import build
from hofhir.fhir.dates import days_between
from hofhir.knowledge import Knowledge

PROPHYLAXIS_SETS = ("nsaid", "radiotherapy")


def _regimens(k: Knowledge) -> tuple[dict[str, Any], dict[str, Any]]:
    regimens = k.parameters["regimens"]
    return regimens["indomethacin"], regimens["radiotherapy"]


def _given_since(facts: PatientFacts, since: datetime | None, concepts: tuple[str, ...], now: datetime) -> list[Entry]:
    """Prophylaxis on record: given or ordered since the operation (a day's margin), or active now."""
    margin = timedelta(days=1)
    return [
        e
        for e in facts.of(*concepts)
        if e.active or (e.when is not None and (since is None or e.when >= since - margin) and e.when <= now + margin)
    ]


def drafted_nsaids(drafts: Drafts) -> list[dict[str, Any]]:
    """NSAID medication orders of this order session (any NSAID of the terminology, indomethacin or another)."""
    return [
        order
        for order, concepts in drafts
        if "nsaid" in concepts and str(order.get("resourceType", "")).startswith("Medication")
    ]


def _order_text(order: dict[str, Any]) -> str:
    med = order.get("medicationCodeableConcept")
    if isinstance(med, dict):
        if isinstance(med.get("text"), str):
            return str(med["text"])
        for coding in med.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("display"), str):
                return str(coding["display"])
    return "An NSAID"


@dataclass(frozen=True)
class _Plan:
    """What a prophylaxis card suggests and says about the suggestions."""

    suggestions: tuple[Suggestion, ...]
    advice: tuple[str, ...]  # the regimen line, late-start and radiotherapy-window notes
    reasons: tuple[str, ...]  # indomethacin not suggested, and why (the §5a findings)
    cautions: tuple[str, ...]  # the §5a caution lines that apply to the suggested NSAID
    rules: tuple[str, ...]  # the LIT IDs that decided it
    nsaid_withheld: bool


def _plan(
    facts: PatientFacts,
    k: Knowledge,
    now: datetime,
    reason: str,
    screen: NsaidScreen,
    hours_since_surgery: float | None,
) -> _Plan:
    """Suggestions after the §5a screen; nothing already active or recent enough to be redundant (§1)."""
    nsaid_regimen, rt_regimen = _regimens(k)
    suggestions: list[Suggestion] = []
    advice: list[str] = []
    reasons: list[str] = []
    cautions: list[str] = []
    recent = recent_since(now, k.window("medication_recent_days"))
    withheld = screen.decision is Decision.NOT_SUGGESTED
    # The regimen's start ("from post-operative day 1") is said only while it holds (§6, 1.1).
    start_by = int(k.param("prophylaxis", "indomethacin_start_by_day"))
    post_op_day = int(hours_since_surgery // 24) if hours_since_surgery is not None else None
    late = post_op_day is not None and post_op_day > start_by
    nsaid_label = nsaid_regimen["label"] if late else f"{nsaid_regimen['label']}, {nsaid_regimen['start_label']}"
    if withheld:
        reasons.extend(say(k, "nsaid_screen", "not_suggested", finding=f.text) for f in screen.avoid)
    else:
        cautions.extend(f.text for f in screen.cautions)
        if not _given_since(facts, recent, ("nsaid",), now):
            suggestions.append(
                Suggestion(
                    say(k, "prophylaxis", "suggest_nsaid_label", regimen=nsaid_label.lower()),
                    say(k, "prophylaxis", "suggest_nsaid_description", regimen=nsaid_label),
                    build.indomethacin_order(facts.patient_id, reason, {**nsaid_regimen, "label": nsaid_label}),
                )
            )
        if late:
            advice.append(say(k, "advice", "prophylaxis_late_start", day=post_op_day, start_by=start_by))
    post_limit = float(rt_regimen["post_op_hours"])
    rt_late = hours_since_surgery is not None and hours_since_surgery > post_limit
    if withheld:
        advice.append(say(k, "advice", "prophylaxis_regimen_radiotherapy", radiotherapy=rt_regimen["label"]))
    else:
        advice.append(say(k, "advice", "prophylaxis_regimens", nsaid=nsaid_label, radiotherapy=rt_regimen["label"]))
    if rt_late:
        advice.append(
            say(
                k,
                "advice",
                "prophylaxis_radiotherapy_late",
                hours=int(hours_since_surgery or 0),
                limit=f"{post_limit:g}",
            )
        )
        if withheld:
            advice.append(say(k, "advice", "prophylaxis_nothing_suggested"))
    elif not _given_since(facts, recent, ("radiotherapy",), now):
        suggestions.append(
            Suggestion(
                say(k, "prophylaxis", "suggest_radiotherapy_label"),
                say(k, "prophylaxis", "suggest_radiotherapy_description", regimen=rt_regimen["label"]),
                build.radiotherapy_order(facts.patient_id, reason, rt_regimen),
            )
        )
    return _Plan(tuple(suggestions), tuple(advice), tuple(reasons), tuple(cautions), screen.rules, withheld)


def _screen(facts: PatientFacts, k: Knowledge, now: datetime, drafts: Drafts = ()) -> NsaidScreen:
    """The §5a screen for this patient now: the acetabular rows apply while an acetabular ORIF is in its
    prophylaxis window (§6), whichever card suggests the NSAID, so one response never disagrees with itself."""
    acetabular = latest_procedure(facts, "acetabular_orif", now, k.window("acetabular_orif_prophylaxis_days"))
    return screen_nsaid(facts, k, now, acetabular_orif=acetabular is not None, drafts=drafts)


def _drafted_nsaid_cautions(k: Knowledge, screen: NsaidScreen) -> tuple[str, ...]:
    """§5: the §5a findings that apply to an NSAID the clinician is ordering, as caution lines."""
    avoid = tuple(say(k, "nsaid_screen", "drafted_avoid", finding=f.text) for f in screen.avoid)
    return avoid + tuple(f.text for f in screen.cautions)


# ---------- orders ----------


def tha_order(
    facts: PatientFacts,
    k: Knowledge,
    now: datetime,
    order: dict[str, Any],
    concepts: set[str],
    drafts: Drafts = (),
) -> Finding | None:
    """THA or revision ordered, THA factors moderate/high -> NSAID and radiotherapy suggestions (PX-01).

    An NSAID drafted beside the THA is the prophylaxis already being ordered (§5, 1.1): the card says so
    with the §5a cautions that apply to it, and suggests no second NSAID.
    """
    revision = "tha_revision" in concepts
    strong, other = tha_factors(facts, k, None, now, planned_revision=revision)
    level, basis = tha_level(strong, other)
    if not level.at_least(RiskLevel.MODERATE):
        return None
    present = [f for f in strong + other if f.status is FactorStatus.PRESENT]
    level_title = level.value.capitalize()
    reasons = [say(k, "prophylaxis", "tha_level", level_title=level_title, basis=basis)] + [
        say(k, "prophylaxis", "tha_factor", rule=f.rule, name=f.name, evidence=f.evidence) for f in present
    ]
    populations = (Population.THA,) + ((Population.HO_HISTORY,) if facts.recorded("ho") else ())
    factor_rules = [f.rule for f in present]
    screen = _screen(facts, k, now, drafts)
    nsaids = drafted_nsaids(drafts)
    if nsaids:
        drugs = ", ".join(dict.fromkeys(_order_text(o) for o in nsaids))
        return Finding(
            topic=Topic.HO_PROPHYLAXIS,
            indicator=Indicator.INFO,
            rules=tuple(dict.fromkeys(["PX-01", *factor_rules, "E-05", *screen.all_rules])),
            summary=say(k, "summaries", "prophylaxis_nsaid_order"),
            populations=populations,
            reasons=(*reasons, say(k, "prophylaxis", "nsaid_drafted_beside_tha", drug=drugs)),
            advice=(*advice_lines(k, "prophylaxis_tha"), say(k, "advice", "prophylaxis_alendronate")),
            factors=tuple(strong + other),
            cautions=_drafted_nsaid_cautions(k, screen),
            override_reasons=override(k, "not_indicated"),
            priority=1,
        )
    plan = _plan(facts, k, now, say(k, "prophylaxis", "reason_tha_order"), screen, None)
    if _given_since(facts, recent_since(now, k.window("medication_recent_days")), PROPHYLAXIS_SETS, now):
        reasons.append(say(k, "prophylaxis", "already_on_record"))
    if not plan.nsaid_withheld:
        summary_key = "prophylaxis_tha"
    elif plan.suggestions:
        summary_key = "prophylaxis_tha_radiotherapy"
    else:
        summary_key = "prophylaxis_tha_nothing"
    return Finding(
        topic=Topic.HO_PROPHYLAXIS,
        indicator=Indicator.INFO,
        rules=tuple(dict.fromkeys(["PX-01", *factor_rules, "E-05", "LIT-REGIMENS", *plan.rules])),
        summary=say(k, "summaries", summary_key, level_title=level_title),
        populations=populations,
        reasons=(*reasons, *plan.reasons),
        advice=(*advice_lines(k, "prophylaxis_tha"), *plan.advice, say(k, "advice", "prophylaxis_alendronate")),
        factors=tuple(strong + other),
        risk_level=None,
        suggestions=plan.suggestions,
        override_reasons=override(k, "prophylaxis_elsewhere", "contraindicated", "not_indicated"),
        cautions=plan.cautions,
        priority=1,
    )


def _ordered_for_ho(k: Knowledge, order: dict[str, Any]) -> bool:
    """The order's reason (coded, or its text, or a note) names heterotopic ossification."""
    reasons = order.get("reasonCode")
    if isinstance(reasons, list) and any(
        k.terminology.sets_for_concept(r, use_text=True) & {"ho", "ho_reason"} for r in reasons
    ):
        return True
    notes = order.get("note")
    texts = [n.get("text") for n in notes if isinstance(n, dict)] if isinstance(notes, list) else []
    return any(isinstance(t, str) and k.terminology.sets_for_text(t, only=("ho_reason",)) for t in texts)


def nsaid_order(
    facts: PatientFacts,
    k: Knowledge,
    now: datetime,
    order: dict[str, Any],
    indicated: list[Finding],
    drafts: Drafts = (),
) -> Finding | None:
    """An NSAID ordered where prophylaxis is indicated (or for HO) is the prophylaxis: say so, with the §5a cautions."""
    if not indicated and not _ordered_for_ho(k, order):
        return None
    pops = tuple(dict.fromkeys(p for f in indicated for p in f.populations)) or (
        (Population.HO_HISTORY,) if facts.recorded("ho") else ()
    )
    screen = _screen(facts, k, now, drafts)
    return Finding(
        topic=Topic.HO_PROPHYLAXIS,
        indicator=Indicator.INFO,
        rules=tuple(dict.fromkeys(("PX-01", *screen.all_rules))),
        summary=say(k, "summaries", "prophylaxis_nsaid_order"),
        populations=pops,
        reasons=(say(k, "prophylaxis", "nsaid_order_is_prophylaxis"),),
        advice=(say(k, "advice", "prophylaxis_alendronate"),),
        cautions=_drafted_nsaid_cautions(k, screen),
        override_reasons=override(k, "not_indicated"),
    )


# ---------- patient-view (§6) ----------


def _surgery_hours(surgery: Entry, now: datetime) -> float | None:
    return days_between(surgery.when, now) * 24 if surgery.when else None


def acetabular_gap(facts: PatientFacts, k: Knowledge, now: datetime) -> Finding | None:
    surgery = latest_procedure(facts, "acetabular_orif", now, k.window("acetabular_orif_prophylaxis_days"))
    if surgery is None:
        return None
    if _given_since(facts, surgery.when, PROPHYLAXIS_SETS, now):
        return None
    hours = _surgery_hours(surgery, now)
    screen = _screen(facts, k, now)
    plan = _plan(facts, k, now, say(k, "prophylaxis", "reason_acetabular"), screen, hours)
    return Finding(
        topic=Topic.HO_PROPHYLAXIS,
        indicator=Indicator.WARNING,
        rules=tuple(dict.fromkeys(("PX-07", "E-07", "PX-01", "LIT-REGIMENS", *plan.rules))),
        summary=say(k, "summaries", "prophylaxis_acetabular"),
        populations=(Population.ACETABULAR_ORIF,),
        reasons=(
            say(
                k,
                "prophylaxis",
                "surgery_done",
                display=surgery.display,
                date=surgery.when.date() if surgery.when else "?",
                days=int((hours or 0) / 24),
            ),
            say(k, "prophylaxis", "acetabular_none_since"),
            *plan.reasons,
        ),
        advice=(
            say(k, "advice", "prophylaxis_acetabular"),
            *plan.advice,
            say(k, "advice", "prophylaxis_alendronate"),
        ),
        suggestions=plan.suggestions,
        override_reasons=override(k, "prophylaxis_elsewhere", "contraindicated"),
        cautions=plan.cautions,
        priority=2,
    )


def post_resection_gap(facts: PatientFacts, k: Knowledge, now: datetime) -> Finding | None:
    surgery = latest_procedure(facts, "ho_excision", now, k.window("post_resection_prophylaxis_days"))
    if surgery is None:
        return None
    if _given_since(facts, surgery.when, (*PROPHYLAXIS_SETS, "etidronate"), now):
        return None
    hours = _surgery_hours(surgery, now)
    screen = _screen(facts, k, now)
    plan = _plan(facts, k, now, say(k, "prophylaxis", "reason_post_resection"), screen, hours)
    advice = [
        say(k, "advice", "prophylaxis_post_resection"),
        *plan.advice,
        say(k, "advice", "prophylaxis_alendronate"),
    ]
    rules = ["S-07", "PX-02", "PX-03", "PX-01", "LIT-REGIMENS", *plan.rules]
    populations: list[Population] = [Population.HO_HISTORY]
    if Population.SCI in facts.populations():
        advice.insert(1, say(k, "advice", "prophylaxis_sci"))
        rules.append("LIT-SCI-PROPHYLAXIS")
        populations.insert(0, Population.SCI)
    return Finding(
        topic=Topic.HO_PROPHYLAXIS,
        indicator=Indicator.WARNING,
        rules=tuple(dict.fromkeys(rules)),
        summary=say(k, "summaries", "prophylaxis_post_resection"),
        populations=tuple(populations),
        reasons=(
            say(
                k,
                "prophylaxis",
                "post_resection_none_since",
                display=surgery.display,
                date=surgery.when.date() if surgery.when else "?",
            ),
            *plan.reasons,
        ),
        advice=tuple(advice),
        suggestions=plan.suggestions,
        override_reasons=override(k, "prophylaxis_elsewhere", "contraindicated"),
        cautions=plan.cautions,
        priority=2,
    )


def prophylaxis_indicated(facts: PatientFacts, k: Knowledge, now: datetime) -> list[Finding]:
    return [f for f in (acetabular_gap(facts, k, now), post_resection_gap(facts, k, now)) if f is not None]


__all__ = [
    "Factor",
    "acetabular_gap",
    "drafted_nsaids",
    "nsaid_order",
    "post_resection_gap",
    "prophylaxis_indicated",
    "tha_order",
]
