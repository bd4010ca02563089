"""`hofhir serve`: the service under gunicorn (waitress where there is no fork), never the Werkzeug dev server.

The settings are checked before anything starts: a wrong or missing one ends the command with exit code 2
and one line saying what to set (no traceback). Logs are JSON lines on stderr: one per request from the
app, and gunicorn's own lines in the same shape; there is no Apache-style access line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from cds_hooks.settings import Settings
from hofhir.adapters.jsonlog import JsonFormatter

EXIT_SETTINGS = 2
MIN_THREADS = 32  # per process, for `hofhir serve` (HOFHIR_WEB_THREADS may raise it)
NO_ISSUER = (
    "hofhir: JWT authentication is on and no issuer is configured: set HOFHIR_AUTH=off for local use, "
    "or HOFHIR_AUTH_ISSUERS to trust your EHR's issuer"
)
# gunicorn settings taken from cds_hooks/gunicorn_conf.py (the container's configuration), bind aside.
FROM_CONF = (
    "worker_class",
    "threads",
    "timeout",
    "graceful_timeout",
    "keepalive",
    "max_requests",
    "max_requests_jitter",
    "worker_tmp_dir",
    "proc_name",
    "loglevel",
    "errorlog",
    "accesslog",
    "control_socket_disable",
    "on_starting",
    "child_exit",
)
log = logging.getLogger("hofhir.web")


def serve(settings: Settings, host: str | None = None, port: int | None = None, workers: int | None = None) -> int:
    """Check the settings (exit 2 with one line), then serve until stopped."""
    host, port = host or settings.host, port or settings.port
    if settings.auth and not settings.auth_issuers:
        sys.stderr.write(NO_ISSUER + "\n")
        return EXIT_SETTINGS
    if hasattr(os, "fork"):
        # First: it points prometheus_client at the per-process metric files before anything imports it,
        # so /metrics adds up every gunicorn worker's counts.
        from cds_hooks import gunicorn_conf  # noqa: F401
    try:  # every other setting is checked by building the app once, before any worker starts
        from cds_hooks.app import create_app

        create_app(settings)
    except ValueError as exc:  # SettingsError is a ValueError
        sys.stderr.write(f"hofhir: {' '.join(str(exc).split())}\n")
        return EXIT_SETTINGS
    if not hasattr(os, "fork"):
        return _waitress(settings, host, port)
    # Embedded mode keeps feedback counts and notification de-duplication in memory: one process, several threads.
    return _gunicorn(settings, host, port, workers if settings.redis_url else 1)


def _waitress(settings: Settings, host: str, port: int) -> int:
    import waitress

    from cds_hooks import gunicorn_conf
    from cds_hooks.app import create_app

    app = create_app(settings)  # first: it sets up the JSON log lines, so the next line is seen
    log.info("serving on http://%s:%d (waitress)", host, port)
    waitress.serve(app, host=host, port=port, threads=max(gunicorn_conf.threads, MIN_THREADS))
    return 0


def _gunicorn(settings: Settings, host: str, port: int, workers: int | None) -> int:
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    from cds_hooks import gunicorn_conf

    class JsonLogger(Logger):  # type: ignore[misc]
        """gunicorn's own lines (start, worker boot, shutdown) as JSON, like the app's."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in self.error_log.handlers:
                handler.setFormatter(JsonFormatter())

    class Service(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key in FROM_CONF:
                if key in self.cfg.settings and hasattr(gunicorn_conf, key):
                    self.cfg.set(key, getattr(gunicorn_conf, key))
            self.cfg.set("bind", [f"{host}:{port}"])
            self.cfg.set("workers", workers or gunicorn_conf.workers)
            # As many calls in flight as the Werkzeug server it replaces allowed in practice: a hook call mostly
            # waits (on a worker, a hung broker until its deadline, a FHIR server), so threads are cheap here.
            self.cfg.set("threads", max(gunicorn_conf.threads, MIN_THREADS))
            self.cfg.set("accesslog", None)  # the app logs one JSON line per request; no second line
            self.cfg.set("logger_class", JsonLogger)

        def load(self) -> Any:
            from cds_hooks.app import create_app

            return create_app(settings)

    Service().run()
    return 0
