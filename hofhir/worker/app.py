"""The Celery app: Redis broker and result backend, settings chosen on purpose, heartbeat files, probes.

Configured from the one `Settings` (HOFHIR_REDIS_URL, or HOFHIR_BROKER_URL and HOFHIR_RESULT_BACKEND;
HOFHIR_WORKER_HEARTBEAT_DIR, HOFHIR_TASK_TIME_LIMIT_S, HOFHIR_MAX_DELIVERIES, HOFHIR_SOFT_SHUTDOWN_S…), parsed
once by the entrypoint that runs tasks (`hofhir worker`, or the web service in the embedded mode) and handed
to :func:`configure`; the tasks read it from :func:`context`. HOFHIR_SHUTDOWN_GRACE_S (default 5): how much
longer than the soft shutdown a stopping worker may take to close its connections before it exits anyway.

Two queues: `hofhir` (hook evaluations: CPU-bound, run on a prefork pool of processes) and
`hofhir-writeback` (Subscription write-back: I/O-bound, waiting on the FHIR server, so many run at once
on a pool of threads). HOFHIR_WORKER_ROLE picks what a `hofhir worker` consumes: `all` (default: both
queues on one prefork pool, as a single small deployment needs), `evaluate` (the `hofhir` queue,
prefork, HOFHIR_WORKER_CONCURRENCY processes) or `writeback` (the write-back queue on
HOFHIR_WRITEBACK_CONCURRENCY threads, default 16). Run one `evaluate` and one `writeback` worker for
the throughput of both. (Celery enforces task time limits on processes only: on threads a write-back
is bounded by the FHIR client's timeout per attempt, HOFHIR_FHIR_TIMEOUT_S, and its one retry.)
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from celery import Celery, bootsteps, signals

from hofhir.adapters.settings import Settings
from hofhir.adapters.store import RedisStore, Store
from hofhir.knowledge import Knowledge, knowledge_at

QUEUE = "hofhir"
WRITEBACK_QUEUE = "hofhir-writeback"
DEAD_LETTER_KEY = "dead-letter"


@dataclass(frozen=True)
class WorkerContext:
    """What the tasks run with: the settings, the one store of this process (None: no Redis, no state
    kept between tasks) and the knowledge base."""

    settings: Settings
    store: Store | None
    knowledge: Knowledge


_context: WorkerContext | None = None


def context() -> WorkerContext:
    if _context is None:
        raise RuntimeError("tasks run only after configure(settings): `hofhir worker`, or the web service")
    return _context


def configure(settings: Settings, store: Store | None = None, knowledge: Knowledge | None = None) -> WorkerContext:
    """Called once by the entrypoint that runs tasks, before any task runs (pool children inherit it)."""
    global _context
    if store is None and settings.broker and settings.broker.startswith("redis"):
        store = RedisStore.from_url(settings.broker, timeout_s=2.0)
    _context = WorkerContext(settings, store, knowledge or knowledge_at(settings.knowledge))
    _configure_celery(celery_app, settings)
    return _context


def heartbeat_dir() -> Path:
    return Path(context().settings.worker_heartbeat_dir)


def soft_time_limit_s(settings: Settings) -> int:
    """A task's soft time limit; also the deadline of a write-back's FHIR calls, which holds on any pool
    (Celery enforces its own limits only on processes)."""
    return max(1, int(settings.task_time_limit_s * 0.9))


def make_celery(settings: Settings) -> Celery:
    """A configured Celery app; the web tier makes one per configured Redis, the worker uses `celery_app`."""
    app = Celery("hofhir", include=["hofhir.worker.tasks"])
    _configure_celery(app, settings)
    return app


def _configure_celery(app: Celery, settings: Settings) -> None:
    time_limit = settings.task_time_limit_s
    app.conf.update(
        broker_url=settings.broker,
        result_backend=settings.backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        task_routes={"hofhir.assess_patient": {"queue": WRITEBACK_QUEUE}},
        # A task is acknowledged after it ran, and given back when its worker dies mid-task, so a
        # killed worker's task is finished by another (at least once; tasks are idempotent and the
        # delivery cap in tasks.py ends a task that keeps killing workers in the dead-letter list).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker holds only the task it runs: nothing waits behind a slow one
        task_time_limit=time_limit,
        task_soft_time_limit=soft_time_limit_s(settings),
        # Visibility timeout: a message not acknowledged in this time is delivered again. It must exceed
        # the longest task (time limit + retries' backoff) so a live worker's task is never run twice,
        # and stays short enough that a lost worker's task comes back within minutes.
        # kombu looks for such messages every unacked_restore_interval x unacked_restore_throttle seconds
        # (100 s by default); every 5 s keeps a lost task's delay near the visibility timeout.
        broker_transport_options={
            "visibility_timeout": time_limit * 3,
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
        },
        result_backend_transport_options={"socket_timeout": 2, "socket_connect_timeout": 2},
        # The Redis result backend's client takes its timeouts from these, not from the transport options
        # above: Celery's default is a 120 s read timeout, so a result write to a hung Redis held a
        # worker (and a web call's result wait) for as long as Redis was stopped.
        redis_socket_timeout=5.0,
        redis_socket_connect_timeout=2.0,
        result_expires=600,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_track_started=False,
        worker_send_task_events=False,
        # SIGTERM (remapped to SIGQUIT by `hofhir worker`) starts a soft shutdown: running tasks get this
        # long to finish, then the worker stops cold and the unfinished tasks go back to the queue.
        worker_soft_shutdown_timeout=float(settings.soft_shutdown_s),
        worker_enable_soft_shutdown_on_idle=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
    )
    app.steps["worker"].add(Heartbeat)


class Heartbeat(bootsteps.StartStopStep):
    """Touches <dir>/alive every few seconds from the worker's own timer (it stops if the worker hangs)
    and writes <dir>/ready once the worker consumes; `hofhir probe worker` reads them."""

    requires: ClassVar[set[str]] = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None
        self.folder = heartbeat_dir()

    def start(self, worker: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "ready").unlink(missing_ok=True)
        self.beat()
        self.tref = worker.timer.call_repeatedly(5.0, self.beat)

    def beat(self) -> None:
        (self.folder / "alive").write_text(str(time.time()))

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
        for name in ("ready", "alive"):
            (self.folder / name).unlink(missing_ok=True)


@signals.worker_ready.connect
def _ready(sender: Any = None, **_: Any) -> None:
    folder = heartbeat_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ready").write_text(str(time.time()))
    _arm_stop_signals()
    # What the banner (switched off: the output is JSON lines only) used to tell an operator.
    fields: dict[str, Any] = {}
    controller = getattr(sender, "controller", None)  # the sender is the consumer; its controller the worker
    if controller is not None:
        fields["pool"] = str(getattr(controller.pool_cls, "__module__", "")).rsplit(".", 1)[-1]
        fields["concurrency"] = controller.concurrency
    task_consumer = getattr(sender, "task_consumer", None)
    if task_consumer is not None:
        fields["queues"] = sorted(q.name for q in task_consumer.queues)
    logging.getLogger("hofhir.worker").info("worker ready", extra={"fields": fields})


_task_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _task_started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_postrun(
    task_id: str | None = None, task: Any = None, retval: Any = None, state: str | None = None, **_: Any
) -> None:
    started = _task_started.pop(task_id or "", None)
    if started is not None and task is not None:
        from hofhir.adapters import metrics

        metrics.TASK_DURATION.labels(task=str(task.name)).observe(time.perf_counter() - started)
        # The per-task line, like the web's per-request line: ids, counts and timings only (never PHI). It
        # stands for Celery's own "succeeded"/"retry" lines, which quiet_phi_logging turns off.
        fields: dict[str, Any] = {
            "taskId": task_id,
            "task": str(task.name),
            "state": state,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if isinstance(retval, dict) and isinstance(retval.get("guidance"), list):
            fields["cards"] = len(retval["guidance"])
        logging.getLogger("hofhir.task").info("task", extra={"fields": fields})


@signals.setup_logging.connect
def _json_logging(loglevel: Any = None, **_: Any) -> None:
    """With a receiver here Celery sets up no logging of its own: every worker line is JSON instead."""
    from hofhir.adapters.jsonlog import configure_root

    configure_root(loglevel or "INFO")  # Celery passes --loglevel, i.e. HOFHIR_LOG_LEVEL


_shutdown_watchdog: list[threading.Thread] = []


def _exit_in_time() -> None:
    """A bounded stop: Celery's own shutdown closes the broker connections politely, and with the broker
    hung (SIGSTOP, a partition) or gone each close, restore and reconnect waits on sockets and retries;
    a worker was still alive 85 s after SIGTERM. From the first stop signal the worker gets the soft
    shutdown time plus HOFHIR_SHUTDOWN_GRACE_S; then its pool children are killed and it exits (code 1).
    Nothing is lost: tasks are acknowledged late, so an unfinished one is delivered again (at once when
    the broker answers the soft shutdown's requeue, else after the visibility timeout)."""
    if _shutdown_watchdog:
        return
    # A stop must never fail: without a configured context (a bare Celery start) the defaults apply.
    s = _context.settings if _context is not None else None
    limit = float(s.soft_shutdown_s + s.shutdown_grace_s) if s is not None else 30.0

    def expire() -> None:
        time.sleep(limit)
        import logging
        import signal

        from billiard.process import active_children  # type: ignore[import-untyped]

        logging.getLogger("hofhir.worker").error("shutdown took over %.0f s (broker unreachable?): exiting", limit)
        for child in active_children():
            if child.pid:
                with contextlib.suppress(OSError):
                    os.kill(child.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):  # the probes must not see a worker that is gone as alive
            for name in ("ready", "alive"):
                (heartbeat_dir() / name).unlink(missing_ok=True)
        os._exit(1)

    watchdog = threading.Thread(target=expire, name="hofhir-shutdown-watchdog", daemon=True)
    _shutdown_watchdog.append(watchdog)
    watchdog.start()


@signals.worker_shutting_down.connect
def _on_shutting_down(**_: Any) -> None:
    _exit_in_time()


def _arm_stop_signals() -> None:
    """Start the shutdown watchdog on the stop signal itself: Celery announces `worker_shutting_down` only
    when the soft shutdown is over, and its handlers may be replaced while it stops."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            _exit_in_time()
            previous(signum, frame)

        signal.signal(sig, handler)


@signals.worker_process_shutdown.connect
def _child_exit(pid: int | None = None, **_: Any) -> None:
    from hofhir.adapters import metrics

    metrics.mark_process_dead(pid or os.getpid())


def quiet_phi_logging() -> None:
    """Celery's per-task INFO lines (succeeded, with the task's return value; retry) and httpx's line per
    URL can carry patient ids or card texts: both are off. The hofhir.task line says what Celery's did
    (task id, name, state, ms), and formatting them (the arguments' and the result's repr) cost a
    write-back worker about 3 % of its CPU. Failures still log at ERROR."""
    import logging

    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


@signals.worker_process_init.connect
def _freeze_after_warm_up(**_: Any) -> None:
    """A pool child starts from the warmed-up parent: move what it inherited out of the collector's way,
    so full collections do not walk the knowledge base and model classes in the middle of a task."""
    gc.collect()
    gc.freeze()


quiet_phi_logging()
celery_app = Celery("hofhir", include=["hofhir.worker.tasks"])
_lock = threading.Lock()


def run_worker(settings: Settings, extra: list[str]) -> int:
    """`hofhir worker`: a Celery worker on the hofhir queue (needs HOFHIR_REDIS_URL)."""
    if not settings.broker:
        sys.stderr.write(
            "hofhir worker: set HOFHIR_REDIS_URL (or HOFHIR_BROKER_URL); the embedded mode needs no worker\n"
        )
        return 2
    configure(settings)
    # Kubernetes and most supervisors stop with SIGTERM; Celery's soft shutdown listens on SIGQUIT.
    os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    # Only now (billiard reads REMAP_SIGTERM when imported): JSON logging from the first line (Celery warns
    # early), and Celery's shutdown notices, which bypass logging, as JSON lines too.
    import celery.apps.worker

    from hofhir.adapters.jsonlog import configure_root, say_json

    configure_root(settings.log_level)
    celery.apps.worker.safe_say = say_json
    if settings.worker_metrics_port:
        # Task metrics are counted in the pool's child processes: collect them through files, served here.
        folder = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/hofhir-worker-metrics"))  # noqa: S108
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        from hofhir.adapters import metrics

        metrics.start_metrics_server(settings.worker_metrics_port)
    # --quiet: no ASCII-art banner on stdout: the worker's output is JSON log lines only
    argv = ["--quiet", "worker", *_role_options(settings), *extra]
    _warm_up(context().knowledge)
    celery_app.worker_main(argv)
    return 0


def _role_options(settings: Settings) -> list[str]:
    """The queues, pool and concurrency of the worker's role (HOFHIR_WORKER_ROLE)."""
    level = ["--loglevel", settings.log_level]
    if settings.worker_role == "writeback":
        threads = str(settings.writeback_concurrency)
        return ["-Q", WRITEBACK_QUEUE, "--pool", "threads", "--concurrency", threads, *level]
    queues = QUEUE if settings.worker_role == "evaluate" else f"{QUEUE},{WRITEBACK_QUEUE}"
    return ["-Q", queues, "--concurrency", str(settings.worker_concurrency), *level]


def _warm_up(k: Knowledge) -> None:
    """Load the evaluation's code and model classes once in the parent, then freeze what is there, so
    pool children share it and the collector leaves it alone."""
    from hofhir.clinical.evaluate import evaluate
    from hofhir.fhir.read import from_resources

    patient = {"resourceType": "Patient", "id": "warm-up", "gender": "male", "birthDate": "1980-01-01"}
    evaluate(from_resources([patient], k.terminology, "patient-view", "warm-up"), datetime(2026, 2, 1, tzinfo=UTC), k)
    from hofhir.fhir.build import templates

    templates(k.parameters["regimens"])  # the suggested orders, validated once before the pool forks
    gc.collect()
    gc.freeze()


def probe(settings: Settings, ready: bool = False, max_age: float = 60.0) -> int:
    """Exit code for a Kubernetes exec probe: 0 when the heartbeat is fresh (and the worker ready)."""
    folder = Path(settings.worker_heartbeat_dir)
    alive = folder / "alive"
    try:
        age = time.time() - alive.stat().st_mtime
    except FileNotFoundError:
        return 1
    if age > max_age:
        return 1
    if ready and not (folder / "ready").exists():
        return 1
    return 0
