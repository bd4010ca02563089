"""Subscription notifications: every form a FHIR server sends, read into one `Notification`.

The webhook hands over what came over HTTP (method, path, content type, body); this module says
what it means. It does no I/O and reads no clock, so the web layer and the worker share one reading.

Forms (`Notification.form`):
- "r4-rest-hook": R4 criteria-based Subscription, channel type rest-hook. Without a payload the
  server POSTs an empty body to the endpoint; with `payload: application/fhir+json` it PUTs the
  matched resource to `[endpoint]/{type}/{id}`. A resource or a Bundle of matched resources POSTed
  to the endpoint itself is read too. This form never names its Subscription: pass
  `subscription_hint`, taken from the `X-Hofhir-Subscription` header (`SUBSCRIPTION_HINT_HEADER`)
  that the Subscription sets through `channel.header`. A header, because a query string in
  `channel.endpoint` breaks once the server appends `/{type}/{id}` to it.
- "backport-r4": Subscriptions R5 Backport IG, R4 form. A `history` Bundle whose first entry is a
  `Parameters` (backport-subscription-status-r4), then the notification's resources, if any.
- "r4b": Backport IG R4B form and R4B core. A `history` Bundle whose first entry is a
  `SubscriptionStatus`.
- "r5": R5 core. A `subscription-notification` Bundle whose first entry is a `SubscriptionStatus`,
  sent as is or inside a `message` Bundle whose MessageHeader has that Bundle as its focus.

Validation: the status resource is checked with fhir.resources models: R4 and R4B data with the
R4B models, R5 data with the R5 models. The notification Bundle is checked the same way, without
its entries' resources (a `message` wrapper only for shape). Payload resources are only checked for shape (an object with a
resourceType): the worker reads what it needs from the FHIR server anyway, so an odd element in a
payload should not cost the notification.

References are kept as the server wrote them (relative, absolute or urn:uuid). `relative_reference`
turns one into `Type/id` for reading from hofhir's own FHIR base.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Final, Literal, TypeAlias

import orjson
from fhir.resources.bundle import Bundle as R5Bundle
from fhir.resources.R4B import get_fhir_model_class as r4b_model_class
from fhir.resources.R4B.bundle import Bundle as R4BBundle
from fhir.resources.R4B.parameters import Parameters as R4BParameters
from fhir.resources.R4B.subscriptionstatus import SubscriptionStatus as R4BSubscriptionStatus
from fhir.resources.subscriptionstatus import SubscriptionStatus as R5SubscriptionStatus
from pydantic import ValidationError

NotificationForm: TypeAlias = Literal["r4-rest-hook", "backport-r4", "r4b", "r5"]
TopicBasedForm: TypeAlias = Literal["backport-r4", "r4b", "r5"]
NotificationKind: TypeAlias = Literal[
    "handshake", "heartbeat", "event-notification", "query-status", "query-event", "rest-hook"
]
Resource: TypeAlias = dict[str, Any]

SUBSCRIPTION_HINT_HEADER: Final = "X-Hofhir-Subscription"

# The codes of SubscriptionStatus.type (R4B, R5) and of the backport `type` parameter.
NOTIFICATION_TYPES: Final[Mapping[str, NotificationKind]] = {
    "handshake": "handshake",
    "heartbeat": "heartbeat",
    "event-notification": "event-notification",
    "query-status": "query-status",
    "query-event": "query-event",
}
# Only these types report events; a handshake, heartbeat or query-status never triggers work.
EVENT_TYPES: Final = frozenset({"event-notification", "query-event"})

# The Bundle types that are topic-based notifications; any other Bundle is an R4 rest-hook payload.
HISTORY: Final = "history"
SUBSCRIPTION_NOTIFICATION: Final = "subscription-notification"
MESSAGE: Final = "message"
TOPIC_BUNDLE_TYPES: Final = frozenset({HISTORY, SUBSCRIPTION_NOTIFICATION, MESSAGE})
# (Bundle.type, first entry's resourceType) -> form.
_STATUS_FORMS: Final[Mapping[tuple[str | None, str], TopicBasedForm]] = {
    (HISTORY, "Parameters"): "backport-r4",
    (HISTORY, "SubscriptionStatus"): "r4b",
    (SUBSCRIPTION_NOTIFICATION, "SubscriptionStatus"): "r5",
}

_JSON_MEDIA_TYPES: Final = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
_FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
_RESOURCE_TYPE = r"[A-Z][A-Za-z]{1,63}"
_REFERENCE: Final = re.compile(rf"(?:.*/)?({_RESOURCE_TYPE})/({_FHIR_ID})(?:/_history/{_FHIR_ID})?")
_NOTIFICATION_PATH: Final = re.compile(rf"/({_RESOURCE_TYPE})/({_FHIR_ID})/?")
_PATIENT_ELEMENTS: Final = ("subject", "patient")
_MAX_MESSAGE: Final = 300
# FHIR resources nest a few levels (extensions within extensions a few more); orjson re-serialises at most
# 254 levels (the de-duplication key hashes payload content), pydantic recurses per level. Deeper is refused.
MAX_DEPTH: Final = 100
# Resources that reach the webhook by mistake, never as what a rest-hook Subscription matched.
_NOT_A_PAYLOAD: Final[Mapping[str, str]] = {
    "Parameters": "it must be the first entry of a history Bundle (Backport IG R4)",
    "SubscriptionStatus": "it must be the first entry of a history (R4B) or subscription-notification (R5) Bundle",
    "Subscription": "register it with the FHIR server, which then sends notifications here",
    "SubscriptionTopic": "it belongs on the FHIR server",
    "OperationOutcome": "it reports an outcome, not a matched resource",
}
_JSON_TYPES: Final[Mapping[type, str]] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class NotificationTooLarge(ValueError):
    """More Bundle entries than the webhook accepts in one notification (the web layer answers 413)."""


class NotificationError(ValueError):
    """The request is not a notification hofhir can read. The message is one line for an OperationOutcome."""

    def __init__(self, message: str) -> None:
        line = " ".join(message.split())
        super().__init__(line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…")

    @property
    def message(self) -> str:
        return str(self)


@dataclass(frozen=True)
class NotificationEvent:
    """One triggering event: what changed (`focus`) and, when it can be told, for which patient.

    `patient` is a Patient reference found in the focus itself, the included focus resource's
    subject/patient, or an additional-context reference. When it is None the worker reads the
    focus to find the patient. `resources` are the payload resources of this event (the full
    resources of a full-resource notification, or the resource of an R4 rest-hook); treat as read-only.
    """

    event_number: str | None
    focus: str | None
    resources: tuple[Resource, ...] = ()
    patient: str | None = None
    timestamp: str | None = None
    additional_context: tuple[str, ...] = ()


@dataclass(frozen=True)
class Notification:
    """A notification in any form. `subscription` is a reference such as "Subscription/123" or a URL."""

    form: NotificationForm
    kind: NotificationKind
    subscription: str | None
    topic: str | None
    events: tuple[NotificationEvent, ...]
    status: str | None = None
    errors: tuple[str, ...] = ()
    events_since_subscription_start: str | None = None


# -- entry points -------------------------------------------------------------------------------


def parse_notification(
    *,
    method: str,
    path: str,
    content_type: str | None,
    body: bytes,
    subscription_hint: str | None = None,
    max_entries: int | None = None,
) -> Notification:
    """Read one webhook request. `path` is what follows `/fhir/notifications` ("" or "/Observation/1").

    `subscription_hint` (a Subscription id or reference) names the Subscription of an R4 rest-hook,
    which does not carry it; topic-based forms name their own and ignore the hint.
    Raises NotificationError when the request is not a notification, NotificationTooLarge when its
    Bundle (with a Bundle carried in a message Bundle) holds more than `max_entries` entries.
    """
    method = method.upper()
    if method not in ("POST", "PUT"):
        raise NotificationError(f"notifications arrive by POST or PUT, not {_describe(method[:16])}")
    target = _notification_target(path)
    if method == "PUT" and target is None:
        raise NotificationError("a PUT notification needs the resource in the path: /fhir/notifications/{type}/{id}")
    subscription = _subscription_from_hint(subscription_hint)
    if not body.strip():
        return _rest_hook_without_payload(subscription, target)
    _require_json(content_type)
    resource = _json_resource(body)
    if max_entries is not None:
        count = entry_count(resource)
        if count > max_entries:
            raise NotificationTooLarge(
                f"the notification holds {count} Bundle entries; at most {max_entries} are accepted in one"
            )
    if target is not None:
        return _rest_hook_update(subscription, target, resource)
    bundle_type = _string(resource.get("type")) if resource["resourceType"] == "Bundle" else None
    if bundle_type in TOPIC_BUNDLE_TYPES:
        return _topic_notification(resource)
    if resource["resourceType"] == "Bundle" and bundle_type != "document":
        return _rest_hook_bundle(subscription, resource)
    return _rest_hook_resource(subscription, resource)


def parse_subscription_status(resource: Mapping[str, Any], form: TopicBasedForm) -> Notification:
    """Read a status resource on its own: a backport `Parameters` or a `SubscriptionStatus`.

    The events have no resources; `patient` comes only from focus and additional context.
    """
    status = _subscription_status(resource, form)
    return replace(status, events=tuple(_with_payload(event, (), {}) for event in status.events))


def dedup_key(notification: Notification, event: NotificationEvent) -> str | None:
    """A key that is the same when the same event is delivered again and differs between events.

    "subscription|event-number" when both are known (so the backport R4 and R4B forms of one event
    agree). Otherwise a hash of the subscription, the focus and each payload resource's identity
    (type/id with meta.versionId and meta.lastUpdated, or its content when it has neither).
    None when nothing tells two deliveries apart (an R4 rest-hook without payload): the caller must
    not drop such a notification as a duplicate.
    """
    if notification.subscription and event.event_number is not None:
        return f"{notification.subscription}|{event.event_number}"
    if not event.resources:
        return None
    material = [notification.subscription, event.focus, [_resource_version(r) for r in event.resources]]
    return "sha256:" + hashlib.sha256(orjson.dumps(material)).hexdigest()


def relative_reference(reference: str | None) -> str | None:
    """`Type/id` of a literal reference (relative or absolute, `_history` dropped); None for urn: or #."""
    if not reference or reference.startswith(("urn:", "#")):
        return None
    match = _REFERENCE.fullmatch(reference)
    return f"{match[1]}/{match[2]}" if match else None


