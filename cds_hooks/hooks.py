"""Discovery and the hook services: `GET /cds-services`, `POST /cds-services/{id}`.

The views only translate HTTP: authenticate, find the service, read the body, hand it to
`cds_hooks.hook_call`, and turn the answer into a response.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, g, request

from cds_hooks.errors import HttpError
from cds_hooks.hook_call import run_hook_call
from cds_hooks.web import authenticate, json_response, read_json, state

blueprint = Blueprint("hooks", __name__)


@blueprint.get("/cds-services")
def discovery() -> Response:
    authenticate()
    return json_response({"services": [s.discovery() for s in state().services.values()]})


# The URL the cards link back to, by what werkzeug builds it from (scheme, Host header, server address):
# the same few hosts call again and again, and werkzeug rebuilds (and IRI-decodes) it on every request.
# Bounded: a Host header is the client's.
_BASE_URLS: dict[tuple[object, ...], str] = {}
BASE_URL_ENTRIES = 64


def _base_url() -> str:
    public = state().settings.public_url
    if public:
        return public
    key = (request.scheme, request.headers.get("Host"), request.server)
    found = _BASE_URLS.get(key)
    if found is None:
        found = request.host_url.rstrip("/")
        if len(_BASE_URLS) >= BASE_URL_ENTRIES:
            _BASE_URLS.clear()
        _BASE_URLS[key] = found
    return found


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    s = state()
    # Authenticate first: without a valid token every service id answers 401, so ids cannot be enumerated.
    claims = authenticate()
    service = s.services.get(service_id)
    if service is None:
        raise HttpError(404, f"no CDS service {service_id!r}; GET /cds-services lists them")
    g.service_id = service_id
    started = time.perf_counter()
    answer = run_hook_call(s, service, read_json(), _base_url(), started, claims=claims)
    for name, value in answer.log.items():
        setattr(g, name, value)
    response = json_response(answer.body)
    if answer.evaluated:
        response.headers["X-Hofhir-Evaluated-By"] = answer.path  # inline, worker, cache, worker-fallback-inline
    return response
