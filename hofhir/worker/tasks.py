"""Celery tasks: thin wrappers around `evaluate` and the Subscription write-back."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from hofhir.adapters import metrics
from hofhir.adapters.fhirclient import BearerToken, FhirClient, FhirError, FhirUnavailable
from hofhir.adapters.store import RedisStore
from hofhir.clinical.evaluate import evaluate
from hofhir.fhir.read import ClinicalInput
from hofhir.knowledge import default_knowledge
from hofhir.worker.app import DEAD_LETTER_KEY, _env_int, celery_app

log = logging.getLogger("hofhir.worker.tasks")


_shared_lock = threading.Lock()
_shared: dict[tuple[object, ...], Any] = {}


def _per_process(key: tuple[object, ...], make: Callable[[], Any]) -> Any:
    """One object per process and key, reused by every task (and thread) of that process: connections
    are kept open between tasks. Keyed by pid, so a forked pool child never shares its parent's sockets."""
    full = (os.getpid(), *key)
    found = _shared.get(full)
    if found is None:
        with _shared_lock:
            found = _shared.get(full)
            if found is None:
                found = _shared[full] = make()
    return found


def _store() -> RedisStore | None:
    url = celery_app.conf.broker_url
    if not (isinstance(url, str) and url.startswith("redis")):
        return None
    store: RedisStore = _per_process(("store", url), lambda: RedisStore.from_url(url))
    return store


def dead_letter(task: str, task_id: str | None, reason: str, payload: dict[str, Any]) -> None:
    """Keep a task that failed for good where an operator can see it (Redis list hofhir:dead-letter)."""
    store = _store()
    entry = {"task": task, "id": task_id, "reason": reason, "at": datetime.now(UTC).isoformat(), "payload": payload}
    if store is not None:
        store.push(DEAD_LETTER_KEY, orjson.dumps(entry).decode())
    log.error("dead-lettered %s %s: %s", task, task_id, reason[:300])


def over_delivered(task: Task, payload: dict[str, Any]) -> bool:
    """True when this message has been delivered more than HOFHIR_MAX_DELIVERIES times (a poison task
    that keeps killing workers): it then goes to the dead-letter list instead of running again."""
    store = _store()
    task_id = task.request.id
    if store is None or not task_id:
        return False
    # A Celery retry is a new message with the same task id: count deliveries per attempt, not per id.
    key = store.prefix + f"deliveries:{task_id}:{task.request.retries or 0}"
    count, _ = store.r.pipeline().incr(key).expire(key, 86_400).execute()  # one round trip
    count = int(count)
    if count > _env_int("HOFHIR_MAX_DELIVERIES", 3):
        dead_letter(task.name, task_id, f"delivered {count} times without finishing", payload)
        return True
    return False


@celery_app.task(name="hofhir.evaluate", bind=True)
def evaluate_task(self: Task, inputs: dict[str, Any], now: str) -> dict[str, Any] | None:
    """Evaluate already-filtered inputs (sent by the web tier) at `now`; returns Evaluation.as_dict()."""
    if over_delivered(self, {"hook": inputs.get("hook")}):
        return None
    started = time.perf_counter()
    evaluation = evaluate(ClinicalInput.from_dict(inputs), datetime.fromisoformat(now), default_knowledge())
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


def fhir_client() -> FhirClient:
    """This process's FHIR client for the configured server (one connection pool per process)."""
    names = (
        "HOFHIR_FHIR_BASE_URL",
        "HOFHIR_FHIR_TOKEN",
        "HOFHIR_FHIR_TIMEOUT_S",
        "HOFHIR_FHIR_TOKEN_URL",
        "HOFHIR_FHIR_PRIVATE_KEY_FILE",
        "HOFHIR_FHIR_CLIENT_ID",
        "HOFHIR_FHIR_KEY_ID",
        "HOFHIR_FHIR_KEY_ALG",
        "HOFHIR_FHIR_SCOPE",
    )
    client: FhirClient = _per_process(("fhir", *(os.environ.get(n) for n in names)), new_fhir_client)
    return client


