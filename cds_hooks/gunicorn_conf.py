"""gunicorn settings for the web process: ``gunicorn -c python:cds_hooks.gunicorn_conf`` (or this file's path).

Everything an operator may tune comes from the environment (read into the one `Settings`; a bad value exits 2
with one line), so the container image needs no other file:

    HOFHIR_BIND                   listen address                       0.0.0.0:8080
    HOFHIR_WEB_WORKERS            worker processes                     2
    HOFHIR_WEB_THREADS            threads per worker (gthread)         4
    HOFHIR_WEB_TIMEOUT            seconds a silent worker lives        30
    HOFHIR_WEB_GRACEFUL_TIMEOUT   seconds to finish requests on TERM   20
    HOFHIR_WEB_KEEPALIVE          idle keep-alive seconds              75
    HOFHIR_WEB_MAX_REQUESTS       recycle a worker after N requests    0 (never)
    HOFHIR_LOG_LEVEL              gunicorn's own log level             info
    PROMETHEUS_MULTIPROC_DIR      per-process metric files             /tmp/hofhir-metrics

Threads, not more processes: a hook call mostly waits (on a worker's result, on the FHIR server), and
each process holds its own copy of the knowledge base.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hofhir.adapters.settings import Settings, SettingsError

DEFAULT_MULTIPROC_DIR = "/tmp/hofhir-metrics"  # noqa: S108 - /tmp is the pod's own emptyDir

try:
    _settings = Settings.from_env()
except SettingsError as _exc:
    sys.stderr.write(f"hofhir: {_exc}\n")
    sys.exit(2)

# Set before any worker is forked, so every worker's prometheus_client starts in multiprocess mode.
multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or DEFAULT_MULTIPROC_DIR
os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir

wsgi_app = "cds_hooks.app:create_app()"
# A container listens on all its interfaces; the pod IP is the only one reachable from outside.
bind = [_settings.bind]
workers = _settings.web_workers
worker_class = "gthread"
threads = _settings.web_threads
# The arbiter kills a worker silent for this long; gthread workers beat from their main loop, so a slow
# request alone does not trip it, a wedged process does.
timeout = _settings.web_timeout
# On SIGTERM: stop accepting, let in-flight requests finish for this long, then kill. The pod's
# terminationGracePeriodSeconds must exceed preStop sleep + this (k8s/base checks it in the tests).
graceful_timeout = _settings.web_graceful_timeout
# Longer than the ingress controller's upstream keep-alive (nginx: 60 s), so gunicorn never closes a
# connection the proxy is about to reuse (which shows as sporadic 502s).
keepalive = _settings.web_keepalive
max_requests = _settings.web_max_requests
max_requests_jitter = max_requests // 10
# Worker heartbeat files on tmpfs: /tmp may be disk-backed, and a slow disk then looks like a hang.
worker_tmp_dir = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # noqa: S108
proc_name = "hofhir-web"
loglevel = _settings.log_level.lower()
errorlog = "-"
accesslog = None  # the app logs one structured line per call; a second access line would only duplicate
# gunicorn >= 25 opens a control socket under $HOME; the root filesystem is read-only and nobody uses it.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Master start: check the settings (one line and exit 2 when wrong, before any worker boots), then
    begin with no metric files, so nothing of an earlier run is counted again."""
    from cds_hooks.auth import auth_settings

    try:
        auth_settings(_settings)
    except ValueError as exc:
        sys.stderr.write(f"hofhir: {exc}\n")
        sys.exit(2)
    folder = Path(multiproc_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its counters stay (they were counted), its live gauges go."""
    # Imported here so the master itself never creates metric files.
    from hofhir.adapters.metrics import mark_process_dead

    mark_process_dead(worker.pid)