# -- R4 rest-hook -------------------------------------------------------------------------------


def _notification_target(path: str) -> tuple[str, str] | None:
    if path in ("", "/"):
        return None
    match = _NOTIFICATION_PATH.fullmatch(path)
    if match is None:
        raise NotificationError(f"notification path {_describe(path[:80])} is not /{{type}}/{{id}}")
    return match[1], match[2]


def _subscription_from_hint(hint: str | None) -> str | None:
    if hint is None or not hint.strip():
        return None
    hint = hint.strip()
    if re.fullmatch(_FHIR_ID, hint):
        return f"Subscription/{hint}"
    reference = relative_reference(hint)
    if reference is None or not reference.startswith("Subscription/"):
        raise NotificationError(
            f"subscription hint {_describe(hint[:80])} is neither a Subscription id nor a reference"
        )
    return hint


def _rest_hook_without_payload(subscription: str | None, target: tuple[str, str] | None) -> Notification:
    # Payload omitted: the server only says "something matched"; the worker searches for it.
    focus = f"{target[0]}/{target[1]}" if target else None
    event = NotificationEvent(event_number=None, focus=focus, patient=focus if _is_patient(focus) else None)
    return Notification("r4-rest-hook", "rest-hook", subscription, None, (event,))


def _rest_hook_update(subscription: str | None, target: tuple[str, str], resource: Resource) -> Notification:
    resource_type, resource_id = target
    if resource["resourceType"] != resource_type:
        raise NotificationError(
            f"the path names {resource_type}/{resource_id} but the body is a {resource['resourceType']}"
        )
    if resource.get("id", resource_id) != resource_id:
        raise NotificationError(
            f"the path names {resource_type}/{resource_id} but the body has id {_describe(resource.get('id'))}"
        )
    return _rest_hook_resource(subscription, resource, f"{resource_type}/{resource_id}")