def new_fhir_client() -> FhirClient:
    base = os.environ.get("HOFHIR_FHIR_BASE_URL")
    if not base:
        raise RuntimeError("HOFHIR_FHIR_BASE_URL is not set: Subscription work needs the FHIR server to read and write")
    token = os.environ.get("HOFHIR_FHIR_TOKEN")
    auth = BearerToken(token) if token else _backend_services_auth()
    return FhirClient(base, auth=auth, timeout=float(os.environ.get("HOFHIR_FHIR_TIMEOUT_S", "10")), retries=1)


def _backend_services_auth() -> Any:
    from hofhir.adapters.smart_auth import BackendServicesAuth

    token_url = os.environ.get("HOFHIR_FHIR_TOKEN_URL")
    key_file = os.environ.get("HOFHIR_FHIR_PRIVATE_KEY_FILE")
    client_id = os.environ.get("HOFHIR_FHIR_CLIENT_ID")
    if not (token_url and key_file and client_id):
        return None
    with open(key_file) as handle:
        pem = handle.read()
    return BackendServicesAuth(
        token_url,
        client_id,
        pem,
        kid=os.environ.get("HOFHIR_FHIR_KEY_ID", "hofhir"),
        alg=os.environ.get("HOFHIR_FHIR_KEY_ALG", "RS384"),  # type: ignore[arg-type]
        scope=os.environ.get(
            "HOFHIR_FHIR_SCOPE", "system/*.read system/RiskAssessment.write system/DetectedIssue.write"
        ),
    )


# Nobody waits for a write-back's result: it is not stored (one Redis write less per task).
@celery_app.task(name="hofhir.assess_patient", bind=True, max_retries=6, ignore_result=True)
def assess_patient_task(self: Task, patient_id: str | None, event: dict[str, Any]) -> dict[str, Any] | None:
    """A Subscription event about a patient: read their data, evaluate, write the RiskAssessment back.

    Retries with exponential backoff on 429/5xx/timeouts; any other 4xx is not retried and goes to the
    dead-letter list with the OperationOutcome.
    """
    from hofhir.worker.writeback import read_record, write_back

    if over_delivered(self, {"patient": patient_id, "event": event}):
        return None
    started = time.perf_counter()
    k = default_knowledge()
    try:
        client = fhir_client()
        if patient_id is None:
            patient_id = _patient_of_focus(client, str(event.get("focus") or ""))
        record = read_record(client, patient_id, k)
        now = datetime.now(UTC)
        evaluation = evaluate(record.inputs, now, k)
        written = write_back(client, evaluation, patient_id, now, current=record.current)
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
        countdown = exc.retry_after or min(300.0, 2.0 * 2**self.request.retries)
        _count("retried")
        raise self.retry(exc=exc, countdown=countdown) from exc
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
    return {
        "written": written.references,
        "unchanged": list(written.unchanged),
        "riskLevel": evaluation.trace.get("riskLevel"),
    }


def _patient_of_focus(client: FhirClient, focus: str) -> str:
    """The patient a notification's focus resource (an Observation, a Condition…) is about."""
    rtype, _, rid = focus.partition("/")
    if not rtype or not rid:
        raise FhirError(None, None, f"notification focus {focus!r} is not a Type/id reference")
    resource = client.read(rtype, rid)
    for key in ("subject", "patient"):
        ref = (resource.get(key) or {}).get("reference") if isinstance(resource.get(key), dict) else None
        if isinstance(ref, str) and "Patient/" in ref:
            return ref.rsplit("Patient/", 1)[1].split("/")[0]
    raise FhirError(None, None, f"{focus} names no patient")


def _count(result: str) -> None:
    metrics.WRITEBACKS.labels(result=result).inc()
