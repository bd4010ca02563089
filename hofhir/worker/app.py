"""The Celery app: Redis broker and result backend, settings chosen on purpose, heartbeat files, probes.

Settings (environment): HOFHIR_REDIS_URL (broker and results), or HOFHIR_BROKER_URL and
HOFHIR_RESULT_BACKEND separately; HOFHIR_WORKER_HEARTBEAT_DIR (default /tmp/hofhir);
HOFHIR_TASK_TIME_LIMIT_S (default 120); HOFHIR_MAX_DELIVERIES (default 3);
HOFHIR_SOFT_SHUTDOWN_S (default 25: below Kubernetes' 30 s grace).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from celery import Celery, bootsteps, signals

QUEUE = "hofhir"
DEAD_LETTER_KEY = "dead-letter"


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, str(default)))
    except ValueError:
        return default


def heartbeat_dir() -> Path:
    return Path(os.environ.get("HOFHIR_WORKER_HEARTBEAT_DIR", "/tmp/hofhir"))  # noqa: S108 - an emptyDir in k8s


def make_celery(redis_url: str | None = None) -> Celery:
    """The Celery app; the web tier makes one per configured Redis, the worker uses `celery_app`."""
    redis_url = redis_url or os.environ.get("HOFHIR_REDIS_URL") or None
    broker = os.environ.get("HOFHIR_BROKER_URL") or redis_url
    backend = os.environ.get("HOFHIR_RESULT_BACKEND") or redis_url
    time_limit = _env_int("HOFHIR_TASK_TIME_LIMIT_S", 120)
    app = Celery("hofhir", broker=broker, backend=backend, include=["hofhir.worker.tasks"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        # A task is acknowledged after it ran, and given back when its worker dies mid-task, so a
        # killed worker's task is finished by another (at least once; tasks are idempotent and the
        # delivery cap in tasks.py ends a task that keeps killing workers in the dead-letter list).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker holds only the task it runs: nothing waits behind a slow one
        task_time_limit=time_limit,
        task_soft_time_limit=max(1, int(time_limit * 0.9)),
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
        result_expires=600,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_track_started=False,
        worker_send_task_events=False,
        # SIGTERM (remapped to SIGQUIT by `hofhir worker`) starts a soft shutdown: running tasks get this
        # long to finish, then the worker stops cold and the unfinished tasks go back to the queue.
        worker_soft_shutdown_timeout=float(_env_int("HOFHIR_SOFT_SHUTDOWN_S", 25)),
        worker_enable_soft_shutdown_on_idle=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
    )
    app.steps["worker"].add(Heartbeat)
    return app


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
def _ready(**_: Any) -> None:
    folder = heartbeat_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ready").write_text(str(time.time()))


_task_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _task_started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_postrun(task_id: str | None = None, task: Any = None, retval: Any = None, **_: Any) -> None:
    started = _task_started.pop(task_id or "", None)
    if started is not None and task is not None:
        from hofhir.adapters import metrics

        metrics.TASK_DURATION.labels(task=str(task.name)).observe(time.perf_counter() - started)
        # The per-task line, like the web's per-request line: ids, counts and timings only (never PHI).
        fields: dict[str, Any] = {
            "taskId": task_id,
            "task": str(task.name),
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if isinstance(retval, dict) and isinstance(retval.get("guidance"), list):
            fields["cards"] = len(retval["guidance"])
        logging.getLogger("hofhir.task").info("task", extra={"fields": fields})


@signals.setup_logging.connect
def _json_logging(loglevel: Any = None, **_: Any) -> None:
    """With a receiver here Celery sets up no logging of its own: every worker line is JSON instead."""
    from hofhir.adapters.jsonlog import configure_root

    configure_root(loglevel or os.environ.get("HOFHIR_LOG_LEVEL", "INFO"))


@signals.worker_process_shutdown.connect
def _child_exit(pid: int | None = None, **_: Any) -> None:
    from hofhir.adapters import metrics

    metrics.mark_process_dead(pid or os.getpid())


def quiet_phi_logging() -> None:
    """Celery logs a task's return value when it succeeds, and httpx logs every URL it calls: both can
    carry patient ids or card texts. Keep task ids and timings, drop the values."""
    import logging

    from celery.app import trace

    trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


quiet_phi_logging()
celery_app = make_celery()
_lock = threading.Lock()


def run_worker(extra: list[str]) -> int:
    """`hofhir worker`: a Celery worker on the hofhir queue (needs HOFHIR_REDIS_URL)."""
    if not celery_app.conf.broker_url:
        import sys

        sys.stderr.write(
            "hofhir worker: set HOFHIR_REDIS_URL (or HOFHIR_BROKER_URL); the embedded mode needs no worker\n"
        )
        return 2
    # Kubernetes and most supervisors stop with SIGTERM; Celery's soft shutdown listens on SIGQUIT.
    os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    # Only now (billiard reads REMAP_SIGTERM when imported): JSON logging from the first line (Celery warns
    # early), and Celery's shutdown notices, which bypass logging, as JSON lines too.
    import celery.apps.worker

    from hofhir.adapters.jsonlog import configure_root, say_json

    configure_root(os.environ.get("HOFHIR_LOG_LEVEL", "INFO"))
    celery.apps.worker.safe_say = say_json
    metrics_port = os.environ.get("HOFHIR_WORKER_METRICS_PORT")
    if metrics_port:
        # Task metrics are counted in the pool's child processes: collect them through files, served here.
        folder = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/hofhir-worker-metrics"))  # noqa: S108
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        from hofhir.adapters import metrics

        metrics.start_metrics_server(int(metrics_port))
    concurrency = os.environ.get("HOFHIR_WORKER_CONCURRENCY", "2")
    argv = [
        "--quiet",  # no ASCII-art banner on stdout: the worker's output is JSON log lines only
        "worker",
        "-Q",
        QUEUE,
        "--loglevel",
        os.environ.get("HOFHIR_LOG_LEVEL", "INFO"),
        "--concurrency",
        concurrency,
        *extra,
    ]
    celery_app.worker_main(argv)
    return 0


def probe(ready: bool = False, max_age: float = 60.0) -> int:
    """Exit code for a Kubernetes exec probe: 0 when the heartbeat is fresh (and the worker ready)."""
    folder = heartbeat_dir()
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
