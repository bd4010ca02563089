"""One JSON line per request (and per task): ids, counts and timings; never PHI, tokens or JWTs."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from hofhir.adapters.jsonlog import JsonFormatter

_configured = False


def configure(level: str = "INFO") -> None:
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs full URLs, which can name a patient
    for name in ("hofhir", "cds_hooks", "celery"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    _configured = True


def event(logger: logging.Logger, message: str, **fields: Any) -> None:
    logger.info(message, extra={"fields": fields})


_request_log = logging.getLogger("hofhir.request")
_FIELD_NAMES = {"service_id": "service", "hook_instance": "hookInstance"}


def request_line(request: Any, response: Any, g: Any) -> None:
    """The per-request line. Only ids and numbers: the path names a service, never a patient."""
    if not _request_log.isEnabledFor(logging.INFO):
        return
    started = g.get("started")
    fields: dict[str, Any] = {
        "requestId": g.get("request_id"),
        "method": request.method,
        "endpoint": request.url_rule.rule if request.url_rule else "unmatched",
        "status": response.status_code,
        "ms": round((time.perf_counter() - started) * 1000, 2) if started is not None else 0.0,
    }
    for key in ("service_id", "hook_instance", "cards", "path", "timings", "resources"):
        value = g.get(key)
        if value is not None:
            fields[_FIELD_NAMES.get(key, key)] = value
    # A record made directly: logger.info would also look up the calling frame's file and line on every
    # request, which the JSON line never shows.
    _request_log.handle(
        _request_log.makeRecord(
            _request_log.name, logging.INFO, __file__, 0, "request", (), None, extra={"fields": fields}
        )
    )
