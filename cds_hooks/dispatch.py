"""Where an evaluation runs: inline in the web process (embedded mode) or on a Celery worker.

Both paths run `hofhir.clinical.evaluate.evaluate` on the same filtered input, so the answer does not depend on
which one ran.

The deadline holds in Redis mode: everything that can wait on Redis (the run-ahead cache, publishing the
task, waiting for its result) runs on a small pool of dispatch threads, and the hook's own thread waits for
that work only until the deadline. Each Redis call there also carries a socket timeout cut from what is
left of the deadline, so a hung Redis (SIGSTOP, a network partition) costs the call at most its deadline,
and a dispatch thread at most about the same; then the fallback runs (inline evaluation, or no cards with
HOFHIR_DEADLINE_FALLBACK=empty).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from hofhir.adapters import metrics
from hofhir.adapters.settings import Settings
from hofhir.clinical.evaluate import Evaluation, active_drafts, evaluate, relevant_drafts
from hofhir.fhir.read import ClinicalInput
from hofhir.knowledge import Knowledge

log = logging.getLogger("hofhir.dispatch")

# Below this many input resources (relevant resources + draft orders) a request is evaluated inline even
# in Redis mode. Measured on this 2-core machine (`python benchmarks/faults.py --sizes`, alkaline
# phosphatase results, median of 7): inline evaluation of the already-validated resources costs 0.8 ms
# at 10 resources, 11 ms at 1,000, 52 ms at 5,000 (~0.01 ms each); the worker round trip (serialise,
# publish, the worker re-reads the inputs, result by pub/sub) 6 ms at 10, 35 ms at 1,000, 257 ms at
# 5,000 (~0.05 ms each). The worker is never faster for the caller: it only takes CPU off the web
# process. So only requests whose inline evaluation takes a sizeable share of the deadline (5,000
# resources: ~50 ms, a seventh of the default 350 ms) go to workers, and only while the measured worker
# cost for that size still fits in the time left (Settings.worker_min_resources, default 5,000).
# Starting estimates (seconds per resource), refined from what this process measures.
INLINE_S_PER_RESOURCE = 0.00001
WORKER_S_PER_RESOURCE = 0.00005
WORKER_FIXED_S = 0.005
# How long a broker found unreachable is skipped (calls evaluate inline at once in that time).
BROKER_BACKOFF_S = 5.0
# Passed with every task the web sends: Celery would otherwise put the repr of the arguments (a patient id, up
# to 1 KiB of the clinical inputs) in each message's headers, where the broker, events and monitoring tools
# show it; computing that repr was also about 3 % of the webhook's CPU per notification.
NO_ARGS_REPR = {"argsrepr": "(not shown: may hold PHI)", "kwargsrepr": "{}"}
# Dispatch threads per web process (Settings.dispatch_threads): the most hook calls that can wait on Redis
# at the same time. A call that finds them all busy (Redis hung, every thread waiting) falls back at once.
# Never give a Redis socket less than this (a zero timeout would mean non-blocking, None forever).
MIN_SOCKET_TIMEOUT_S = 0.005


@dataclass
class Outcome:
    evaluation: Evaluation | None  # None: no answer within the time allowed
    path: str  # "inline", "worker", "worker-polled", "worker-fallback-inline", "cache", "worker-missed"


_publishers: dict[str, Any] = {}
_publishers_lock = threading.Lock()


def publisher(settings: Settings) -> Any:
    """The Celery app the web tier sends tasks with (one per Redis URL).

    The web tier only publishes and waits; nothing it does may retry or block for longer than a hook
    call may last: publish retry off, one connection attempt (kombu's `max_retries` 0, which otherwise
    reconnects forever), socket timeouts of a quarter second on the broker and on the result backend
    (whose redis-py client takes them from `redis_socket_timeout`, not from the transport options).
    """
    redis_url = str(settings.redis_url)
    with _publishers_lock:
        if redis_url not in _publishers:
            from hofhir.worker.app import make_celery

            app = make_celery(settings)
            app.conf.broker_connection_timeout = 0.25
            app.conf.broker_connection_retry = False
            app.conf.task_publish_retry = False
            app.conf.broker_transport_options = {
                **app.conf.broker_transport_options,
                "socket_connect_timeout": 0.25,
                "socket_timeout": 0.25,
                "max_retries": 0,
                "connect_retries_timeout": 0.25,
            }
            app.conf.redis_socket_timeout = 0.25
            app.conf.redis_socket_connect_timeout = 0.25
            app.conf.redis_retry_on_timeout = False
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


def request_size(inputs: ClinicalInput) -> int:
    """What a request costs to evaluate grows with this: the relevant resources and the draft orders."""
    return len(inputs.resources) + len(inputs.draft_orders)


class WorkerEvaluator:
    """Redis mode: cheap requests inline, heavy ones on a Celery worker, waited for under the deadline.

    - by cost: a request with fewer than HOFHIR_WORKER_MIN_RESOURCES resources is evaluated inline (path
      "inline"), it touches no Redis at all; heavier ones go to a worker;
    - run-ahead cache (heavy requests): the evaluation is kept in Redis for a short time under a key made
      of the patient and a hash of the exact inputs, so order-sign after order-select (or encounter-start
      after patient-view) does not repeat the work; different inputs never share a key;
    - broker unreachable, hung, all dispatch threads busy, or no answer in time: evaluate inline
      (HOFHIR_DEADLINE_FALLBACK=inline, the default) or answer no cards ("empty"); either way the
      fallback is counted. The fallback starts early enough that an inline evaluation of the measured
      cost still fits in the deadline, never later than the deadline.
    """

    def __init__(self, settings: Settings, knowledge: Knowledge) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.cache_ttl_s = settings.run_ahead_ttl_s
        self.min_resources = settings.worker_min_resources
        in_flight = settings.dispatch_threads
        self.broker_down_until = 0.0
        self.warned: dict[str, float] = {}
        self.celery = publisher(settings)
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No client name/version handshake on connect: a connect to a hung Redis then costs nothing
        # but the TCP handshake (which the kernel answers for a stopped process), never a read.
        handshake: dict[str, Any] = {"driver_info": None}  # no CLIENT SETINFO (not in the typeshed stubs)
        self.probe = redis.Redis.from_url(
            str(settings.redis_url),
            socket_timeout=0.25,
            socket_connect_timeout=0.25,
            retry=Retry(NoBackoff(), 0),
            **handshake,
        )
        self.idle: list[Any] = []  # connected redis-py Connections for `_commands` (list.pop/append are atomic)
        self.key_prefix = "hofhir:"  # the Store's prefix: the run-ahead keys are where they always were
        self.slots = threading.BoundedSemaphore(in_flight)
        self.pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="hofhir-dispatch")
        # Seconds per resource of an inline evaluation and of a worker round trip, learnt from the calls
        # this process makes; they decide whether a worker can still answer in time, and when to stop
        # waiting for it so the fallback ends by the deadline.
        self.inline_s_per_resource = INLINE_S_PER_RESOURCE
        self.worker_s_per_resource = WORKER_S_PER_RESOURCE

    # -- cache key ---------------------------------------------------------------------------------

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

    # -- Redis calls bounded by the deadline --------------------------------------------------------

    def _commands(self, deadline: float, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Redis commands in one round trip whose socket waits at most until `deadline` (monotonic):
        connect, write and read each get the time left as their timeout. Connections come from a small
        stack of our own (redis-py's pool connects with the timeout fixed at its creation); one that
        timed out is dropped (its reply may still come), so the next call starts clean."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no time left for Redis")
        try:
            conn = self.idle.pop()
        except IndexError:
            pool = self.probe.connection_pool
            conn = pool.connection_class(**pool.connection_kwargs)
        try:
            timeout = max(MIN_SOCKET_TIMEOUT_S, deadline - time.monotonic())
            conn.socket_connect_timeout = timeout
            conn.socket_timeout = timeout
            if getattr(conn, "_sock", None) is None:
                conn.connect()
            conn.update_current_socket_timeout(max(MIN_SOCKET_TIMEOUT_S, deadline - time.monotonic()))
            conn.send_packed_command(conn.pack_commands(commands))
            replies = [conn.read_response() for _ in commands]
        except BaseException:
            conn.disconnect()
            raise
        self.idle.append(conn)
        return replies

    def _redis(self, deadline: float, *command: Any) -> Any:
        return self._commands(deadline, [command])[0]

    # -- the hook call ------------------------------------------------------------------------------

    def run(self, inputs: ClinicalInput, now: datetime, timeout_s: float) -> Outcome:
        started = time.monotonic()
        deadline = started + max(0.0, timeout_s)
        size = request_size(inputs)
        # Leave time for the fallback: stop waiting early enough that an inline evaluation of this size
        # still ends by the deadline (at most half the time is kept back for it).
        reserve = min(size * self.inline_s_per_resource, (deadline - started) / 2)
        worker_cost = WORKER_FIXED_S + size * self.worker_s_per_resource
        if size < self.min_resources or worker_cost > deadline - reserve - started:
            # cheap enough inline, or a worker could not answer in time anyway: never slower than inline
            return Outcome(self._inline(inputs, now), "inline")
        if started < self.broker_down_until:
            return self._fallback(inputs, now, "broker-unavailable")
        if not self.slots.acquire(blocking=False):
            return self._fallback(inputs, now, "dispatch-busy")
        try:
            future: Future[Outcome] = self.pool.submit(self._remote, inputs, now, deadline)
        except RuntimeError:  # the pool is shut down (interpreter exit)
            self.slots.release()
            return self._fallback(inputs, now, "dispatch-busy")
        future.add_done_callback(lambda _: self.slots.release())
        try:
            outcome = future.result(timeout=max(0.0, deadline - reserve - time.monotonic()))
            if outcome.path == "worker" and size >= 100:
                took = (time.monotonic() - started - WORKER_FIXED_S) / size
                self.worker_s_per_resource = 0.8 * self.worker_s_per_resource + 0.2 * max(0.0, took)
            return outcome
        except FutureTimeout:
            reason = "timeout"
        except BrokerUnavailable:
            reason = "broker-unavailable"
        except WorkerMissed:
            reason = "timeout"
        except Exception as exc:  # anything the Celery/Redis stack raised: fall back, never a 500
            log.warning("worker evaluation failed (%s)", type(exc).__name__)
            reason = "broker-unavailable"
        return self._fallback(inputs, now, reason)

    def _inline(self, inputs: ClinicalInput, now: datetime) -> Evaluation:
        started = time.perf_counter()
        evaluation = evaluate(inputs, now, self.knowledge)
        size = request_size(inputs)
        if size >= 100:  # small ones are dominated by fixed costs
            measured = (time.perf_counter() - started) / size
            self.inline_s_per_resource = 0.8 * self.inline_s_per_resource + 0.2 * measured
        return evaluation

    def _fallback(self, inputs: ClinicalInput, now: datetime, reason: str) -> Outcome:
        inline = self.settings.deadline_fallback == "inline"
        metrics.INLINE_FALLBACKS.labels(reason=reason if inline else f"{reason}-empty").inc()
        self._warn(reason, f"worker evaluation missed ({reason}); {self.settings.deadline_fallback}")
        if not inline:
            return Outcome(None, "worker-missed")
        return Outcome(self._inline(inputs, now), "worker-fallback-inline")

    def _warn(self, reason: str, message: str) -> None:
        """One warning per reason every few seconds: an outage at 20 calls a second would otherwise log 20
        lines a second (the fallbacks are counted in hofhir_inline_fallbacks_total)."""
        now = time.monotonic()
        if now >= self.warned.get(reason, 0.0):
            self.warned[reason] = now + BROKER_BACKOFF_S
            log.warning(message)

    def _remote(self, inputs: ClinicalInput, now: datetime, deadline: float) -> Outcome:
        """On a dispatch thread: cache, publish, wait for the worker's result; every step bounded by the
        deadline. A result that comes after the hook call gave up still goes into the run-ahead cache."""
        key = self.key_prefix + self.cache_key(inputs, now)
        try:
            # a GET answers in well under a millisecond on a healthy Redis: a quarter second is "hung"
            cached = self._redis(min(deadline, time.monotonic() + 0.25), "GET", key)
        except Exception as exc:
            self._broker_down(exc)
            raise BrokerUnavailable from exc
        if cached:
            evaluation = Evaluation.from_dict(orjson.loads(cached))
            evaluation.hook = inputs.hook
            return Outcome(evaluation, "cache")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WorkerMissed
        try:
            result = self.celery.send_task(
                "hofhir.evaluate",
                args=[inputs.as_dict(), now.isoformat()],
                # a task no worker took in time is dropped, not run for nobody (an absolute time, so the
                # worker's clock decides: kept at a few seconds for clock skew between hosts)
                expires=max(5.0, remaining),
                retry=False,
                **NO_ARGS_REPR,
            )
        except Exception as exc:
            self._broker_down(exc)
            raise BrokerUnavailable from exc
        data, path = self._wait(result, deadline)
        if data is None:
            # Not in time for this call: keep waiting a little so the run-ahead cache gets the answer.
            data, _ = self._wait(result, time.monotonic() + 1.0)
            if data is not None:
                self._remember(key, data)
            raise WorkerMissed
        self._remember(key, data)
        return Outcome(Evaluation.from_dict(data), path)

    def _wait(self, result: Any, deadline: float) -> tuple[dict[str, Any] | None, str]:
        """The worker's result, pushed by the Redis result backend (pub/sub) and read by Celery's result
        consumer with the time left (path "worker"); if the push did not arrive, one last bounded GET of
        the stored result (path "worker-polled"), so a task the worker finished is never missed."""
        from celery.exceptions import TimeoutError as CeleryTimeout

        remaining = deadline - time.monotonic()
        if remaining > 0:
            try:
                data: dict[str, Any] | None = result.get(timeout=remaining, propagate=True)
                result.forget()
                return data, "worker"
            except CeleryTimeout:
                pass
        data = self._stored_result(result)
        if data is not None:
            log.warning("worker result found by GET, not by its pub/sub message (task %s)", result.id)
        return data, "worker-polled"

    def _stored_result(self, result: Any) -> dict[str, Any] | None:
        try:
            raw = self._redis(time.monotonic() + 0.05, "GET", f"celery-task-meta-{result.id}")
        except Exception:
            return None
        if not raw:
            return None
        meta = orjson.loads(raw)
        if meta.get("status") != "SUCCESS" or not isinstance(meta.get("result"), dict):
            return None
        result.forget()
        found: dict[str, Any] = meta["result"]
        return found

    def _remember(self, key: str, data: dict[str, Any]) -> None:
        try:
            self._redis(time.monotonic() + 0.25, "SET", key, orjson.dumps(data), "EX", max(1, self.cache_ttl_s))
        except Exception:
            log.warning("run-ahead cache unavailable")

    def _broker_down(self, exc: BaseException) -> None:
        self._warn("redis", f"Redis unreachable ({type(exc).__name__}): evaluating inline for {BROKER_BACKOFF_S:.0f} s")
        self.broker_down_until = time.monotonic() + BROKER_BACKOFF_S


class BrokerUnavailable(Exception):
    """Redis refused, timed out or was not there."""


class WorkerMissed(Exception):
    """The task was published but its result did not come in time."""