def _rest_hook_resource(subscription: str | None, resource: Resource, focus: str | None = None) -> Notification:
    _require_r4_resource_type(resource)
    mistake = _NOT_A_PAYLOAD.get(resource["resourceType"])
    if mistake is not None:
        raise NotificationError(f"a bare {resource['resourceType']} is not a notification: {mistake}")
    event = _rest_hook_event(resource, focus or _own_reference(resource), {})
    return Notification("r4-rest-hook", "rest-hook", subscription, None, (event,))


def _rest_hook_bundle(subscription: str | None, bundle: Resource) -> Notification:
    # A Bundle of matched resources (not a document, which is itself the match): one event each.
    entries = _entries(bundle)
    _validate_bundle_shell(bundle, entries, R4BBundle)
    index = _full_url_index(entries)
    events = []
    for entry in entries:
        resource = entry.get("resource")
        if resource is None:
            continue
        _require_r4_resource_type(resource)
        focus = _own_reference(resource) or _string(entry.get("fullUrl"))
        events.append(_rest_hook_event(resource, focus, index))
    return Notification("r4-rest-hook", "rest-hook", subscription, None, tuple(events))


def _rest_hook_event(resource: Resource, focus: str | None, index: Mapping[str, Resource]) -> NotificationEvent:
    # The payload resource is the match itself, so its patient is the event's patient.
    patient = focus if _is_patient(focus) else _patient_of(resource, index)
    return NotificationEvent(event_number=None, focus=focus, resources=(resource,), patient=patient)


