"""Subscription notifications: every sample form, R4 rest-hooks, dedup keys, bad bodies, fuzzing."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import example as hypothesis_example
from hypothesis import strategies as st

from hofhir.adapters.notifications import (
    SUBSCRIPTION_HINT_HEADER,
    Notification,
    NotificationError,
    dedup_key,
    parse_notification,
    parse_subscription_status,
    relative_reference,
)

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "fhir-samples"  # read-only, never edited
SUBSCRIPTIONS = SAMPLES / "subscriptions"
JSON = "application/fhir+json"

BACKPORT_SUBSCRIPTION = "https://example.org/fhir/Subscription/admission"
BACKPORT_TOPIC = "http://hl7.org/SubscriptionTopic/admission"
BACKPORT_ENCOUNTER = "https://example.org/fhir/Encounter/86009987-eabe-42bf-8c02-b112b18cb616"
BACKPORT_PATIENT = "https://example.org/fhir/Patient/1599eb66-431a-447c-a3de-6897fe9ae9a1"
BACKPORT_TIMESTAMP = "2020-05-29T11:44:13.1882432-05:00"
R5_SUBSCRIPTION = "http://example.org/FHIR/R5/Subscription/123"
R5_TOPIC = "http://example.org/FHIR/R5/SubscriptionTopic/admission"
R5_ENCOUNTER = "http://example.org/FHIR/R5/Encounter/2"
R5_PATIENT = "http://example.org/FHIR/R5/Patient/ABC"


def sample(relative: str) -> bytes:
    path = SUBSCRIPTIONS / relative if not relative.startswith("hl7-r4-examples") else SAMPLES / relative
    if not path.exists():  # the shared folder is part of the test set-up: missing data fails, never skips
        pytest.fail(f"FHIR sample {path} not found: the tests need ../shared beside the repository")
    return path.read_bytes()


def sample_json(relative: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(sample(relative))
    return document


def post(body: bytes | dict[str, Any], **kwargs: Any) -> Notification:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    arguments: dict[str, Any] = {"method": "POST", "path": "", "content_type": JSON} | kwargs
    return parse_notification(body=data, **arguments)


# -- every notification sample, asserted against what the file says ------------------------------


@dataclass(frozen=True)
class Event:
    number: str | None
    focus: str | None
    resources: tuple[str, ...]  # Type/id of each payload resource, in Bundle order
    patient: str | None
    additional_context: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expected:
    kind: str
    status: str
    events: tuple[Event, ...] = ()
    errors: tuple[str, ...] = ()
    since: str = "2"


ENCOUNTER_ID = "Encounter/86009987-eabe-42bf-8c02-b112b18cb616"
PATIENT_ID = "Patient/1599eb66-431a-447c-a3de-6897fe9ae9a1"
BACKPORT_EXPECTED = {
    "handshake": Expected("handshake", "requested", since="0"),
    "heartbeat": Expected("heartbeat", "active"),
    "empty": Expected("event-notification", "active", (Event("2", None, (), None),)),
    "empty-with-auth": Expected("event-notification", "active", (Event("2", None, (), None),)),
    "id-only": Expected("event-notification", "active", (Event("2", BACKPORT_ENCOUNTER, (), None),)),
    "id-only-with-auth": Expected("event-notification", "active", (Event("2", BACKPORT_ENCOUNTER, (), None),)),
    "id-only-with-query": Expected("event-notification", "active", (Event("2", BACKPORT_ENCOUNTER, (), None),)),
    "full-resource": Expected(
        "event-notification", "active", (Event("2", BACKPORT_ENCOUNTER, (ENCOUNTER_ID,), BACKPORT_PATIENT),)
    ),
    "full-resource-with-query": Expected(
        "event-notification", "active", (Event("2", BACKPORT_ENCOUNTER, (ENCOUNTER_ID,), BACKPORT_PATIENT),)
    ),
    "multi-resource": Expected(
        "event-notification",
        "active",
        (Event("2", BACKPORT_ENCOUNTER, (ENCOUNTER_ID, PATIENT_ID), BACKPORT_PATIENT, (BACKPORT_PATIENT,)),),
    ),
    "error": Expected("query-status", "error", errors=("no-response",), since="3"),
}

R5_EXPECTED: dict[str, tuple[str | None, Expected]] = {  # file id -> (topic, expected)
    # full-resource: the Encounter's subject is the relative "Patient/ABC"
    "00b99077-2bda-436e-98cc-a4f65d6c2fe0": (
        R5_TOPIC,
        Expected("event-notification", "active", (Event("2", R5_ENCOUNTER, ("Encounter/2",), "Patient/ABC"),)),
    ),
    # the same notification inside a message Bundle
    "0f322dbe-4f8d-4cbd-9ecb-bc8dc6f65f6a": (
        R5_TOPIC,
        Expected("event-notification", "active", (Event("2", R5_ENCOUNTER, ("Encounter/2",), "Patient/ABC"),)),
    ),
    # id-only: entries with fullUrl and request but no resource
    "3945182f-d315-4dbf-9259-09d863c7e7da": (
        R5_TOPIC,
        Expected("event-notification", "active", (Event("2", R5_ENCOUNTER, (), None),)),
    ),
    "3d20ea4b-90dc-4d0d-b15a-c7a893389401": (R5_TOPIC, Expected("heartbeat", "active", since="310")),
    "40464b74-fad0-4f45-ab60-e67f949c5e92": (R5_TOPIC, Expected("query-status", "active", since="310")),
    "54f808cf-d159-4c9b-accb-c33eb20f0ecc": (R5_TOPIC, Expected("handshake", "requested", since="0")),
    # query-event: two events, each with its Encounter and the shared Patient
    "787e69f6-81a8-44e4-b404-257013dec332": (
        R5_TOPIC,
        Expected(
            "query-event",
            "active",
            (
                Event(
                    "307",
                    "http://example.org/FHIR/R5/Encounter/307",
                    ("Encounter/307", "Patient/ABC"),
                    "Patient/ABC",
                    (R5_PATIENT,),
                ),
                Event(
                    "308",
                    "http://example.org/FHIR/R5/Encounter/308",
                    ("Patient/ABC", "Encounter/308"),
                    "Patient/ABC",
                    (R5_PATIENT,),
                ),
            ),
            since="310",
        ),
    ),
    # id-only with additional context: the patient comes from additionalContext
    "920a46b7-045a-4773-82bd-8e90c3e15653": (
        R5_TOPIC,
        Expected("event-notification", "active", (Event("2", R5_ENCOUNTER, (), R5_PATIENT, (R5_PATIENT,)),)),
    ),
    # empty, and without a topic
    "9601c07a-e34f-4945-93ca-6efb5394c995": (
        None,
        Expected("event-notification", "active", (Event("2", None, (), None),)),
    ),
    "e2c9dc20-615e-4603-9005-74deb209cbb0": (
        R5_TOPIC,
        Expected("event-notification", "error", (Event("328", None, (), None),), ("no-response",), since="328"),
    ),
    "fdd78223-f79f-43b4-8979-ad49d4ac248c": (
        R5_TOPIC,
        Expected(
            "event-notification",
            "active",
            (Event("2", R5_ENCOUNTER, ("Encounter/2", "Patient/ABC"), "Patient/ABC", (R5_PATIENT,)),),
        ),
    ),
}


def observed_events(notification: Notification) -> tuple[Event, ...]:
    return tuple(
        Event(
            event.event_number,
            event.focus,
            tuple(f"{r['resourceType']}/{r['id']}" for r in event.resources),
            event.patient,
            event.additional_context,
        )
        for event in notification.events
    )


def assert_notification(notification: Notification, expected: Expected) -> None:
    assert notification.kind == expected.kind
    assert notification.status == expected.status
    assert notification.errors == expected.errors
    assert notification.events_since_subscription_start == expected.since
    assert observed_events(notification) == expected.events


@pytest.mark.parametrize("version", ["r4", "r4b"])
@pytest.mark.parametrize("example", sorted(BACKPORT_EXPECTED))
def test_backport_ig_notification_bundles(version: str, example: str) -> None:
    notification = post(sample(f"backport-ig/Bundle-{version}-notification-{example}.json"))

    assert notification.form == {"r4": "backport-r4", "r4b": "r4b"}[version]
    assert notification.subscription == BACKPORT_SUBSCRIPTION
    assert notification.topic == BACKPORT_TOPIC
    assert_notification(notification, BACKPORT_EXPECTED[example])
    for event in notification.events:
        assert event.timestamp == BACKPORT_TIMESTAMP


@pytest.mark.parametrize("bundle_id", sorted(R5_EXPECTED))
def test_r5_core_notification_bundles(bundle_id: str) -> None:
    notification = post(sample(f"r5-core/Bundle-{bundle_id}.json"))

    topic, expected = R5_EXPECTED[bundle_id]
    assert notification.form == "r5"
    assert notification.subscription == R5_SUBSCRIPTION
    assert notification.topic == topic
    assert_notification(notification, expected)


def test_every_notification_sample_is_asserted() -> None:
    assert SUBSCRIPTIONS.exists(), f"FHIR samples not found at {SAMPLES}: the tests need ../shared"
    backport = {p.name for p in (SUBSCRIPTIONS / "backport-ig").glob("Bundle-*.json")}
    r5 = {p.name for p in (SUBSCRIPTIONS / "r5-core").glob("Bundle-*.json")}

    assert backport == {f"Bundle-{v}-notification-{e}.json" for v in ("r4", "r4b") for e in BACKPORT_EXPECTED}
    assert r5 == {f"Bundle-{bundle_id}.json" for bundle_id in R5_EXPECTED}


def test_the_r4_and_r4b_forms_of_each_backport_example_say_the_same() -> None:
    for example in BACKPORT_EXPECTED:
        r4 = post(sample(f"backport-ig/Bundle-r4-notification-{example}.json"))
        r4b = post(sample(f"backport-ig/Bundle-r4b-notification-{example}.json"))
        assert (r4.form, r4b.form) == ("backport-r4", "r4b")
        assert r4.kind == r4b.kind and r4.events == r4b.events and r4.errors == r4b.errors, example


def test_the_message_wrapper_carries_the_same_notification() -> None:
    wrapped = post(sample("r5-core/Bundle-0f322dbe-4f8d-4cbd-9ecb-bc8dc6f65f6a.json"))
    plain = post(sample("r5-core/Bundle-00b99077-2bda-436e-98cc-a4f65d6c2fe0.json"))

    assert observed_events(wrapped) == observed_events(plain)
    assert wrapped.events[0].resources[0]["meta"]["versionId"] == "1"


@pytest.mark.parametrize(
    "name",
    [
        "backport-ig/Bundle-r4-notification-handshake.json",
        "backport-ig/Bundle-r4-notification-heartbeat.json",
        "backport-ig/Bundle-r4b-notification-handshake.json",
        "backport-ig/Bundle-r4b-notification-heartbeat.json",
        "r5-core/Bundle-54f808cf-d159-4c9b-accb-c33eb20f0ecc.json",
        "r5-core/Bundle-3d20ea4b-90dc-4d0d-b15a-c7a893389401.json",
    ],
)
def test_handshake_and_heartbeat_have_no_events(name: str) -> None:
    notification = post(sample(name))

    assert notification.kind in ("handshake", "heartbeat")
    assert notification.events == ()


def test_a_handshake_that_lists_an_event_still_reports_none() -> None:
    bundle = sample_json("backport-ig/Bundle-r4b-notification-handshake.json")
    bundle["entry"][0]["resource"]["notificationEvent"] = [{"eventNumber": "1"}]

    assert post(bundle).events == ()


def test_a_focus_that_is_a_patient_is_the_patient() -> None:
    bundle = sample_json("backport-ig/Bundle-r4b-notification-id-only.json")
    bundle["entry"][0]["resource"]["notificationEvent"][0]["focus"] = {"reference": BACKPORT_PATIENT}

    assert post(bundle).events[0].patient == BACKPORT_PATIENT


def test_a_urn_uuid_focus_resolves_to_the_included_patient() -> None:
    focus = "urn:uuid:5d1c3e0c-1f8a-4b0e-9a57-2f4b7c1d9e10"
    bundle = sample_json("backport-ig/Bundle-r4b-notification-full-resource.json")
    bundle["entry"][0]["resource"]["notificationEvent"][0]["focus"] = {"reference": focus}
    bundle["entry"][1] = {
        "fullUrl": focus,
        "resource": {"resourceType": "Patient", "id": "p1"},
        "request": {"method": "POST", "url": "Patient"},
    }

    assert observed_events(post(bundle)) == (Event("2", focus, ("Patient/p1",), "Patient/p1"),)


def test_with_several_events_each_gets_only_the_resources_it_names() -> None:
    bundle = sample_json("r5-core/Bundle-787e69f6-81a8-44e4-b404-257013dec332.json")
    del bundle["entry"][0]["resource"]["notificationEvent"][1]["focus"]

    event_307, event_308 = post(bundle).events
    assert [r["id"] for r in event_307.resources] == ["307", "ABC"]
    assert [r["id"] for r in event_308.resources] == ["ABC"]  # Encounter/308 is named by no event now
    assert (event_308.focus, event_308.patient) == (None, R5_PATIENT)


def test_event_numbers_written_as_json_numbers_are_read_as_strings() -> None:
    r5 = replace_first_entry(R5_EVENT, notificationEvent=[{"eventNumber": 5}], eventsSinceSubscriptionStart=5)
    backport = sample_json("backport-ig/Bundle-r4-notification-empty.json")
    for parameter in backport["entry"][0]["resource"]["parameter"]:
        if parameter["name"] == "notification-event":
            parameter["part"][0] = {"name": "event-number", "valueUnsignedInt": 7}

    assert [e.event_number for e in post(r5).events] == ["5"]
    assert post(r5).events_since_subscription_start == "5"
    assert [e.event_number for e in post(backport).events] == ["7"]


# -- status resources on their own --------------------------------------------------------------


def test_backport_r4_status_parameters_on_its_own() -> None:
    status = parse_subscription_status(sample_json("backport-ig/Parameters-r4-notification-status.json"), "backport-r4")

    assert (status.form, status.kind, status.status) == ("backport-r4", "event-notification", "active")
    assert (status.subscription, status.topic) == (BACKPORT_SUBSCRIPTION, BACKPORT_TOPIC)
    assert observed_events(status) == (Event("2", None, (), None),)
    assert status.events[0].timestamp == BACKPORT_TIMESTAMP


def test_r4b_subscription_status_on_its_own() -> None:
    status = parse_subscription_status(
        sample_json("backport-ig/SubscriptionStatus-r4b-notification-status.json"), "r4b"
    )

    assert (status.form, status.kind, status.subscription) == ("r4b", "event-notification", BACKPORT_SUBSCRIPTION)
    assert observed_events(status) == (Event("2", None, (), None),)


def test_r5_subscription_status_on_its_own() -> None:
    status = parse_subscription_status(sample_json("r5-core/SubscriptionStatus-example.json"), "r5")

    assert (status.form, status.kind, status.subscription, status.topic) == (
        "r5",
        "event-notification",
        R5_SUBSCRIPTION,
        R5_TOPIC,
    )
    assert status.events_since_subscription_start == "1000"
    assert observed_events(status) == (Event("1000", None, (), None),)


def test_a_status_resource_of_the_wrong_form_is_refused() -> None:
    with pytest.raises(NotificationError, match="must be a SubscriptionStatus"):
        parse_subscription_status(sample_json("backport-ig/Parameters-r4-notification-status.json"), "r5")


# -- R4 classic rest-hook -----------------------------------------------------------------------


def test_r4_rest_hook_without_payload_is_one_event_without_focus() -> None:
    notification = parse_notification(method="POST", path="", content_type=None, body=b"", subscription_hint="42")

    assert (notification.form, notification.kind) == ("r4-rest-hook", "rest-hook")
    assert notification.subscription == "Subscription/42"
    assert observed_events(notification) == (Event(None, None, (), None),)
    assert dedup_key(notification, notification.events[0]) is None


def test_r4_rest_hook_put_without_payload_takes_the_focus_from_the_path() -> None:
    notification = parse_notification(method="PUT", path="/Patient/example", content_type=JSON, body=b"")

    assert observed_events(notification) == (Event(None, "Patient/example", (), "Patient/example"),)
    assert notification.subscription is None


def test_r4_rest_hook_put_of_the_matched_resource() -> None:
    # r4-classic/Subscription-example.json has payload application/fhir+json, so the server PUTs the
    # matched Observation to [endpoint]/Observation/{id}, with the headers of channel.header.
    subscription = sample_json("r4-classic/Subscription-example.json")
    subscription["channel"]["header"].append(f"{SUBSCRIPTION_HINT_HEADER}: {subscription['id']}")
    headers = dict(line.split(": ", 1) for line in subscription["channel"]["header"])
    observation = sample_json("hl7-r4-examples/Observation-example.json")
    observation["code"] = {"coding": [{"system": "http://loinc.org", "code": "1975-2"}]}

    notification = parse_notification(
        method="PUT",
        path="/Observation/example",
        content_type=subscription["channel"]["payload"],
        body=orjson.dumps(observation),
        subscription_hint=headers[SUBSCRIPTION_HINT_HEADER],
    )

    assert notification.subscription == "Subscription/example"
    assert observed_events(notification) == (
        Event(None, "Observation/example", ("Observation/example",), "Patient/example"),
    )
    assert notification.events[0].resources[0]["code"]["coding"][0]["code"] == "1975-2"


def test_r4_rest_hook_post_of_a_single_resource_to_the_base() -> None:
    notification = post(
        sample("hl7-r4-examples/Condition-example.json"), content_type="application/json; charset=utf-8"
    )

    assert observed_events(notification) == (
        Event(None, "Condition/example", ("Condition/example",), "Patient/example"),
    )


def test_r4_rest_hook_patient_resource_is_its_own_patient() -> None:
    notification = post(sample("hl7-r4-examples/Patient-example.json"))

    assert notification.events[0].patient == "Patient/example"


def test_r4_rest_hook_bundle_of_matches_is_one_event_per_resource() -> None:
    notification = post(sample("hl7-r4-examples/Bundle-bundle-example.json"))  # a searchset

    assert observed_events(notification) == (
        Event(None, "MedicationRequest/3123", ("MedicationRequest/3123",), "Patient/347"),
        Event(None, "Medication/example", ("Medication/example",), None),
    )


def test_r4_rest_hook_resolves_a_urn_uuid_subject_within_the_bundle() -> None:
    patient_url = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    observation = sample_json("hl7-r4-examples/Observation-example.json") | {"subject": {"reference": patient_url}}
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:0d6c4c4e-3c55-4d9c-9e7a-4c1f1f7e1c11", "resource": observation},
            {"fullUrl": patient_url, "resource": sample_json("hl7-r4-examples/Patient-example.json")},
        ],
    }

    assert post(bundle).events[0].patient == "Patient/example"


def test_r4_rest_hook_bundle_entries_without_resource_are_skipped() -> None:
    notification = post(sample("hl7-r4-examples/Bundle-bundle-response.json"))  # 10 entries, 3 resources

    assert [event.focus for event in notification.events] == [
        "Patient/12423",
        "urn:uuid:7f9724ed-ef8d-4434-aacb-41869db83233",
        "Bundle/fb6ed6cb-324e-4588-87cd-0c92c68986ca",
    ]


def test_r4_rest_hook_document_bundle_is_itself_the_match() -> None:
    notification = post(sample("hl7-r4-examples/Bundle-father.json"))

    assert len(notification.events) == 1
    assert notification.events[0].resources[0]["type"] == "document"


def test_subscription_hints() -> None:
    assert post(b"", subscription_hint="admission").subscription == "Subscription/admission"
    assert post(b"", subscription_hint="Subscription/7").subscription == "Subscription/7"
    assert post(b"", subscription_hint=BACKPORT_SUBSCRIPTION).subscription == BACKPORT_SUBSCRIPTION
    assert post(b"", subscription_hint="  ").subscription is None
    # Topic-based notifications name their own Subscription.
    named = post(sample("r5-core/Bundle-fdd78223-f79f-43b4-8979-ad49d4ac248c.json"), subscription_hint="other")
    assert named.subscription == R5_SUBSCRIPTION


def test_relative_reference() -> None:
    assert relative_reference(BACKPORT_ENCOUNTER) == ENCOUNTER_ID
    assert relative_reference("Patient/ABC/_history/3") == "Patient/ABC"
    assert relative_reference("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a") is None
    assert relative_reference("#contained") is None
    assert relative_reference("not a reference") is None


# -- dedup keys ---------------------------------------------------------------------------------


def all_notification_samples() -> list[str]:
    return [f"backport-ig/Bundle-{v}-notification-{e}.json" for v in ("r4", "r4b") for e in BACKPORT_EXPECTED] + [
        f"r5-core/Bundle-{bundle_id}.json" for bundle_id in R5_EXPECTED
    ]


def keys(notification: Notification) -> list[str | None]:
    return [dedup_key(notification, event) for event in notification.events]


def test_the_same_notification_twice_gives_the_same_keys() -> None:
    for name in all_notification_samples():
        first, second = post(sample(name)), post(sample(name))
        assert keys(first) == keys(second), name
        assert None not in keys(first), name


def test_topic_based_keys_are_subscription_and_event_number() -> None:
    query_event = post(sample("r5-core/Bundle-787e69f6-81a8-44e4-b404-257013dec332.json"))
    r4 = post(sample("backport-ig/Bundle-r4-notification-full-resource.json"))
    r4b = post(sample("backport-ig/Bundle-r4b-notification-id-only.json"))

    assert keys(query_event) == [f"{R5_SUBSCRIPTION}|307", f"{R5_SUBSCRIPTION}|308"]
    assert keys(r4) == keys(r4b) == [f"{BACKPORT_SUBSCRIPTION}|2"]  # one event, two forms: one key


def test_rest_hook_keys_follow_the_resource_version() -> None:
    observation = sample_json("hl7-r4-examples/Observation-example.json")
    version_1 = observation | {"meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"}}
    version_2 = observation | {"meta": {"versionId": "2", "lastUpdated": "2024-01-02T00:00:00Z"}}
    updated_only = observation | {"meta": {"lastUpdated": "2024-01-03T00:00:00Z"}}

    def key(resource: dict[str, Any], hint: str | None = "s1") -> str | None:
        notification = parse_notification(
            method="PUT",
            path="/Observation/example",
            content_type=JSON,
            body=orjson.dumps(resource),
            subscription_hint=hint,
        )
        return dedup_key(notification, notification.events[0])

    assert key(version_1) == key(copy.deepcopy(version_1))
    assert key(version_1) != key(version_2)
    assert key(updated_only) != key(version_1)
    assert key(version_1) != key(version_1, hint="s2")
    assert str(key(version_1)).startswith("sha256:")


def test_rest_hook_keys_without_meta_follow_the_content() -> None:
    observation = sample_json("hl7-r4-examples/Observation-example.json")
    observation.pop("meta", None)
    changed = observation | {"status": "amended"}
    reordered = dict(reversed(list(observation.items())))

    def key(resource: dict[str, Any]) -> str | None:
        notification = post(resource, subscription_hint="s1")
        return dedup_key(notification, notification.events[0])

    assert key(observation) == key(reordered)
    assert key(observation) != key(changed)


def test_events_of_one_rest_hook_bundle_have_different_keys() -> None:
    notification = post(sample("hl7-r4-examples/Bundle-bundle-example.json"), subscription_hint="s1")

    first, second = keys(notification)
    assert first is not None and second is not None and first != second


# -- bad requests -------------------------------------------------------------------------------


def replace_first_entry(name: str, **changes: Any) -> dict[str, Any]:
    bundle = sample_json(name)
    resource = bundle["entry"][0]["resource"]
    for key, value in changes.items():
        if value is None:
            resource.pop(key, None)
        else:
            resource[key] = value
    return bundle


def backport_without(parameter: str) -> dict[str, Any]:
    bundle = sample_json("backport-ig/Bundle-r4-notification-id-only.json")
    parameters = bundle["entry"][0]["resource"]["parameter"]
    bundle["entry"][0]["resource"]["parameter"] = [p for p in parameters if p["name"] != parameter]
    return bundle


def backport_event_without_number() -> dict[str, Any]:
    bundle = sample_json("backport-ig/Bundle-r4-notification-id-only.json")
    for parameter in bundle["entry"][0]["resource"]["parameter"]:
        if parameter["name"] == "notification-event":
            parameter["part"] = [p for p in parameter["part"] if p["name"] != "event-number"]
    return bundle


def backport_event_number(part: dict[str, Any]) -> dict[str, Any]:
    bundle = sample_json("backport-ig/Bundle-r4-notification-id-only.json")
    for parameter in bundle["entry"][0]["resource"]["parameter"]:
        if parameter["name"] == "notification-event":
            parameter["part"][0] = part
    return bundle


def as_type(name: str, bundle_type: str) -> dict[str, Any]:
    return sample_json(name) | {"type": bundle_type}


def message_without_notification() -> dict[str, Any]:
    message = sample_json("r5-core/Bundle-0f322dbe-4f8d-4cbd-9ecb-bc8dc6f65f6a.json")
    message["entry"] = message["entry"][:1]
    return message


def message_carrying_a_collection() -> dict[str, Any]:
    message = sample_json("r5-core/Bundle-0f322dbe-4f8d-4cbd-9ecb-bc8dc6f65f6a.json")
    message["entry"][1]["resource"] = {"resourceType": "Bundle", "type": "collection"}
    return message


def message_in_message() -> dict[str, Any]:
    outer = sample_json("r5-core/Bundle-0f322dbe-4f8d-4cbd-9ecb-bc8dc6f65f6a.json")
    outer["entry"][1]["resource"] = sample_json("r5-core/Bundle-0f322dbe-4f8d-4cbd-9ecb-bc8dc6f65f6a.json")
    return outer


R4B_EVENT = "backport-ig/Bundle-r4b-notification-id-only.json"
R5_EVENT = "r5-core/Bundle-00b99077-2bda-436e-98cc-a4f65d6c2fe0.json"

BAD_REQUESTS: dict[str, tuple[Any, dict[str, Any], str]] = {
    # case: (body: bytes, dict or a callable making one; other arguments; expected message fragment)
    "not JSON": (b"{not json", {}, "the body is not valid JSON"),
    "not UTF-8": (b'{"resourceType": "\xff"}', {}, "the body is not valid JSON"),
    "a JSON array": (b"[1, 2]", {}, "the body is a JSON array, not a FHIR resource"),
    "a JSON string": (b'"Bundle"', {}, "the body is a JSON string, not a FHIR resource"),
    "no resourceType": (lambda: sample("r5-core/_package.json"), {}, "the body has no valid resourceType"),
    "unknown resourceType": ({"resourceType": "Banana", "id": "1"}, {}, "unknown resourceType 'Banana'"),
    "bare Parameters": (
        lambda: sample("backport-ig/Parameters-r4-notification-status.json"),
        {},
        "a bare Parameters is not a notification",
    ),
    "bare SubscriptionStatus": (
        lambda: sample("backport-ig/SubscriptionStatus-r4b-notification-status.json"),
        {},
        "a bare SubscriptionStatus is not a notification",
    ),
    "a Subscription": (
        lambda: sample("r4-classic/Subscription-example.json"),
        {},
        "a bare Subscription is not a notification: register it with the FHIR server",
    ),
    "history Bundle without status entry": (
        {"resourceType": "Bundle", "type": "history", "entry": [{"resource": {"resourceType": "Patient"}}]},
        {},
        "first entry is a Parameters (R4 Backport) or a SubscriptionStatus (R4B); found Patient",
    ),
    "history Bundle without entries": (
        {"resourceType": "Bundle", "type": "history"},
        {},
        "found no resource",
    ),
    "R5 Bundle with an R4 status": (
        lambda: as_type("backport-ig/Bundle-r4-notification-id-only.json", "subscription-notification"),
        {},
        "a subscription-notification Bundle must start with a SubscriptionStatus; found Parameters",
    ),
    "Parameters without subscription": (
        lambda: backport_without("subscription"),
        {},
        "no 'subscription' parameter",
    ),
    "Parameters without type": (lambda: backport_without("type"), {}, "has no notification type"),
    "unknown notification type": (
        lambda: replace_first_entry(R4B_EVENT, type="bogus"),
        {},
        "unknown notification type 'bogus'",
    ),
    "notification-event without event-number": (
        backport_event_without_number,
        {},
        "has no 'event-number' part",
    ),
    "R4B status without type": (
        lambda: replace_first_entry(R4B_EVENT, type=None),
        {},
        "invalid SubscriptionStatus: type",
    ),
    "R4B event without eventNumber": (
        lambda: replace_first_entry(R4B_EVENT, notificationEvent=[{"timestamp": BACKPORT_TIMESTAMP}]),
        {},
        "invalid SubscriptionStatus: notificationEvent.0.eventNumber",
    ),
    "R4B eventNumber as a JSON number": (
        lambda: replace_first_entry(R4B_EVENT, notificationEvent=[{"eventNumber": 2}]),
        {},
        "invalid SubscriptionStatus: notificationEvent.0.eventNumber",
    ),
    "R5 status without subscription": (
        lambda: replace_first_entry(R5_EVENT, subscription=None),
        {},
        "invalid SubscriptionStatus: subscription",
    ),
    "subscription without a reference": (
        lambda: replace_first_entry(R5_EVENT, subscription={"display": "admissions"}),
        {},
        "SubscriptionStatus.subscription has no reference",
    ),
    "Bundle.entry not a list": (
        {"resourceType": "Bundle", "type": "history", "entry": {}},
        {},
        "Bundle.entry is not a list",
    ),
    "entry resource not an object": (
        lambda: sample_json(R5_EVENT) | {"entry": [*sample_json(R5_EVENT)["entry"][:1], {"resource": "Encounter/2"}]},
        {},
        "Bundle.entry[1].resource is not a JSON object",
    ),
    "bad Bundle timestamp": (
        lambda: sample_json(R4B_EVENT) | {"timestamp": "yesterday"},
        {},
        "invalid Bundle: timestamp",
    ),
    "message without MessageHeader": (
        lambda: as_type(R5_EVENT, "message"),
        {},
        "a message Bundle must start with a MessageHeader",
    ),
    "message without notification": (
        message_without_notification,
        {},
        "the message Bundle carries no subscription-notification Bundle",
    ),
    "message in a message": (message_in_message, {}, "a message Bundle inside a message Bundle"),
    "message carrying a collection": (
        message_carrying_a_collection,
        {},
        "a collection Bundle is not a notification",
    ),
    "event-number as a boolean": (
        lambda: backport_event_number({"name": "event-number", "valueBoolean": True}),
        {},
        "has no 'event-number' part",
    ),
    "XML": (b"<Bundle/>", {"content_type": "application/fhir+xml"}, "only JSON notifications are read"),
    "GET": (b"", {"method": "GET"}, "notifications arrive by POST or PUT, not 'GET'"),
    "PUT without a path": (b"", {"method": "PUT"}, "a PUT notification needs the resource in the path"),
    "path without id": (b"", {"path": "/Observation"}, "notification path '/Observation' is not /{type}/{id}"),
    "PUT of another type": (
        lambda: sample("hl7-r4-examples/Patient-example.json"),
        {"method": "PUT", "path": "/Observation/example"},
        "the path names Observation/example but the body is a Patient",
    ),
    "PUT of another id": (
        lambda: sample("hl7-r4-examples/Observation-example.json"),
        {"method": "PUT", "path": "/Observation/other"},
        "the path names Observation/other but the body has id 'example'",
    ),
    "hint that is not a Subscription": (b"", {"subscription_hint": "Patient/1"}, "subscription hint 'Patient/1'"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_raise_a_one_line_notification_error(case: str) -> None:
    body, arguments, expected = BAD_REQUESTS[case]
    made = body() if callable(body) else body

    with pytest.raises(NotificationError) as raised:
        post(made, **arguments)

    message = str(raised.value)
    assert expected in message
    assert "\n" not in message and len(message) <= 300
    assert raised.value.message == message


def test_a_long_error_is_cut_to_one_short_line() -> None:
    error = NotificationError("word\n" * 200)

    assert len(str(error)) == 300 and "\n" not in str(error)


# -- property: nothing but NotificationError, whatever comes in ---------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
RESOURCE_TYPES = st.sampled_from(
    ["Bundle", "Parameters", "SubscriptionStatus", "MessageHeader", "Observation", "Patient", "Encounter", "X"]
)
FIELDS = st.sampled_from(
    ["type", "entry", "resource", "parameter", "part", "name", "subscription", "notificationEvent", "focus", "id"]
)
RESOURCE_LIKE = st.recursive(
    st.fixed_dictionaries({"resourceType": RESOURCE_TYPES}, optional={"id": st.text(max_size=8)}),
    lambda children: st.dictionaries(FIELDS, children | JSON_VALUES | st.lists(children, max_size=3), max_size=4).map(
        lambda d: {"resourceType": "Bundle", **d}
    ),
    max_leaves=12,
)
REQUESTS = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["POST", "PUT", "post", "GET"]),
        "path": st.sampled_from(["", "/", "/Observation/example", "/Patient/1", "/Bundle/b", "/x"])
        | st.text(max_size=20),
        "content_type": st.none() | st.sampled_from([JSON, "application/json", "text/xml", ""]) | st.text(max_size=20),
        "subscription_hint": st.none() | st.sampled_from(["1", "Subscription/1", "Patient/1"]) | st.text(max_size=20),
    }
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()  # the standard library, unlike orjson, writes integers past 64 bits


def parse_or_refuse(body: bytes, request: dict[str, Any]) -> None:
    try:
        notification = parse_notification(body=body, **request)
    except NotificationError as error:
        assert str(error) and "\n" not in str(error)
        return
    for event in notification.events:
        key = dedup_key(notification, event)
        assert key is None or isinstance(key, str)


def deeply_nested_notification(depth: int = 130) -> dict[str, Any]:
    """An R4 rest-hook payload nested 260 JSON levels deep, past orjson's 254 (issue 10: a 500 from the dedup key)."""
    inner: dict[str, Any] = {"url": "http://example.org/x", "valueString": "deep"}
    for _ in range(depth):
        inner = {"url": "http://example.org/x", "extension": [inner]}
    return {"resourceType": "Observation", "id": "deep", "status": "final", "code": {"text": "x"}, **inner}


