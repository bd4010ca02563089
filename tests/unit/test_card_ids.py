"""Card uuids that carry their service, topic and minute (cds_hooks/card_ids.py): what feedback reads back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cds_hooks import card_ids
from cds_hooks.app import create_app
from cds_hooks.settings import Settings
from cds_hooks.web import state_of
from hofhir.clinical.model import Topic

NOW = datetime(2026, 11, 30, 9, 30, 12, tzinfo=UTC)
WEEK = 7 * 24 * 3600
SERVICES = tuple(state_of(create_app(Settings(auth=False))).services)


@pytest.mark.parametrize("service_id", SERVICES)
def test_every_topic_of_every_service_reads_back_and_no_other_service_reads_it(service_id: str) -> None:
    for topic in Topic:
        card = card_ids.issue(service_id, topic.value, NOW)
        assert card_ids.topic_of(service_id, card, NOW, WEEK) == topic.value
        for other in SERVICES:
            if other != service_id:
                assert card_ids.topic_of(other, card, NOW, WEEK) is None, (service_id, other, topic)


def test_a_card_uuid_is_a_canonical_version_8_uuid_and_never_repeats() -> None:
    cards = [card_ids.issue("hofhir-patient-view", "ho-risk", NOW) for _ in range(20_000)]
    assert len(set(cards)) == len(cards)
    for card in cards[:100]:
        parsed = uuid.UUID(card)
        assert str(parsed) == card  # lower-case, hyphenated: the form the CDS Hooks examples use
        assert parsed.version == 8 and parsed.variant == uuid.RFC_4122


def test_feedback_reads_a_card_until_its_ttl_to_the_minute() -> None:
    card = card_ids.issue("hofhir-patient-view", "ho-imaging", NOW)
    issued_minute = NOW.replace(second=0)
    assert card_ids.topic_of("hofhir-patient-view", card, issued_minute + timedelta(seconds=WEEK), WEEK) == "ho-imaging"
    late = issued_minute + timedelta(seconds=WEEK + 60)
    assert card_ids.topic_of("hofhir-patient-view", card, late, WEEK) is None
    # A TTL under a minute still admits the minute the card was issued in, not the next one.
    assert card_ids.topic_of("hofhir-patient-view", card, NOW, 1) == "ho-imaging"
    assert card_ids.topic_of("hofhir-patient-view", card, issued_minute + timedelta(minutes=2), 1) is None


def test_a_card_from_a_clock_a_few_minutes_ahead_still_reads() -> None:
    card = card_ids.issue("hofhir-order-sign", "ho-prophylaxis", NOW + timedelta(minutes=card_ids.SKEW_MINUTES))
    assert card_ids.topic_of("hofhir-order-sign", card, NOW, WEEK) == "ho-prophylaxis"
    ahead = card_ids.issue("hofhir-order-sign", "ho-prophylaxis", NOW + timedelta(minutes=card_ids.SKEW_MINUTES + 1))
    assert card_ids.topic_of("hofhir-order-sign", ahead, NOW, WEEK) is None


def test_the_minute_field_wraps_without_losing_a_card() -> None:
    wrap = datetime.fromtimestamp(card_ids.MINUTES * 60, tz=UTC)  # the minute field rolls over to 0 here
    card = card_ids.issue("hofhir-patient-view", "ho-risk", wrap - timedelta(minutes=3))
    assert card_ids.topic_of("hofhir-patient-view", card, wrap + timedelta(minutes=3), WEEK) == "ho-risk"


@pytest.mark.parametrize(
    "card",
    [
        str(uuid.uuid4()),  # a random uuid: a card of an earlier version, or not hofhir's
        "card-1",
        "",
        "urn:uuid:not-a-uuid",
        "00000000-0000-8000-0000-000000000000",  # version 8 but no tag hofhir writes
        "00000000-0000-8000-c000-000000000000",  # wrong variant
        None,
        42,
        ["a"],
    ],
)
def test_anything_else_reads_as_no_topic(card: object) -> None:
    assert card_ids.topic_of("hofhir-patient-view", card, NOW, WEEK) is None


def test_only_hofhir_layout_counts_as_ours() -> None:
    assert card_ids.ours(card_ids.issue("hofhir-patient-view", "ho-risk", NOW))
    assert card_ids.ours(card_ids.issue("any", "ho-risk", NOW))  # the layout, whatever the tag
    assert not card_ids.ours(str(uuid.uuid4())) and not card_ids.ours("card-1") and not card_ids.ours(None)
