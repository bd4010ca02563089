"""One typed Settings for the web service, the worker and the CLI, from the HOFHIR_* environment variables.

Parsed once, at an entrypoint (`cds_hooks.app.create_app`, `hofhir worker`, the `hofhir` CLI), and passed
down; nothing below the entrypoints reads the environment. A bad value raises :class:`SettingsError`, whose
message is one line naming the variable to set; the entrypoints print it and exit with code 2.

Every variable is listed, with its default, in the README's Settings table (a test checks that).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hofhir.adapters import PREFIX, SettingsError

__all__ = ["PREFIX", "Settings", "SettingsError"]
DEFAULT_SMART_SCOPE = "system/*.read system/RiskAssessment.write system/DetectedIssue.write"
ON = frozenset({"on"})
OFF = frozenset({"off"})


def _switch(value: object) -> object:
    """`on`/`off` switches (any case); a Python bool passes through (tests build Settings directly)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ON:
            return True
        if text in OFF:
            return False
        raise ValueError(f"must be 'on' or 'off', not {value!r}")
    return value


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def read_issuers(text: str) -> dict[str, Any]:
    """HOFHIR_AUTH_ISSUERS: JSON, or `@/path/to/file.json`; an object of issuer -> key source."""
    text = text.strip()
    if not text:
        return {}
    source = f"{PREFIX}AUTH_ISSUERS"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {source}: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{source} must be a JSON object of issuer -> key source")
    return raw  # each issuer's entry is checked where the verifier is built (cds_hooks.auth)


