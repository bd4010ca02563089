"""Card evidence: each distinct catalogue quote is printed once per card, and no garbled fragment reaches a card."""

from __future__ import annotations

from hofhir.knowledge import Knowledge
from tests.builders import Run, alp, card, condition, patient

SCI_COMPLETE = "S24.111A"
SHARED_QUOTE_IDS = ("N-01", "N-02", "N-03", "N-04")


def test_a_quote_shared_by_several_ids_is_printed_once(run: Run, kb: Knowledge) -> None:
    quote = kb.cite("N-01").quotes[0]
    assert all(quote in kb.cite(i).quotes for i in SHARED_QUOTE_IDS)
    # Complete SCI at 5 weeks with a pressure ulcer: the risk card cites N-01 and N-02 at least.
    risk = card(run([patient("male", 45), condition(SCI_COMPLETE, days_ago=35), condition("L89.154")]), "ho-risk")
    cited = [i for i in SHARED_QUOTE_IDS if i in risk.rules]
    assert len(cited) >= 2
    assert risk.detail.count(quote) == 1
    for ident in cited:
        assert f"**{ident}**" in risk.detail  # every cited ID still has its line


def test_the_suspected_card_shows_no_quote_fragment(run: Run) -> None:
    record = [
        patient("male", 45),
        condition(SCI_COMPLETE, days_ago=35),
        condition("M25.651", days_ago=2),
        condition("R22.41", days_ago=2),
        alp(220, days_ago=2),
    ]
    suspected = card(run(record), "ho-suspected")
    assert "I-01" in suspected.rules
    assert "“ S2: ”" not in suspected.detail and "“ Caveat: ”" not in suspected.detail
    assert "“Three-phase 99m Technetium bone scan is the current “gold standard” for earliest" in suspected.detail
