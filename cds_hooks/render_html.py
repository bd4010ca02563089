"""CDS Hooks cards as HTML, the way an EHR shows them: one renderer for the preview page and the HTML report.

Card detail is GitHub-flavoured markdown (tables, strikethrough) rendered by markdown-it-py with raw HTML
disabled, so a card's text can never inject markup; every other string is escaped here.
"""

from __future__ import annotations

from html import escape
from importlib import resources
from typing import Any

import orjson
from markdown_it import MarkdownIt
from markdown_it.token import Token

# commonmark + the GFM tables and strikethrough; "html": False turns raw HTML in the source into text.
_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)
ICONS = {"info": "ℹ", "warning": "⚠", "critical": "⛔"}  # plain characters: no icon font to fetch
INDICATOR_WORDS = {"info": "Info", "warning": "Warning", "critical": "Critical"}


def markdown(text: str) -> str:
    html: str = _MD.render(text)
    return html


FOLDED = ("Evidence",)  # detail sections shown folded: the quotes behind the rules, one click away


def detail_html(text: str) -> str:
    """The detail as HTML, its "Evidence" section folded in a <details> (split where markdown-it says it starts)."""
    lines = text.splitlines(keepends=True)
    tokens = _MD.parse(text)
    for i, token in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if token.type == "paragraph_open" and token.map and nxt.type == "inline" and _plain(nxt).strip() in FOLDED:
            start, end = token.map
            head, title, rest = "".join(lines[:start]), _plain(nxt).strip(), "".join(lines[end:])
            # The closing italic line (advice only...) stays visible after the folded quotes.
            tail = ""
            rest_tokens = _MD.parse(rest)
            last = next((t for t in reversed(rest_tokens) if t.type == "paragraph_open" and t.map), None)
            if last is not None and last.map and rest_tokens.index(last) > 0 and last.level == 0:
                rest_lines = rest.splitlines(keepends=True)
                rest, tail = "".join(rest_lines[: last.map[0]]), "".join(rest_lines[last.map[0] :])
            return (
                f'{markdown(head)}<details class="evidence"><summary>{escape(title)}</summary>{markdown(rest)}</details>'
                f"{markdown(tail)}"
            )
    return markdown(text)


def stylesheet() -> str:
    return resources.files("cds_hooks").joinpath("ui/style.css").read_text(encoding="utf-8")


def card_html(card: dict[str, Any], service_id: str | None = None, interactive: bool = True) -> str:
    """One card; with `interactive`, the dismiss menu and accept buttons the preview page wires to /feedback."""
    indicator = str(card.get("indicator")) if card.get("indicator") in ICONS else "info"
    topic = ((card.get("source") or {}).get("topic") or {}).get("code", "")
    parts = [
        f'<article class="card card-{indicator}" data-uuid="{escape(str(card.get("uuid", "")))}" '
        f'data-topic="{escape(str(topic))}" data-service="{escape(service_id or "")}">',
        '<header class="card-head">'
        f'<span class="card-icon" aria-hidden="true">{ICONS[indicator]}</span>'
        f'<span class="card-indicator">{INDICATOR_WORDS[indicator]}</span>'
        f'<h3 class="card-summary">{escape(str(card.get("summary", "")))}</h3></header>',
    ]
    if card.get("detail"):
        parts.append(f'<div class="card-detail">{detail_html(str(card["detail"]))}</div>')
    suggestions = card.get("suggestions") or []
    if suggestions:
        parts.append('<div class="card-suggestions">')
        for s in suggestions:
            for action in s.get("actions") or [{}]:
                resource = action.get("resource")
                rtype = resource.get("resourceType", "resource") if isinstance(resource, dict) else "resource"
                body = escape(orjson.dumps(resource, option=orjson.OPT_INDENT_2).decode()) if resource else ""
                accept = (
                    f'<button type="button" class="btn btn-primary accept" data-suggestion="{escape(str(s.get("uuid", "")))}">'
                    "Accept suggestion</button>"
                    if interactive
                    else ""
                )
                parts.append(
                    '<details class="suggestion">'
                    f'<summary class="btn btn-suggestion">{escape(str(s.get("label", "")))}</summary>'
                    f'<div class="suggestion-body"><p>{escape(str(action.get("description", "")))}</p>'
                    f'<p class="muted">Would {escape(str(action.get("type", "create")))} this {escape(str(rtype))}:</p>'
                    f'<pre class="fhir-resource" data-resource-type="{escape(str(rtype))}">{body}</pre>{accept}</div>'
                    "</details>"
                )
        parts.append("</div>")
    links = card.get("links") or []
    if links:
        parts.append('<ul class="card-links">')
        for link in links:
            parts.append(
                f'<li><a href="{escape(str(link.get("url", "")))}" target="_blank" rel="noopener">'
                f"{escape(str(link.get('label', '')))}</a></li>"
            )
        parts.append("</ul>")
    source = card.get("source") or {}
    label = escape(str(source.get("label", "")))
    src = (
        f'<a href="{escape(str(source["url"]))}" target="_blank" rel="noopener">{label}</a>'
        if source.get("url")
        else label
    )
    parts.append(f'<footer class="card-foot"><span class="card-source">Source: {src}</span>')
    reasons = card.get("overrideReasons") or []
    if interactive:
        options = "".join(
            f'<option value="{escape(str(r.get("code", "")))}" data-system="{escape(str(r.get("system", "")))}">'
            f"{escape(str(r.get('display', r.get('code', ''))))}</option>"
            for r in reasons
        )
        menu = (
            f'<label class="sr-only" for="why-{escape(str(card.get("uuid", "")))}">Reason</label>'
            f'<select class="override-reason" id="why-{escape(str(card.get("uuid", "")))}">'
            f'<option value="">Dismiss without a reason</option>{options}</select>'
        )
        parts.append(
            f'<span class="dismiss">{menu}<button type="button" class="btn dismiss-btn">Dismiss</button></span>'
        )
    elif reasons:
        shown = ", ".join(escape(str(r.get("display", r.get("code", "")))) for r in reasons)
        parts.append(f'<span class="muted">Override reasons: {shown}</span>')
    parts.append("</footer></article>")
    return "".join(parts)