@FUZZ
@given(value=JSON_VALUES | RESOURCE_LIKE, request=REQUESTS)
@hypothesis_example(value=deeply_nested_notification(), request={"method": "POST", "path": "", "content_type": JSON})
@hypothesis_example(
    value=deeply_nested_notification(), request={"method": "PUT", "path": "/Observation/deep", "content_type": JSON}
)
def test_any_json_is_read_or_refused_with_notification_error(value: Any, request: dict[str, Any]) -> None:
    parse_or_refuse(encode(value), request)


@FUZZ
@given(body=st.binary(max_size=200))
def test_any_bytes_are_read_or_refused_with_notification_error(body: bytes) -> None:
    parse_or_refuse(body, {"method": "POST", "path": "", "content_type": JSON})


@FUZZ
@given(data=st.data())
def test_truncated_samples_are_read_or_refused_with_notification_error(data: st.DataObject) -> None:
    body = sample(data.draw(st.sampled_from(all_notification_samples())))
    cut = data.draw(st.integers(min_value=0, max_value=len(body)))

    parse_or_refuse(body[:cut], {"method": "POST", "path": "", "content_type": JSON})


def mutate(document: Any, data: st.DataObject) -> Any:
    """Replace one subtree of a JSON document (chosen by walking down at random) with any JSON value."""
    if not isinstance(document, dict | list) or not document or data.draw(st.integers(0, 3)) == 0:
        return data.draw(JSON_VALUES | RESOURCE_LIKE)
    key = data.draw(st.sampled_from(sorted(document) if isinstance(document, dict) else range(len(document))))
    document[key] = mutate(document[key], data)
    return document


@FUZZ
@given(data=st.data())
def test_mutated_samples_are_read_or_refused_with_notification_error(data: st.DataObject) -> None:
    document = orjson.loads(sample(data.draw(st.sampled_from(all_notification_samples()))))

    parse_or_refuse(encode(mutate(document, data)), {"method": "POST", "path": "", "content_type": JSON})
