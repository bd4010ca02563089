"""Service settings, all from HOFHIR_* environment variables (listed with defaults in the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() not in ("0", "off", "false", "no")


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None  # None: embedded mode (in-process evaluation, in-memory stores)
    auth: bool = True
    deadline_ms: int = 350  # the whole hook call; the spec asks for "on the order of 500 ms"
    fetch_timeout_ms: int = 250  # one FHIR fetch attempt when prefetch is absent
    max_body_bytes: int = 16 * 1024 * 1024
    cors_origins: tuple[str, ...] = ("*",)
    public_url: str | None = None
    deadline_fallback: str = "inline"  # past the worker wait: "inline" evaluation or "empty" cards
    notification_secret: str | None = None
    card_index_ttl_s: int = 7 * 24 * 3600  # how long feedback can still name a card's uuid
    log_level: str = "INFO"
    # ROBUST (issue 10): limits and the fhirServer allowlist.
    max_prefetch_entries: int = 10_000  # prefetch + draft-order resources per hook call (413 past it)
    fhir_servers: tuple[str, ...] = ()  # fhirServer base URLs trusted for callers whose issuer has no list
    max_notification_entries: int = 100  # Bundle entries per notification (413 past it)
    notification_dedup_s: int = 60  # bodiless PUT notifications of one resource within this bucket count once

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        origins = tuple(o.strip() for o in env.get("HOFHIR_CORS_ORIGINS", "*").split(",") if o.strip())
        fallback = env.get("HOFHIR_DEADLINE_FALLBACK", "inline").strip().lower()
        if fallback not in ("inline", "empty"):
            raise ValueError("HOFHIR_DEADLINE_FALLBACK must be 'inline' or 'empty'")
        return cls(
            redis_url=env.get("HOFHIR_REDIS_URL") or None,
            auth=_flag(env.get("HOFHIR_AUTH"), True),
            deadline_ms=int(env.get("HOFHIR_DEADLINE_MS", "350")),
            fetch_timeout_ms=int(env.get("HOFHIR_FETCH_TIMEOUT_MS", "250")),
            max_body_bytes=int(env.get("HOFHIR_MAX_BODY_BYTES", str(16 * 1024 * 1024))),
            cors_origins=origins or ("*",),
            public_url=env.get("HOFHIR_PUBLIC_URL") or None,
            deadline_fallback=fallback,
            notification_secret=env.get("HOFHIR_NOTIFICATION_SECRET") or None,
            log_level=env.get("HOFHIR_LOG_LEVEL", "INFO").upper(),
            max_prefetch_entries=int(env.get("HOFHIR_MAX_PREFETCH_ENTRIES", "10000")),
            fhir_servers=tuple(u.strip() for u in env.get("HOFHIR_FHIR_SERVERS", "").split(",") if u.strip()),
            max_notification_entries=int(env.get("HOFHIR_MAX_NOTIFICATION_ENTRIES", "100")),
            notification_dedup_s=int(env.get("HOFHIR_NOTIFICATION_DEDUP_S", "60")),
        )