def cards_html(cards: list[dict[str, Any]], service_id: str | None = None, interactive: bool = True) -> str:
    return "".join(card_html(c, service_id, interactive) for c in cards)


def report_page(title: str, sections: list[tuple[str, list[dict[str, Any]], str, list[str], str | None]]) -> str:
    """One self-contained HTML page (no script, no external file): per patient the banner, cards and timeline.

    Each section is (banner, cards, timeline SVG, timeline sentences, reason when there is no card).
    """
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{stylesheet()}</style></head><body>"
        f'<header class="appbar"><span class="brand">hofhir</span><span class="appbar-title">{escape(title)}</span></header>'
    ]
    for banner, cards, svg, sentences, reason in sections:
        body = (
            cards_html(cards, interactive=False)
            if cards
            else f'<p class="no-cards">{escape(reason or "No cards.")}</p>'
        )
        text = "".join(f"<li>{escape(s)}</li>" for s in sentences)
        parts.append(
            f'<div class="patient-banner">{escape(banner)}</div>'
            f'<main class="layout"><section class="cards" aria-label="Cards"><h2>Cards ({len(cards)})</h2>{body}</section>'
            f'<section class="timeline" aria-label="Timeline"><h2>Timeline</h2><figure class="timeline-figure">{svg}'
            f"<figcaption><details><summary>Timeline as text</summary><ul>{text}</ul></details></figcaption>"
            "</figure></section></main>"
        )
    parts.append("</body></html>")
    return "".join(parts)


def _plain(token: Token) -> str:
    """The text of an inline token, markup dropped (for a terminal)."""
    out: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
    return "".join(out)


def markdown_sections(text: str) -> dict[str, list[str]]:
    """A card detail's bullet lists by the bold paragraph above them ("Why", "Evidence", ...), as plain text."""
    sections: dict[str, list[str]] = {}
    heading = ""
    depth = 0
    tokens = _MD.parse(text)
    for i, token in enumerate(tokens):
        if token.type == "bullet_list_open":
            depth += 1
        elif token.type == "bullet_list_close":
            depth -= 1
        elif token.type == "inline" and depth == 0 and i > 0 and tokens[i - 1].type == "paragraph_open":
            heading = _plain(token).strip()
        elif token.type == "inline" and depth == 1 and heading:
            sections.setdefault(heading, []).append(_plain(token).strip())
    return sections