class Settings(BaseSettings):
    """Every HOFHIR_* setting. Field `x` is read from `HOFHIR_X`."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, frozen=True, extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    # --- where it listens and what it talks to
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    redis_url: str | None = None  # None: embedded mode (in-process evaluation, in-memory stores)
    broker_url: str | None = None  # default: redis_url
    result_backend: str | None = None  # default: redis_url
    public_url: str | None = None
    knowledge: str | None = None  # a folder with an edited copy of the knowledge files
    log_level: str = "INFO"

    # --- gunicorn (cds_hooks/gunicorn_conf.py): a container listens on all its interfaces
    bind: str = "0.0.0.0:8080"
    web_workers: int = Field(2, ge=1)
    web_threads: int = Field(4, ge=1)
    web_timeout: int = Field(30, ge=1)
    web_graceful_timeout: int = Field(20, ge=0)
    web_keepalive: int = Field(75, ge=0)
    web_max_requests: int = Field(0, ge=0)

    # --- authentication of CDS clients (checked further when the web service builds its verifier)
    auth: bool = True
    auth_issuers: Annotated[dict[str, Any], NoDecode] = Field(default_factory=dict)
    auth_algorithms: Annotated[tuple[str, ...], NoDecode] = ("ES384", "RS384")
    auth_leeway_seconds: int = 30
    auth_max_token_lifetime_seconds: int = 3600
    auth_allow_http_localhost: bool = False
    replay_db: str | None = None  # embedded mode: SQLite file shared by the processes of one host

    # --- the hook call
    deadline_ms: int = Field(350, ge=1)  # the whole hook call; the spec asks for "on the order of 500 ms"
    fetch_timeout_ms: int = Field(250, ge=1)  # one FHIR fetch attempt when prefetch is absent
    deadline_fallback: Literal["inline", "empty"] = "inline"  # past the worker wait: inline evaluation or no cards
    run_ahead_ttl_s: int = Field(120, ge=0)
    # Embedded mode: entries the in-process store keeps (replayed JWT ids, notification de-duplication) before
    # the least recently used goes; ~400 bytes an entry (benchmarks/store.py), so about 80 MB when full.
    store_max_entries: int = Field(200_000, ge=1000)
    # Redis mode: fewer relevant resources + draft orders than this are evaluated inline (cds_hooks/dispatch.py)
    worker_min_resources: int = Field(5000, ge=0)
    dispatch_threads: int = Field(16, ge=1)  # per web process: hook calls waiting on Redis/a worker at once
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)
    card_index_ttl_s: int = Field(7 * 24 * 3600, ge=1)  # how long feedback can still name a card's uuid (to the minute)
    notification_secret: str | None = None
    # --- limits and the fhirServer allowlist (issue 10)
    max_prefetch_entries: int = Field(10_000, ge=1)  # prefetch + draft-order resources per hook call (413 past it)
    # fhirServer base URLs hofhir may fetch from for callers whose issuer has no `fhir_servers` list
    fhir_servers: Annotated[tuple[str, ...], NoDecode] = ()
    max_notification_entries: int = Field(100, ge=1)  # Bundle entries per notification (413 past it)
    notification_dedup_s: int = Field(60, ge=1)  # bodiless PUT notifications of one resource count once per bucket

    # --- the FHIR server Subscription work reads from and writes to
    fhir_base_url: str | None = None
    fhir_token: str | None = None
    fhir_token_url: str | None = None
    fhir_client_id: str | None = None
    fhir_private_key_file: str | None = None
    fhir_key_id: str = "hofhir"
    fhir_key_alg: Literal["RS384", "ES384"] = "RS384"
    fhir_scope: str = DEFAULT_SMART_SCOPE
    fhir_timeout_s: float = Field(10.0, gt=0)

    # --- the worker
    worker_concurrency: int = Field(2, ge=1)
    worker_role: Literal["all", "evaluate", "writeback"] = "all"  # which queues, on processes or threads
    writeback_concurrency: int = Field(16, ge=1)  # threads of a `writeback` worker (the work waits on I/O)
    task_time_limit_s: int = Field(120, ge=1)
    max_deliveries: int = Field(3, ge=0)  # 0: every delivery is one too many (tests)
    soft_shutdown_s: int = Field(25, ge=0)
    shutdown_grace_s: int = Field(5, ge=0)  # after the soft shutdown the worker exits anyway (broker hung or gone)
    worker_heartbeat_dir: str = "/tmp/hofhir"  # noqa: S108 - an emptyDir in Kubernetes
    worker_metrics_port: int | None = None

    @field_validator("auth", "auth_allow_http_localhost", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        return _switch(value)

    @field_validator("auth_issuers", mode="before")
    @classmethod
    def _issuers(cls, value: object) -> object:
        return read_issuers(value) if isinstance(value, str) else value

    @field_validator("auth_algorithms", mode="before")
    @classmethod
    def _algorithms(cls, value: object) -> object:
        listed = _comma_list(value)
        return tuple(a.upper() for a in listed) if isinstance(listed, tuple) else listed

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        listed = _comma_list(value)
        return listed or ("*",)

    @field_validator("fhir_servers", mode="before")
    @classmethod
    def _servers(cls, value: object) -> object:
        return _comma_list(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "redis_url",
        "broker_url",
        "result_backend",
        "public_url",
        "knowledge",
        "notification_secret",
        "fhir_base_url",
        "fhir_token",
        "fhir_token_url",
        "fhir_client_id",
        "fhir_private_key_file",
        "replay_db",
        "worker_metrics_port",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # --- derived values

    @property
    def broker(self) -> str | None:
        return self.broker_url or self.redis_url

    @property
    def backend(self) -> str | None:
        return self.result_backend or self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default: the process environment). Raises SettingsError (one line)."""
        if environ is None:
            try:
                return cls()
            except ValidationError as exc:
                raise SettingsError(_one_line(exc)) from None
        values = {
            name: environ[key]
            for name in cls.model_fields
            if (key := PREFIX + name.upper()) in environ and environ[key] != ""
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(_one_line(exc)) from None


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def _one_line(exc: ValidationError) -> str:
    """The first problem, as `HOFHIR_X must be ..., not 'abc'`: a variable to set, not a traceback."""
    error = exc.errors(include_url=False)[0]
    name = env_name(str(error["loc"][0])) if error["loc"] else "a HOFHIR_ setting"
    kind, value = error["type"], error.get("input")
    if kind in ("int_parsing", "int_from_float"):
        return f"{name} must be a whole number, not {value!r}"
    if kind == "float_parsing":
        return f"{name} must be a number, not {value!r}"
    if kind == "bool_parsing":
        return f"{name} must be 'on' or 'off', not {value!r}"
    if kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected", "")
        return f"{name} must be {expected}, not {value!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        if message.startswith(PREFIX):
            return message
        return f"{name} {message}" if message.startswith("must") else f"{name}: {message}"
    return f"{name} {message.removeprefix('Input ').lower()}, not {value!r}"
