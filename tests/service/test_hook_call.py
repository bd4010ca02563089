"""One hook call without HTTP: `cds_hooks.hook_call` runs outside any Flask request, the view only translates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from cds_hooks.app import create_app
from cds_hooks.hook_call import card_key, run_hook_call
from cds_hooks.settings import Settings
from cds_hooks.web import state_of
from hofhir.adapters.store import MemoryStore
from tests.dates import to_today
from tests.vignettes import check, load


class HungStore(MemoryStore):
    """The card index's store takes nothing more (its queue is full: a hung Redis)."""

    def put_many_behind(self, items: Mapping[str, str], ttl_s: int) -> bool:
        return False


def test_a_hook_call_runs_without_a_request_and_indexes_its_cards() -> None:
    s = state_of(create_app(Settings(auth=False)))
    request, expect = load("s02")
    answer = run_hook_call(s, s.services["hofhir-patient-view"], to_today(request, expect["now"]), "https://h.example")
    assert check(answer.body, expect) == []
    assert answer.evaluated and answer.path == "inline"
    assert answer.log["cards"] == len(answer.body["cards"]) > 0
    assert set(answer.log) >= {"hook_instance", "resources", "timings", "path", "cards"}
    for card in answer.body["cards"]:
        assert s.store.get(card_key("hofhir-patient-view", card["uuid"])) == card["source"]["topic"]["code"]
        assert card["links"][0]["url"].startswith("https://h.example/rules#")


def test_a_lost_card_index_costs_the_index_not_the_answer() -> None:
    s = state_of(create_app(Settings(auth=False)))
    s = replace(s, store=HungStore())
    request, expect = load("s02")
    answer = run_hook_call(s, s.services["hofhir-patient-view"], to_today(request, expect["now"]), "https://h.example")
    assert check(answer.body, expect) == []
    assert answer.log["card_index_lost"] is True
