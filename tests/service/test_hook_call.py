"""One hook call without HTTP: `cds_hooks.hook_call` runs outside any Flask request, the view only translates."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cds_hooks import card_ids
from cds_hooks.app import create_app
from cds_hooks.hook_call import run_hook_call
from cds_hooks.settings import Settings
from cds_hooks.web import state_of
from tests.dates import to_today
from tests.vignettes import check, load


class NoStore:
    """A store that must not be used: every attribute asked for is recorded, and any use fails."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.asked.append(name)
        raise AssertionError(f"a hook call used the store: {name}")


def test_a_hook_call_runs_without_a_request_and_its_card_uuids_name_their_topic() -> None:
    s = state_of(create_app(Settings(auth=False)))
    request, expect = load("s02")
    answer = run_hook_call(s, s.services["hofhir-patient-view"], to_today(request, expect["now"]), "https://h.example")
    assert check(answer.body, expect) == []
    assert answer.evaluated and answer.path == "inline"
    assert answer.log["cards"] == len(answer.body["cards"]) > 0
    assert set(answer.log) >= {"hook_instance", "resources", "timings", "path", "cards"}
    now = s.clock()
    for card in answer.body["cards"]:
        topic = card_ids.topic_of("hofhir-patient-view", card["uuid"], now, s.settings.card_index_ttl_s)
        assert topic == card["source"]["topic"]["code"]
        assert card_ids.topic_of("hofhir-order-sign", card["uuid"], now, s.settings.card_index_ttl_s) is None
        assert card["links"][0]["url"].startswith("https://h.example/rules#")


def test_a_hook_call_touches_no_store() -> None:
    """Nothing of a hook call waits on, or is lost with, the store (Redis in Redis mode): the card uuids carry
    what feedback needs."""
    s = state_of(create_app(Settings(auth=False)))
    store = NoStore()
    s = replace(s, store=store)  # type: ignore[arg-type]  # not a Store: any use of it fails the test
    request, expect = load("s02")
    answer = run_hook_call(s, s.services["hofhir-patient-view"], to_today(request, expect["now"]), "https://h.example")
    assert check(answer.body, expect) == [] and answer.log["cards"] > 0
    assert store.asked == []
