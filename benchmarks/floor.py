"""The floor: a bare Flask app that parses the hook request body and answers no cards.

Served by benchmarks/run.py under the same gunicorn settings as hofhir (cds_hooks/gunicorn_conf.py), it
is what the HTTP stack, Flask and JSON parsing cost on their own: hofhir's figures are ratios to it.
"""

from __future__ import annotations

import orjson
from flask import Flask, Response, request

app = Flask(__name__)


@app.post("/cds-services/<service_id>")
def hook(service_id: str) -> Response:
    body = orjson.loads(request.get_data())
    if not isinstance(body, dict):
        return Response(b'{"error": "not an object"}', status=400, mimetype="application/json")
    return Response(orjson.dumps({"cards": []}), mimetype="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return Response(b'{"status": "ok"}', mimetype="application/json")
