"""Celery tasks: thin wrappers around `evaluate` and the Subscription write-back."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from hofhir.adapters import metrics
from hofhir.adapters.fhirclient import BearerToken, FhirClient, FhirError, FhirUnavailable, deadline_in
from hofhir.adapters.settings import Settings
from hofhir.adapters.smart_auth import BackendServicesAuth
from hofhir.adapters.store import StoreUnavailable
from hofhir.clinical.evaluate import evaluate
from hofhir.fhir.read import ClinicalInput
from hofhir.worker.app import DEAD_LETTER_KEY, celery_app, context, soft_time_limit_s

log = logging.getLogger("hofhir.worker.tasks")


def dead_letter(task: str, task_id: str | None, reason: str, payload: dict[str, Any]) -> None:
    """Keep a task that failed for good where an operator can see it (Redis list hofhir:dead-letter)."""
    store = context().store
    entry = {"task": task, "id": task_id, "reason": reason, "at": datetime.now(UTC).isoformat(), "payload": payload}
    if store is not None:
        try:
            store.push(DEAD_LETTER_KEY, orjson.dumps(entry).decode())
        except StoreUnavailable:
            log.error("dead-letter list unavailable")
    log.error("dead-lettered %s %s: %s", task, task_id, reason[:300])


def over_delivered(task: Task, payload: dict[str, Any]) -> bool:
    """True when this message has been delivered more than HOFHIR_MAX_DELIVERIES times (a poison task
    that keeps killing workers): it then goes to the dead-letter list instead of running again."""
    ctx = context()
    task_id = task.request.id
    if ctx.store is None or not task_id:
        return False
    # A Celery retry is a new message with the same task id: count deliveries per attempt, not per id.
    count = ctx.store.increment(f"deliveries:{task_id}:{task.request.retries or 0}", 86_400)
    if count > ctx.settings.max_deliveries:
        dead_letter(task.name, task_id, f"delivered {count} times without finishing", payload)
        return True
    return False


@celery_app.task(name="hofhir.evaluate", bind=True)
def evaluate_task(self: Task, inputs: dict[str, Any], now: str) -> dict[str, Any] | None:
    """Evaluate already-filtered inputs (sent by the web tier) at `now`; returns Evaluation.as_dict()."""
    if over_delivered(self, {"hook": inputs.get("hook")}):
        return None
    started = time.perf_counter()
    evaluation = evaluate(ClinicalInput.from_dict(inputs), datetime.fromisoformat(now), context().knowledge)
    log.info(
        "evaluated",
        extra={
            "fields": {
                "taskId": self.request.id,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "cards": len(evaluation.guidance),
            }
        },
    )
    return evaluation.as_dict()


_clients_lock = threading.Lock()
_clients: dict[tuple[object, ...], FhirClient] = {}


def fhir_client(settings: Settings) -> FhirClient:
    """This process's client of the configured FHIR server, reused by every task and thread of the
    process (its connections stay open between tasks). Keyed by pid, so a forked pool child never
    shares its parent's sockets, and by the FHIR settings."""
    key = (
        os.getpid(),
        settings.fhir_base_url,
        settings.fhir_token,
        settings.fhir_token_url,
        settings.fhir_client_id,
        settings.fhir_private_key_file,
        settings.fhir_key_id,
        settings.fhir_key_alg,
        settings.fhir_scope,
        settings.fhir_timeout_s,
    )
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = new_fhir_client(settings)
    return client


def new_fhir_client(settings: Settings) -> FhirClient:
    base = settings.fhir_base_url
    if not base:
        raise RuntimeError("HOFHIR_FHIR_BASE_URL is not set: Subscription work needs the FHIR server to read and write")
    auth = BearerToken(settings.fhir_token) if settings.fhir_token else _backend_services_auth(settings)
    return FhirClient(base, auth=auth, timeout=settings.fhir_timeout_s, retries=1)


