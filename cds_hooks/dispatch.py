"""Where an evaluation runs: inline in the web process (embedded mode) or on a Celery worker.

Both paths run `hofhir.clinical.evaluate.evaluate` on the same filtered input, so the answer does not depend on
which one ran.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from celery.exceptions import TimeoutError as ResultTimeout

from hofhir.adapters.settings import Settings
from hofhir.adapters.store import Store
from hofhir.clinical.evaluate import Evaluation, active_drafts, evaluate, relevant_drafts
from hofhir.fhir.read import ClinicalInput
from hofhir.knowledge import Knowledge

log = logging.getLogger("hofhir.dispatch")


@dataclass
class Outcome:
    evaluation: Evaluation | None  # None: no answer within the time allowed
    path: str  # "inline", "worker", "worker-fallback-inline", "cache"


_publishers: dict[str, Any] = {}


def publisher(settings: Settings) -> Any:
    """The Celery app the web tier sends tasks with (one per Redis URL).

    The web tier only publishes: a broker that does not answer in a quarter second is treated as down
    (and skipped for a few seconds), so the hook still answers inside its deadline.
    """
    redis_url = str(settings.redis_url)
    if redis_url not in _publishers:
        from hofhir.worker.app import make_celery

        app = make_celery(settings)
        app.conf.broker_connection_timeout = 0.25
        app.conf.broker_transport_options = {
            **app.conf.broker_transport_options,
            "socket_connect_timeout": 0.25,
            "socket_timeout": 0.5,
        }
        # The result store must not spend seconds reconnecting while an EHR waits: fail, fall back.
        app.conf.result_backend_transport_options = {
            **app.conf.result_backend_transport_options,
            "socket_connect_timeout": 0.25,
            "retry_policy": {"max_retries": 0},
        }
        _publishers[redis_url] = app
    return _publishers[redis_url]


class Evaluator(Protocol):
    def run(self, inputs: ClinicalInput, now: datetime, timeout_s: float) -> Outcome: ...


class InlineEvaluator:
    """The embedded mode: evaluation in the web process, no broker needed."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge

    def run(self, inputs: ClinicalInput, now: datetime, timeout_s: float) -> Outcome:
        return Outcome(evaluate(inputs, now, self.knowledge), "inline")


class WorkerEvaluator:
    """Evaluation on a Celery worker, waited for under the call's deadline.

    - run-ahead cache: the evaluation is kept in Redis for a short time under a key made of the patient
      and a hash of the exact inputs, so order-sign after order-select (or encounter-start after
      patient-view) does not repeat the work; different inputs never share a key;
    - broker unreachable, or no answer in time: evaluate inline (HOFHIR_DEADLINE_FALLBACK=inline, the
      default) or answer no cards ("empty"); either way the fallback is counted.
    """

    def __init__(self, settings: Settings, knowledge: Knowledge, store: Store) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.store = store
        self.cache_ttl_s = settings.run_ahead_ttl_s
        self.broker_down_until = 0.0
        self.celery = publisher(settings)
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        redis_url = str(settings.redis_url)
        self.probe = redis.Redis.from_url(
            redis_url, socket_timeout=0.25, socket_connect_timeout=0.25, retry=Retry(NoBackoff(), 0)
        )

    def cache_key(self, inputs: ClinicalInput, now: datetime) -> str:
        """Patient + hash of what the rules see; hooks that answer alike share a key. The date is part
        of the key because windows count days: a cached answer never outlives its day."""
        body = inputs.as_dict()
        family = "chart" if inputs.hook in ("patient-view", "encounter-start") else inputs.hook
        if inputs.hook in ("order-select", "order-sign"):
            family = "orders"
            # What the order rules read: the drafts they judge, and the whole session beside them (an NSAID
            # drafted beside a THA counts even when not selected). order-sign after an order-select of
            # every draft has the same key.
            body["draftOrders"] = relevant_drafts(inputs)
            body["sessionDrafts"] = active_drafts(inputs)
        body["hook"] = family
        body["context"] = {"patientId": inputs.context.get("patientId")}
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return f"runahead:{inputs.context.get('patientId')}:{now.date().isoformat()}:{digest}"

    def run(self, inputs: ClinicalInput, now: datetime, timeout_s: float) -> Outcome:
        from hofhir.adapters import metrics

        key = self.cache_key(inputs, now)
        try:
            cached = self.store.get(key)
        except Exception:
            cached = None
        if cached:
            evaluation = Evaluation.from_dict(orjson.loads(cached))
            evaluation.hook = inputs.hook
            return Outcome(evaluation, "cache")
        if time.monotonic() < self.broker_down_until:
            metrics.INLINE_FALLBACKS.labels(reason="broker-unavailable").inc()
            if self.settings.deadline_fallback != "inline":
                return Outcome(None, "worker-missed")
            return Outcome(evaluate(inputs, now, self.knowledge), "worker-fallback-inline")
        try:
            self.probe.ping()  # a stopped broker is found in a quarter second, not after kombu's retries
            result = self.celery.send_task(
                "hofhir.evaluate", args=[inputs.as_dict(), now.isoformat()], expires=max(1.0, timeout_s), retry=False
            )
            data = result.get(timeout=max(0.01, timeout_s), propagate=True)
            result.forget()
            evaluation = Evaluation.from_dict(data)
            path = "worker"
        except Exception as exc:
            reason = "timeout" if isinstance(exc, ResultTimeout) else "broker-unavailable"
            if reason == "broker-unavailable":
                self.broker_down_until = time.monotonic() + 5.0
            metrics.INLINE_FALLBACKS.labels(
                reason=reason if self.settings.deadline_fallback == "inline" else f"{reason}-empty"
            ).inc()
            log.warning("worker evaluation failed (%s); %s", type(exc).__name__, self.settings.deadline_fallback)
            if self.settings.deadline_fallback != "inline":
                return Outcome(None, "worker-missed")
            evaluation = evaluate(inputs, now, self.knowledge)
            path = "worker-fallback-inline"
        try:
            self.store.put(key, orjson.dumps(evaluation.as_dict()).decode(), self.cache_ttl_s)
        except Exception:
            log.warning("run-ahead cache unavailable")
        return Outcome(evaluation, path)