def _require_r4_resource_type(resource: Resource) -> None:
    if not _is_r4_resource_type(resource["resourceType"]):
        raise NotificationError(
            f"unknown resourceType {_describe(resource['resourceType'][:64])} in an R4 rest-hook payload"
        )


@lru_cache(maxsize=256)
def _is_r4_resource_type(resource_type: str) -> bool:
    try:
        r4b_model_class(resource_type)
    except (KeyError, ValueError, AttributeError, ImportError):
        return False
    return True


# -- topic-based notifications (Backport IG R4 and R4B, R5) -----------------------------------


def _topic_notification(bundle: Resource, *, in_message: bool = False) -> Notification:
    bundle_type = _string(bundle.get("type"))
    if bundle_type == MESSAGE:
        if in_message:
            raise NotificationError("a message Bundle inside a message Bundle is not a notification")
        return _topic_notification(_message_focus(bundle), in_message=True)
    entries = _entries(bundle)
    form, status_resource = _status_entry(bundle_type, entries)
    _validate_bundle_shell(bundle, entries, R5Bundle if form == "r5" else R4BBundle)
    status = _subscription_status(status_resource, form)
    payload = [entry["resource"] for entry in entries[1:] if "resource" in entry]
    return replace(status, events=_events_with_payload(status.events, payload, _full_url_index(entries)))


def _status_entry(bundle_type: str | None, entries: Sequence[Mapping[str, Any]]) -> tuple[TopicBasedForm, Resource]:
    """The form and the status resource, which is the first entry of every notification Bundle."""
    first: Resource | None = entries[0].get("resource") if entries else None
    found = first["resourceType"] if first is not None else "no resource"
    form = _STATUS_FORMS.get((bundle_type, found))
    if form is not None and first is not None:
        return form, first
    if bundle_type == HISTORY:
        raise NotificationError(
            "a history Bundle is a notification only when its first entry is a Parameters (R4 Backport) "
            f"or a SubscriptionStatus (R4B); found {found}"
        )
    if bundle_type == SUBSCRIPTION_NOTIFICATION:
        raise NotificationError(
            f"a subscription-notification Bundle must start with a SubscriptionStatus; found {found}"
        )
    raise NotificationError(
        f"a {bundle_type} Bundle is not a notification; expected history or subscription-notification"
    )


def _message_focus(bundle: Resource) -> Resource:
    """The notification Bundle a `message` Bundle carries (R5 messaging channel): the header's focus."""
    entries = _entries(bundle)
    header = entries[0].get("resource") if entries else None
    if header is None or header["resourceType"] != "MessageHeader":
        raise NotificationError("a message Bundle must start with a MessageHeader")
    focus = set(_references(header.get("focus")))
    bundles = [entry for entry in entries[1:] if entry.get("resource", {}).get("resourceType") == "Bundle"]
    focused = [entry for entry in bundles if entry.get("fullUrl") in focus]
    if not bundles:
        raise NotificationError("the message Bundle carries no subscription-notification Bundle")
    carried: Resource = (focused or bundles)[0]["resource"]
    return carried


