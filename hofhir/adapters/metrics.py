"""Prometheus metrics for the service, correct under gunicorn's several worker processes.

Each process counts into its own metric objects below. Under gunicorn (see ``cds_hooks.gunicorn_conf``)
``PROMETHEUS_MULTIPROC_DIR`` is set before any worker starts, so prometheus_client keeps every value in
a per-process file there, and :func:`render_metrics` adds the files of all processes together (live
and exited: a counter never goes backwards because a worker was recycled). Without that variable (one
process: ``hofhir serve``, tests) it reports the default registry of this process.

Names are ``hofhir_*``; label values must come from small fixed sets (service ids, hook names, card
topics, outcome words), never from request data, or every new value becomes a new time series.

This module imports neither Flask nor anything of ours, so any process (web, worker) may use it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)

# prometheus_client writes a file per process there from the first metric on and fails if the folder is
# missing; gunicorn_conf creates it, but a process started otherwise (a probe, a shell) may come first.
if _dir := os.environ.get(MULTIPROC_ENV):
    os.makedirs(_dir, exist_ok=True)

# prometheus_client leaves these two untyped; bound to typed names here so strict mypy accepts the calls.
_multiprocess_collector: Callable[[CollectorRegistry], object] = multiprocess.MultiProcessCollector
_mark_process_dead: Callable[[int], None] = multiprocess.mark_process_dead

# A hook answer has a budget "on the order of 500 ms" (CDS Hooks); resolution is finest around it.
HOOK_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 2.0, 5.0)
# Tasks range from an evaluation (milliseconds) to a FHIR fetch + write-back with retries (seconds).
TASK_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

HTTP_REQUESTS = Counter(
    "hofhir_http_requests",
    "HTTP requests answered, by service (CDS service id or endpoint name) and HTTP status code.",
    ["service", "status"],
)
HOOK_LATENCY = Histogram(
    "hofhir_hook_latency_seconds",
    "Time from receiving a hook call to sending its answer, by hook.",
    ["hook"],
    buckets=HOOK_LATENCY_BUCKETS,
)
DEADLINE_MISSES = Counter(
    "hofhir_deadline_misses",
    "Hook calls answered with no cards because the deadline passed, by CDS service id.",
    ["service"],
)
INLINE_FALLBACKS = Counter(
    "hofhir_inline_fallbacks",
    "Evaluations run inside the web process instead of on a worker, by reason.",
    ["reason"],
)
CARDS = Counter(
    "hofhir_cards",
    "Cards returned, by card topic code and indicator (info, warning, critical).",
    ["topic", "indicator"],
)
FEEDBACK = Counter(
    "hofhir_feedback",
    "Card feedback received, by card topic, outcome (accepted, overridden) and override reason code.",
    ["topic", "outcome", "reason"],
)
NOTIFICATIONS = Counter(
    "hofhir_notifications",
    "FHIR Subscription notifications received, by kind (handshake, heartbeat, event, duplicate...).",
    ["kind"],
)
WRITEBACKS = Counter(
    "hofhir_writeback",
    "Write-backs of results to the FHIR server, by result (created, updated, unchanged, failed...).",
    ["result"],
)
# Whoever reads the dead-letter list's length sets this; every process sees the same list, so the
# most recently written value (from whichever process) is the truth, not a sum over processes.
DEAD_LETTER_SIZE = Gauge(
    "hofhir_dead_letter_size",
    "Tasks in the dead-letter list (failed for good, waiting for an operator).",
    multiprocess_mode="mostrecent",
)
TASK_DURATION = Histogram(
    "hofhir_task_duration_seconds",
    "Worker task run time, by task name.",
    ["task"],
    buckets=TASK_DURATION_BUCKETS,
)
# Constant 1, labelled with what is deployed: lets an operator see a rollout land and which knowledge
# base answers. Every process sets the same labels, so "max" across processes is that one series.
BUILD_INFO = Gauge(
    "hofhir_build_info",
    "The running hofhir version and knowledge base version (value is always 1).",
    ["version", "knowledge_version"],
    multiprocess_mode="max",
)


M = TypeVar("M", bound=MetricWrapperBase)
_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}


def child(metric: M, *values: str) -> M:
    """`metric.labels(*values)`, looked up once per process: the label values come from small fixed sets, and
    `labels()` checks and converts them and takes the metric's lock on every call."""
    key = (metric, values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found  # type: ignore[return-value]


_before_render: list[Callable[[], None]] = []


def before_render(refresh: Callable[[], None]) -> None:
    """Run ``refresh`` at every scrape, before rendering: for values read from outside the process,
    e.g. ``before_render(lambda: DEAD_LETTER_SIZE.set(store.length(DEAD_LETTER_KEY)))``.

    A refresh that fails (Redis unreachable) is logged and skipped: the scrape still answers, with
    the last value that was read.
    """
    _before_render.append(refresh)


def set_build_info(version: str, knowledge_version: str) -> None:
    """Record what this process runs (call once at start)."""
    BUILD_INFO.labels(version=version, knowledge_version=knowledge_version).set(1)


def multiprocess_dir() -> str | None:
    """The folder of per-process metric files, or None when this process reports alone."""
    return os.environ.get(MULTIPROC_ENV) or None


def _registry() -> CollectorRegistry:
    if multiprocess_dir() is None:
        return REGISTRY
    # A fresh registry per scrape: the collector reads all processes' files each time it is collected.
    registry = CollectorRegistry()
    _multiprocess_collector(registry)
    return registry


def render_metrics(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition body and its content type, summed over all processes when in multiprocess mode.

    ``accept`` is the scraper's Accept header; without it the classic text format is used.
    """
    for refresh in _before_render:
        try:
            refresh()
        except Exception:  # a metric source must never break the scrape
            log.warning("metrics refresh %r failed", refresh, exc_info=True)
    registry = _registry()
    if accept:
        encoder: Callable[[CollectorRegistry], bytes]
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop an exited process's live-gauge files (gunicorn's ``child_exit`` hook calls this)."""
    if multiprocess_dir() is not None:
        _mark_process_dead(pid)


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        body, content_type = render_metrics(self.headers.get("Accept"))
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every few seconds would drown the structured logs; say nothing."""


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104
    """Serve ``GET /metrics`` from a daemon thread, for processes without a web app (the worker).

    Returns the server so a caller (or a test) can ``shutdown()`` it; port 0 picks a free port.
    """
    server = ThreadingHTTPServer((addr, port), _MetricsHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="hofhir-metrics", daemon=True).start()
    return server
