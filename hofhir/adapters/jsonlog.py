"""JSON log lines, one formatter for the web (cds_hooks.logs configures its loggers with it) and the worker.

One object per line: ts, level, logger, msg, and the record's `fields` (ids, counts, timings; never PHI).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def _timestamp(created: float, msecs: float) -> str:
    global _second
    whole = int(created)
    second, text = _second
    if whole != second:  # lines come many a second: the date and time are formatted once per second
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, text)
    return f"{text}.{int(msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return orjson.dumps(line, default=str).decode()


def configure_root(level: str | int = "INFO") -> None:
    """Every logger of the process (Celery's, kombu's, ours) writes JSON lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else str(level).upper())
    logging.captureWarnings(True)  # Python warnings (Celery's SecurityWarning as root...) as JSON lines too
    for name in ("hofhir", "cds_hooks", "celery"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def say_json(msg: str, f: Any = None) -> None:
    """Stands in for celery.apps.worker.safe_say (shutdown notices written straight to the terminal):
    the same notice as one JSON line, written with one os.write as Celery's own (safe in a signal handler)."""
    import os

    record = logging.LogRecord("celery.worker", logging.WARNING, __file__, 0, msg.strip(), None, None)
    os.write(2, (JsonFormatter().format(record) + "\n").encode())