def _subscription_status(resource: Mapping[str, Any], form: TopicBasedForm) -> Notification:
    expected = "Parameters" if form == "backport-r4" else "SubscriptionStatus"
    if resource.get("resourceType") != expected:
        raise NotificationError(f"a {form} status must be a {expected}, not {_describe(resource.get('resourceType'))}")
    if form == "backport-r4":
        _validate(resource, R4BParameters, expected)
        return _backport_parameters_status(resource)
    _validate(resource, R4BSubscriptionStatus if form == "r4b" else R5SubscriptionStatus, expected)
    return _subscription_status_resource(resource, form)


def _subscription_status_resource(resource: Mapping[str, Any], form: TopicBasedForm) -> Notification:
    """SubscriptionStatus (R4B, R5): type, subscription, topic, status, notificationEvent, error."""
    kind = _notification_type(resource.get("type"))
    subscription = _reference(resource.get("subscription"))
    if subscription is None:
        raise NotificationError("SubscriptionStatus.subscription has no reference")
    events = tuple(
        NotificationEvent(
            event_number=_number(event.get("eventNumber")),
            focus=_reference(event.get("focus")),
            timestamp=_string(event.get("timestamp")),
            additional_context=_references(event.get("additionalContext")),
        )
        for event in map(_object, _list(resource.get("notificationEvent")))
    )
    return Notification(
        form=form,
        kind=kind,
        subscription=subscription,
        topic=_string(resource.get("topic")),
        events=events if kind in EVENT_TYPES else (),
        status=_string(resource.get("status")),
        errors=_error_codes(_list(resource.get("error"))),
        events_since_subscription_start=_number(resource.get("eventsSinceSubscriptionStart")),
    )


def _backport_parameters_status(resource: Mapping[str, Any]) -> Notification:
    """Backport IG R4 status `Parameters`: the parameters are named as in the IG's profile."""
    parameters = [_object(p) for p in _list(resource.get("parameter"))]
    kind = _notification_type(_value(_named(parameters, "type")))
    subscription = _reference(_value(_named(parameters, "subscription")))
    if subscription is None:
        raise NotificationError("the status Parameters has no 'subscription' parameter with a valueReference.reference")
    events = tuple(
        _backport_notification_event([_object(p) for p in _list(parameter.get("part"))])
        for parameter in parameters
        if parameter.get("name") == "notification-event"
    )
    errors = [_value(p) for p in parameters if p.get("name") == "error"]
    return Notification(
        form="backport-r4",
        kind=kind,
        subscription=subscription,
        topic=_string(_value(_named(parameters, "topic"))),
        events=events if kind in EVENT_TYPES else (),
        status=_string(_value(_named(parameters, "status"))),
        errors=_error_codes(errors),
        events_since_subscription_start=_number(_value(_named(parameters, "events-since-subscription-start"))),
    )


def _backport_notification_event(parts: Sequence[Mapping[str, Any]]) -> NotificationEvent:
    event_number = _number(_value(_named(parts, "event-number")))
    if event_number is None:
        raise NotificationError("a 'notification-event' parameter has no 'event-number' part")
    return NotificationEvent(
        event_number=event_number,
        focus=_reference(_value(_named(parts, "focus"))),
        timestamp=_string(_value(_named(parts, "timestamp"))),
        additional_context=tuple(
            ref for p in parts if p.get("name") == "additional-context" if (ref := _reference(_value(p)))
        ),
    )


def _notification_type(code: object) -> NotificationKind:
    if not isinstance(code, str):
        raise NotificationError("the subscription status has no notification type")
    kind = NOTIFICATION_TYPES.get(code)
    if kind is None:
        raise NotificationError(
            f"unknown notification type {_describe(code[:40])}; expected one of {', '.join(NOTIFICATION_TYPES)}"
        )
    return kind