def _backend_services_auth(settings: Settings) -> BackendServicesAuth | None:
    if not (settings.fhir_token_url and settings.fhir_private_key_file and settings.fhir_client_id):
        return None
    with open(settings.fhir_private_key_file) as handle:
        pem = handle.read()
    return BackendServicesAuth(
        settings.fhir_token_url,
        settings.fhir_client_id,
        pem,
        kid=settings.fhir_key_id,
        alg=settings.fhir_key_alg,
        scope=settings.fhir_scope,
    )


@celery_app.task(
    name="hofhir.assess_patient",
    bind=True,
    max_retries=6,
    # Celery's own backoff: 2, 4, 8 … s (capped at 300 s), each drawn at random below that (full jitter)
    autoretry_for=(FhirUnavailable,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    ignore_result=True,  # nobody waits for a write-back's result: not stored (one Redis write less)
)
def assess_patient_task(self: Task, patient_id: str | None, event: dict[str, Any]) -> None:
    """A Subscription event about a patient: read their data, evaluate, write the RiskAssessment back
    (what was written or found current is in the "written back" log line and the hofhir_writeback_total counts).

    Retries with exponential backoff on 429/5xx/timeouts (a server's Retry-After wins when it gives
    one); any other 4xx is not retried and goes to the dead-letter list with the OperationOutcome.
    """
    from hofhir.worker.writeback import read_record, write_back

    if over_delivered(self, {"patient": patient_id, "event": event}):
        return None
    started = time.perf_counter()
    ctx = context()
    k = ctx.knowledge
    # The FHIR calls end by the soft time limit whatever the pool: Celery enforces its limits only on
    # processes, and a server that answers a byte at a time would otherwise hold a write-back thread for
    # good. Past it the task is retried like any unavailable server (FhirDeadlineExceeded).
    deadline = deadline_in(soft_time_limit_s(ctx.settings))
    try:
        client = fhir_client(ctx.settings)
        if patient_id is None:
            patient_id = _patient_of_focus(client, str(event.get("focus") or ""), deadline)
        record = read_record(client, patient_id, k, deadline)
        now = datetime.now(UTC)
        evaluation = evaluate(record.inputs, now, k)
        written = write_back(client, evaluation, patient_id, now, deadline, current=record.current)
    except FhirUnavailable as exc:
        if self.request.retries >= (self.max_retries or 0):
            dead_letter(
                self.name,
                self.request.id,
                f"FHIR server unavailable after retries: {exc}",
                {"patient": patient_id, "event": event},
            )
            _count("failed")
            return None
        _count("retried")
        if exc.retry_after:
            raise self.retry(exc=exc, countdown=exc.retry_after) from exc
        raise  # autoretry_for: Celery schedules the retry with its backoff
    except FhirError as exc:
        dead_letter(
            self.name,
            self.request.id,
            str(exc),
            {"patient": patient_id, "event": event, "operationOutcome": exc.operation_outcome},
        )
        _count("rejected")
        return None
    except SoftTimeLimitExceeded:
        raise self.retry(countdown=30) from None
    _count("unchanged" if len(written.unchanged) == len(written.references) else "written")
    log.info(
        "written back",
        extra={
            "fields": {
                "taskId": self.request.id,
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "written": sorted(set(written.references) - set(written.unchanged)),
                "unchanged": sorted(written.unchanged),
            }
        },
    )
    return None  # ignore_result: nothing reads it, and Celery would still format its repr for each task


def _patient_of_focus(client: FhirClient, focus: str, deadline: float | None = None) -> str:
    """The patient a notification's focus resource (an Observation, a Condition…) is about."""
    rtype, _, rid = focus.partition("/")
    if not rtype or not rid:
        raise FhirError(None, None, f"notification focus {focus!r} is not a Type/id reference")
    resource = client.read(rtype, rid, deadline=deadline)
    for key in ("subject", "patient"):
        ref = (resource.get(key) or {}).get("reference") if isinstance(resource.get(key), dict) else None
        if isinstance(ref, str) and "Patient/" in ref:
            return ref.rsplit("Patient/", 1)[1].split("/")[0]
    raise FhirError(None, None, f"{focus} names no patient")


def _count(result: str) -> None:
    metrics.WRITEBACKS.labels(result=result).inc()
