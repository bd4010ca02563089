"""The Flask app factory: the CDS Hooks 2.0 service and its operational endpoints.

gunicorn -c python:cds_hooks.gunicorn_conf                              (production: create_app())
hofhir serve [--host H] [--port P]                                       (local: gunicorn too, cds_hooks/server.py)
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from cds_hooks import feedback, health, hooks, logs, notifications, pages
from cds_hooks.auth import AuthError, ReplayStoreUnavailable, auth_settings, build_verifier
from cds_hooks.cards import new_uuid
from cds_hooks.dispatch import Evaluator, InlineEvaluator
from cds_hooks.errors import HttpError
from cds_hooks.services import catalogue
from cds_hooks.settings import Settings, SettingsError
from cds_hooks.web import ServiceState, outcome_response, state
from hofhir import __version__
from hofhir.adapters import metrics
from hofhir.adapters.store import HostOnceStore, OnceStore, Store, StoreUnavailable, open_store
from hofhir.knowledge import Knowledge, knowledge_at

log = logging.getLogger("hofhir.web")


def create_app(
    settings: Settings | None = None,
    *,
    knowledge: Knowledge | None = None,
    clock: Callable[[], datetime] | None = None,
    evaluator: Evaluator | None = None,
) -> Flask:
    """The service. `settings` default to the process environment, parsed here, once (the entrypoint);
    a bad or missing value raises SettingsError, one line that says what to set."""
    settings = settings if settings is not None else Settings.from_env()
    try:
        auth = auth_settings(settings)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    logs.configure(settings.log_level)
    k = knowledge or knowledge_at(settings.knowledge)
    # The one Redis adapter of this process (or the embedded cache). A call to it (replay check, run-ahead
    # cache) waits at most half the hook's deadline: a hung Redis costs an answer's fallback, not seconds.
    store = open_store(
        settings.redis_url,
        timeout_s=min(0.5, settings.deadline_ms / 2000),
        max_entries=settings.store_max_entries,
    )
    if evaluator is None:
        evaluator = _default_evaluator(settings, k)
    if not settings.redis_url:
        # The embedded mode runs Subscription write-back in this process: the tasks get the same settings.
        from hofhir.worker.app import configure

        configure(settings, store, k)
    app = Flask("cds_hooks")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["hofhir"] = ServiceState(
        settings=settings,
        knowledge=k,
        store=store,
        verifier=build_verifier(auth, _replay_store(settings, store) if auth.enabled else None),
        evaluator=evaluator,
        services=catalogue(k),
        clock=clock or (lambda: datetime.now(UTC)),
    )
    metrics.set_build_info(__version__, k.version)
    if settings.redis_url:
        from hofhir.worker.app import DEAD_LETTER_KEY

        def dead_letter_size() -> None:
            with contextlib.suppress(StoreUnavailable):
                metrics.DEAD_LETTER_SIZE.set(store.length(DEAD_LETTER_KEY))

        metrics.before_render(dead_letter_size)
    warm_up(k)

    app.register_blueprint(hooks.blueprint)
    app.register_blueprint(feedback.blueprint)
    app.register_blueprint(notifications.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(pages.blueprint)
    _install_handlers(app)
    # What is alive now (the knowledge, model classes, the warmed-up caches) lives as long as the process:
    # keep it out of the collector's full passes, which otherwise walk it in the middle of requests.
    gc.collect()
    gc.freeze()
    return app


def _replay_store(settings: Settings, store: Store) -> OnceStore:
    """Where JWT ids are remembered: the service's Redis, shared by every process; without Redis a SQLite
    file that every process of this host opens (gunicorn workers), so a token is accepted once per host."""
    if settings.redis_url:
        return store
    path = settings.replay_db or str(Path(tempfile.gettempdir()) / f"hofhir-replay-{os.getuid()}.sqlite")
    try:
        return HostOnceStore(path)
    except StoreUnavailable as exc:
        raise SettingsError(f"HOFHIR_REPLAY_DB: {exc} (set it to a writable file, or use HOFHIR_REDIS_URL)") from None


def warm_up(k: Knowledge) -> None:
    """Evaluate a small built-in case once, so the first EHR call does not pay for loading model classes."""
    from hofhir.clinical.evaluate import evaluate
    from hofhir.fhir.read import from_resources

    patient = {"resourceType": "Patient", "id": "warm-up", "gender": "male", "birthDate": "1980-01-01"}
    resources: list[dict[str, Any]] = [patient]
    for rtype, code in (
        ("Condition", "S24.111A"),
        ("Observation", "6768-6"),
        ("Procedure", "27130"),
        ("MedicationRequest", "1292"),
    ):
        body: dict[str, Any] = {"resourceType": rtype, "id": f"w-{rtype}", "subject": {"reference": "Patient/warm-up"}}
        concept = {"coding": [{"system": "http://loinc.org", "code": code}], "text": "baclofen"}
        if rtype == "Condition":
            body |= {"code": concept, "onsetDateTime": "2026-01-01"}
        elif rtype == "Observation":
            body |= {
                "status": "final",
                "code": concept,
                "valueQuantity": {"value": 100, "unit": "U/L"},
                "effectiveDateTime": "2026-01-02",
            }
        elif rtype == "Procedure":
            body |= {"status": "completed", "code": concept, "performedDateTime": "2026-01-01"}
        else:
            body |= {"status": "active", "intent": "order", "medicationCodeableConcept": concept}
        resources.append(body)
    for hook in ("patient-view", "order-sign", "encounter-discharge"):
        evaluate(from_resources(resources, k.terminology, hook, "warm-up"), datetime(2026, 2, 1, tzinfo=UTC), k)


def _default_evaluator(settings: Settings, k: Knowledge) -> Evaluator:
    if not settings.redis_url:
        log.info("embedded mode: no HOFHIR_REDIS_URL, evaluations run in this process")
        return InlineEvaluator(k)
    from cds_hooks.dispatch import WorkerEvaluator

    return WorkerEvaluator(settings, k)


def _install_handlers(app: Flask) -> None:
    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID") or new_uuid()
        if request.method == "OPTIONS":  # CORS preflight: answered before auth, as browsers send no token
            return Response(status=204)
        return None

    @app.after_request
    def _finish(response: Response) -> Response:
        origins = state().settings.cors_origins
        origin = request.headers.get("Origin")
        if origin and ("*" in origins or origin in origins):
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Request-ID"
            response.headers["Access-Control-Max-Age"] = "86400"
            if "*" not in origins:
                response.headers["Vary"] = "Origin"
        response.headers["X-Request-ID"] = g.get("request_id", "")
        endpoint = g.get("service_id") or (request.url_rule.rule if request.url_rule else "unmatched")
        metrics.child(metrics.HTTP_REQUESTS, endpoint, str(response.status_code)).inc()
        if request.path not in ("/healthz", "/readyz", "/metrics"):
            logs.request_line(request, response, g)
        return response

    @app.errorhandler(HttpError)
    def _http_error(exc: HttpError) -> Response:
        return outcome_response(exc.status, exc.message, exc.expression)

    @app.errorhandler(AuthError)
    def _unauthorized(exc: AuthError) -> Response:
        log.info("401: %s", exc.reason)  # the reason stays in our log; the caller gets a bare 401
        return Response(status=401, headers={"WWW-Authenticate": "Bearer"})

    @app.errorhandler(ReplayStoreUnavailable)
    def _replay_down(exc: ReplayStoreUnavailable) -> Response:
        return outcome_response(503, "authentication state is unavailable; try again")

    @app.errorhandler(StoreUnavailable)
    def _store_down(exc: StoreUnavailable) -> Response:
        log.warning("store unavailable: %s", exc)
        return outcome_response(503, "the service's state store is unavailable; try again")

    @app.errorhandler(HTTPException)
    def _werkzeug(exc: HTTPException) -> Response:
        status = exc.code or 500
        messages = {
            404: "not found",
            405: f"method {request.method} not allowed here",
            413: f"request body over {state().settings.max_body_bytes} bytes",
        }
        response = outcome_response(status, messages.get(status, exc.description or exc.name))
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # RFC 9110: a 405 names what is allowed
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error (request %s)", g.get("request_id"))
        return outcome_response(500, f"internal error; request id {g.get('request_id')}")
