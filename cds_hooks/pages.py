"""Human-facing pages: the rules catalogue (/rules), the EHR-style preview (/, /preview), and /openapi.json."""

from __future__ import annotations

from html import escape
from importlib import resources

from flask import Blueprint, Response, request

from cds_hooks import preview
from cds_hooks.openapi import document
from cds_hooks.web import json_response, state
from hofhir.knowledge.catalogue_doc import catalogue

blueprint = Blueprint("pages", __name__)


def _wants_html() -> bool:
    if request.args.get("format") == "json":
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


@blueprint.get("/rules")
def rules() -> Response:
    data = catalogue(state().knowledge)
    if not _wants_html():
        return json_response(data)
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8><title>hofhir rules</title>",
        "<style>body{font:15px/1.5 system-ui;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "blockquote{border-left:3px solid #ccc;margin:.3rem 0;padding-left:.8rem;color:#333}</style>",
        f"<h1>hofhir rules catalogue</h1><p>Knowledge base {escape(data['knowledgeVersion'])}.</p><h2>Card topics</h2>",
    ]
    for topic in data["topics"]:
        cites = ", ".join(f'<a href="#{escape(c)}">{escape(c)}</a>' for c in topic["cites"])
        parts.append(
            f'<h3 id="{escape(topic["code"])}">{escape(topic["display"])} <code>{escape(topic["code"])}</code></h3>'
            f"<p>{escape(topic['logic'])}</p><p>Cites: {cites}</p>"
        )
    parts.append("<h2>Evidence</h2>")
    for item in data["evidence"]:
        source = "[LIT]" if item["source"] == "LIT" else item["source"]
        flag = " (contested)" if item["contested"] else ""
        quotes = (
            "".join(f"<blockquote>{escape(q)}</blockquote>" for q in item["quotes"]) or f"<p>{escape(item['text'])}</p>"
        )
        parts.append(
            f'<h3 id="{escape(item["id"])}">{escape(item["id"])}</h3><p><b>{escape(item["statement"])}</b>, {source}{flag}</p>{quotes}'
        )
    return Response("".join(parts), content_type="text/html; charset=utf-8")


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return json_response(document(state().settings.public_url or request.host_url.rstrip("/")))


UI_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


def _ui_file(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or suffix not in UI_TYPES:
        return Response(status=404)
    path = resources.files("cds_hooks").joinpath("ui", name)
    if not path.is_file():
        return Response(status=404)
    answer = Response(path.read_bytes(), content_type=UI_TYPES[suffix])
    # The page runs only its own files: no inline script, no other origin, no plugin.
    answer.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'self'"
    )
    return answer


@blueprint.get("/")
def home() -> Response:
    """The EHR-style preview: example patients, a paste box, the card column and the timeline."""
    return _ui_file("index.html")


@blueprint.get("/ui/app.js")
def ui_script() -> Response:
    return _ui_file("app.js")


@blueprint.get("/ui/style.css")
def ui_style() -> Response:
    return _ui_file("style.css")


@blueprint.get("/preview/examples")
def examples() -> Response:
    return json_response(preview.examples_listing(state()))


@blueprint.post("/preview")
def run_preview() -> Response:
    return json_response(preview.run(state()))