def _error_codes(concepts: Iterable[object]) -> tuple[str, ...]:
    """Each error CodeableConcept as its codes (e.g. "no-response"), or its text when it has none."""
    codes: list[str] = []
    for concept in map(_object, concepts):
        found = [code for coding in _list(concept.get("coding")) if (code := _string(_object(coding).get("code")))]
        text = _string(concept.get("text"))
        codes.extend(found or ([text] if text else []))
    return tuple(codes)


# -- payload: which resources belong to which event, and whose patient ---------------------------


def _events_with_payload(
    events: tuple[NotificationEvent, ...], payload: Sequence[Resource], index: Mapping[str, Resource]
) -> tuple[NotificationEvent, ...]:
    # One event owns the whole payload (focus, additional context and the topic's notificationShape
    # includes); with several, each gets the resources its focus and additional context name.
    if len(events) == 1:
        return (_with_payload(events[0], tuple(payload), index),)
    return tuple(
        _with_payload(event, tuple(r for r in payload if _is_named_by(r, index, event)), index) for event in events
    )


def _is_named_by(resource: Resource, index: Mapping[str, Resource], event: NotificationEvent) -> bool:
    return any(_resolves_to(reference, resource, index) for reference in (event.focus, *event.additional_context))


def _with_payload(
    event: NotificationEvent, resources: tuple[Resource, ...], index: Mapping[str, Resource]
) -> NotificationEvent:
    return replace(event, resources=resources, patient=_event_patient(event, resources, index))


def _event_patient(
    event: NotificationEvent, resources: Sequence[Resource], index: Mapping[str, Resource]
) -> str | None:
    if _is_patient(event.focus):
        return event.focus
    focus = next((r for r in resources if _resolves_to(event.focus, r, index)), None)
    from_focus = _patient_of(focus, index) if focus is not None else None
    return from_focus or next((ref for ref in event.additional_context if _is_patient(ref)), None)


def _patient_of(resource: Resource, index: Mapping[str, Resource]) -> str | None:
    """The Patient a resource is about: itself, or its subject/patient when that is a Patient."""
    if resource["resourceType"] == "Patient":
        return _own_reference(resource)
    for element in _PATIENT_ELEMENTS:
        reference = _reference(resource.get(element))
        if _is_patient(reference):
            return reference
        target = index.get(reference) if reference else None  # a urn:uuid reference within the Bundle
        if target is not None and target["resourceType"] == "Patient":
            return _own_reference(target)
    return None


def _resolves_to(reference: str | None, resource: Resource, index: Mapping[str, Resource]) -> bool:
    if reference is None:
        return False
    if index.get(reference) is resource:
        return True
    # http and https forms of one server's URL occur in one Bundle (R5 examples): compare Type/id.
    own = _own_reference(resource)
    return own is not None and relative_reference(reference) == own


def _is_patient(reference: str | None) -> bool:
    relative = relative_reference(reference)
    return relative is not None and relative.startswith("Patient/")


def _own_reference(resource: Resource) -> str | None:
    resource_id = resource.get("id")
    if isinstance(resource_id, str) and re.fullmatch(_FHIR_ID, resource_id):
        return f"{resource['resourceType']}/{resource_id}"
    return None


def _resource_version(resource: Resource) -> list[str | None]:
    meta = _object(resource.get("meta"))
    version_id, last_updated = _string(meta.get("versionId")), _string(meta.get("lastUpdated"))
    if version_id is None and last_updated is None:
        try:
            content = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
        except (orjson.JSONEncodeError, TypeError) as exc:  # not reached through parse_notification (depth-checked)
            raise NotificationError("a payload resource cannot be read (nested too deeply)") from exc
        return [_own_reference(resource), "sha256:" + hashlib.sha256(content).hexdigest()]
    return [_own_reference(resource), version_id, last_updated]


# -- JSON and Bundle shape ----------------------------------------------------------------------


