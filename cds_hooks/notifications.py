"""The FHIR Subscription webhook: `POST /fhir/notifications`, `PUT /fhir/notifications/{type}/{id}`.

Answers 2xx at once (handshakes and heartbeats too, recorded), drops duplicate events (subscription +
event number, kept in Redis or memory), and queues one task per new event: the worker reads the
patient's data from the FHIR server, evaluates and writes the result back.

Limits: a notification may hold at most `HOFHIR_MAX_NOTIFICATION_ENTRIES` Bundle entries (413 past it);
a bodiless `PUT /fhir/notifications/{type}/{id}` (R4 rest-hook without payload, which carries no event
number) counts once per resource and subscription within `HOFHIR_NOTIFICATION_DEDUP_S` seconds. Without
`HOFHIR_NOTIFICATION_SECRET` the webhook is open: the service warns at start.
"""

from __future__ import annotations

import hmac
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Blueprint, Response, g, request
from flask.blueprints import BlueprintSetupState

from cds_hooks.errors import HttpError
from cds_hooks.web import json_response, read_body, state
from hofhir.adapters import metrics
from hofhir.adapters.notifications import (
    SUBSCRIPTION_HINT_HEADER,
    Notification,
    NotificationError,
    NotificationEvent,
    NotificationTooLarge,
    dedup_key,
    parse_notification,
    relative_reference,
)

blueprint = Blueprint("notifications", __name__)
log = logging.getLogger("hofhir.notifications")
SECRET_HEADER = "X-Hofhir-Notification-Secret"  # noqa: S105 - a header name, not a secret
DEDUP_TTL_S = 7 * 24 * 3600
_embedded_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@blueprint.record_once
def _warn_if_open(setup: BlueprintSetupState) -> None:
    hofhir = setup.app.extensions.get("hofhir")
    if hofhir is not None and not hofhir.settings.notification_secret:
        log.warning(
            "the FHIR notification webhook is OPEN: anyone who can reach /fhir/notifications can queue work; "
            "set HOFHIR_NOTIFICATION_SECRET and send it in the Subscription's channel.header"
        )


def _check_secret() -> None:
    secret = state().settings.notification_secret
    if not secret:
        return
    given = request.headers.get(SECRET_HEADER) or ""
    auth = request.headers.get("Authorization") or ""
    if auth.lower().startswith("bearer "):
        given = given or auth[7:].strip()
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise HttpError(401, "notification secret missing or wrong")


def _enqueue(patient: str | None, event: dict[str, Any]) -> None:
    """Queue the write-back: on a Celery worker when Redis is configured, else on a local thread."""
    settings = state().settings
    if settings.redis_url:
        from cds_hooks.dispatch import NO_ARGS_REPR, publisher

        publisher(settings).send_task(
            "hofhir.assess_patient",
            args=[patient, event],
            retry=True,
            retry_policy={"max_retries": 2},
            **NO_ARGS_REPR,
        )
        return
    from hofhir.worker.tasks import assess_patient_task

    global _embedded_pool
    with _pool_lock:
        if _embedded_pool is None:
            _embedded_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hofhir-embedded")
    _embedded_pool.submit(assess_patient_task.apply, args=[patient, event])


def _receive(path: str) -> Response:
    _check_secret()
    g.service_id = "fhir-notifications"
    try:
        notification = parse_notification(
            method=request.method,
            path=path,
            content_type=request.content_type,
            body=read_body(),
            subscription_hint=request.headers.get(SUBSCRIPTION_HINT_HEADER),
            max_entries=state().settings.max_notification_entries,
        )
    except NotificationTooLarge as exc:
        raise HttpError(
            413, f"{exc} (HOFHIR_MAX_NOTIFICATION_ENTRIES={state().settings.max_notification_entries})"
        ) from exc
    except NotificationError as exc:
        raise HttpError(400, str(exc)) from exc
    s = state()
    metrics.NOTIFICATIONS.labels(kind=notification.kind).inc()
    s.store.incr("notifications:kinds", notification.kind)
    queued = duplicates = unresolved = 0
    for event in notification.events:
        key, ttl = dedup_key(notification, event), DEDUP_TTL_S
        if key is None:
            key, ttl = _bodiless_key(notification, event), 2 * max(1, s.settings.notification_dedup_s)
        if key is not None and not s.store.set_if_absent(f"notification:{key}", "1", ttl):
            duplicates += 1
            metrics.NOTIFICATIONS.labels(kind="duplicate").inc()
            continue
        patient = relative_reference(event.patient)
        focus = relative_reference(event.focus)
        if patient is None and focus is None:
            unresolved += 1
            continue
        _enqueue(
            patient.split("/", 1)[1] if patient else None,
            {"focus": focus, "eventNumber": event.event_number, "subscription": notification.subscription},
        )
        queued += 1
    g.cards = queued
    body = {
        "kind": notification.kind,
        "form": notification.form,
        "queued": queued,
        "duplicates": duplicates,
        "unresolved": unresolved,
    }
    return json_response(body, 202 if queued else 200)


def _bodiless_key(notification: Notification, event: NotificationEvent) -> str | None:
    """A bodiless PUT names its resource but no event: one per resource and subscription per time bucket."""
    if notification.form != "r4-rest-hook" or event.resources or not event.focus:
        return None
    s = state()
    bucket = int(s.clock().timestamp()) // max(1, s.settings.notification_dedup_s)
    return f"bodiless|{notification.subscription or ''}|{event.focus}|{bucket}"


@blueprint.post("/fhir/notifications")
def post_notification() -> Response:
    return _receive("")


@blueprint.put("/fhir/notifications/<resource_type>/<resource_id>")
def put_notification(resource_type: str, resource_id: str) -> Response:
    return _receive(f"/{resource_type}/{resource_id}")
