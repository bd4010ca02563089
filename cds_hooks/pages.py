"""Human-facing pages: the rules catalogue (/rules), the demo page (/), and /openapi.json."""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, request

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
    return json_response(document())


DEMO = """<!doctype html><html lang=en><meta charset=utf-8><title>hofhir demo</title>
<style>body{font:15px/1.5 system-ui;max-width:60rem;margin:2rem auto;padding:0 1rem}textarea{width:100%;height:14rem}
.card{border:1px solid #ccc;border-left:6px solid #39c;padding:.5rem 1rem;margin:.8rem 0}.warning{border-left-color:#e90}
.critical{border-left-color:#d33}pre{white-space:pre-wrap}</style>
<h1>hofhir: heterotopic ossification guidance</h1>
<p>Paste a CDS Hooks request (for example a file from <code>shared/vignettes/</code>) and send it to a service.
This page calls the service from your browser, so it works when the service runs with <code>HOFHIR_AUTH=off</code>.
See the <a href="/rules">rules catalogue</a> and the <a href="/openapi.json">API</a>.</p>
<select id=svc></select> <button id=go>Send</button><textarea id=req></textarea><div id=out></div>
<script>
const svc=document.getElementById('svc'),out=document.getElementById('out');
fetch('/cds-services').then(r=>r.json()).then(d=>{for(const s of d.services){const o=document.createElement('option');o.value=s.id;o.textContent=s.id+' ('+s.hook+')';svc.appendChild(o)}}).catch(()=>{out.textContent='Discovery needs a JWT: run with HOFHIR_AUTH=off to use this page.'});
document.getElementById('go').onclick=async()=>{out.textContent='';let body;try{body=JSON.parse(document.getElementById('req').value)}catch(e){out.textContent='Not JSON: '+e;return}
const r=await fetch('/cds-services/'+svc.value,{method:'POST',headers:{'Content-Type':'application/json'},body:JSON.stringify(body)});const d=await r.json();
if(!r.ok){out.textContent=JSON.stringify(d,null,2);return}if(!d.cards.length){out.textContent='No cards.'}
for(const c of d.cards){const div=document.createElement('div');div.className='card '+c.indicator;const h=document.createElement('h3');h.textContent=c.summary;const p=document.createElement('pre');p.textContent=c.detail||'';div.append(h,p);out.appendChild(div)}};
</script>"""


@blueprint.get("/")
def demo() -> Response:
    return Response(DEMO, content_type="text/html; charset=utf-8")