def _require_json(content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type and media_type not in _JSON_MEDIA_TYPES and not media_type.endswith("+json"):
        raise NotificationError(f"only JSON notifications are read, not {_describe(media_type[:80])}")


def _json_resource(body: bytes) -> Resource:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NotificationError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise NotificationError(f"the body is a JSON {_JSON_TYPES.get(type(document), 'value')}, not a FHIR resource")
    if nested_deeper_than(document, MAX_DEPTH):
        raise NotificationError(f"the body nests JSON deeper than {MAX_DEPTH} levels; no FHIR notification does")
    return _resource(document, "the body")


def entry_count(resource: Mapping[str, Any]) -> int:
    """Entries of a Bundle, plus those of the Bundles it carries (a message Bundle's notification)."""
    if resource.get("resourceType") != "Bundle":
        return 0
    entries = _list(resource.get("entry"))
    inner = sum(
        len(_list(_object(e.get("resource")).get("entry")))
        for e in entries
        if isinstance(e, dict) and _object(e.get("resource")).get("resourceType") == "Bundle"
    )
    return len(entries) + inner


def nested_deeper_than(value: object, limit: int) -> bool:
    """True when JSON `value` nests objects/arrays more than `limit` levels deep (no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, dict | list))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return False


def _resource(value: object, where: str) -> Resource:
    if not isinstance(value, dict):
        raise NotificationError(f"{where} is not a JSON object")
    resource_type = value.get("resourceType")
    if not isinstance(resource_type, str) or not re.fullmatch(_RESOURCE_TYPE, resource_type):
        raise NotificationError(f"{where} has no valid resourceType")
    return value


def _entries(bundle: Resource) -> list[dict[str, Any]]:
    """Bundle.entry, each an object whose resource (if any) has a resourceType."""
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise NotificationError("Bundle.entry is not a list")
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise NotificationError(f"Bundle.entry[{position}] is not a JSON object")
        if "resource" in entry:
            _resource(entry["resource"], f"Bundle.entry[{position}].resource")
        if "fullUrl" in entry and not isinstance(entry["fullUrl"], str):
            raise NotificationError(f"Bundle.entry[{position}].fullUrl is not a string")
    return entries


def _full_url_index(entries: Iterable[Mapping[str, Any]]) -> dict[str, Resource]:
    return {entry["fullUrl"]: entry["resource"] for entry in entries if "fullUrl" in entry and "resource" in entry}


def _validate_bundle_shell(bundle: Resource, entries: Sequence[Mapping[str, Any]], model: Any) -> None:
    """Validate the Bundle without its entries' resources (each is read on its own terms)."""
    shell = {**bundle, "entry": [{k: v for k, v in entry.items() if k != "resource"} for entry in entries]}
    if not entries:
        shell.pop("entry")
    _validate(shell, model, "Bundle")


def _validate(resource: Mapping[str, Any], model: Any, name: str) -> None:
    try:
        model.model_validate(resource)
    except ValueError as exc:  # ValidationError, and any ValueError a validator lets through
        raise NotificationError(f"invalid {name}: {_first_problem(exc, name)}") from None
    except (TypeError, AttributeError, KeyError, RecursionError) as exc:
        raise NotificationError(f"invalid {name}: {type(exc).__name__}") from None


def _first_problem(exc: ValueError, name: str) -> str:
    problems = exc.errors() if isinstance(exc, ValidationError) else []
    if not problems:
        return str(exc)
    first = problems[0]
    location = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__") or name
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{location}: {first.get('msg', 'invalid')}{more}"


# -- reading elements (every value may be of the wrong JSON type) ---------------------------------


def _describe(value: object) -> str:
    """A client's value in a message: a string quoted and shortened, any other JSON value by its type."""
    if isinstance(value, str):
        return "'" + (value if len(value) <= 64 else value[:63] + "…") + "'"
    return "of JSON type " + _JSON_TYPES.get(type(value), "object")


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _number(value: object) -> str | None:
    """An integer64 / unsignedInt / string event count or number, as written (R5 JSON uses strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return _string(value)


def _reference(value: object) -> str | None:
    return _string(_object(value).get("reference"))


def _references(value: object) -> tuple[str, ...]:
    return tuple(ref for item in _list(value) if (ref := _reference(item)))


def _named(parameters: Iterable[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    """The first parameter (or part) with this name, or an empty one."""
    return next((p for p in parameters if p.get("name") == name), {})


def _value(parameter: Mapping[str, Any]) -> object:
    """A parameter's value[x], whatever its type."""
    return next((v for k, v in parameter.items() if k.startswith("value")), None)
