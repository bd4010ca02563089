"""The HO timeline (hofhir.clinical.timeline) drawn as one self-contained, accessible SVG.

Drawing approach: hand-written SVG, on purpose: the picture is a few lanes of marks, bands and one small
line chart, which plain SVG elements say in ~300 lines with real <text> (selectable, read by screen readers,
greyscale-safe patterns), no dependency, no fonts or scripts embedded, and byte-stable output for tests;
a plotting library (matplotlib, Vega-Lite) would add a heavy dependency or a JavaScript runtime for less
control over the text.

Legible at 600 px wide: the viewBox is 680 units wide, body text 11 units (9.7 px at 600 px), tick labels 10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

from hofhir.clinical.timeline import Event, Series, Timeline

WIDTH = 680
LEFT = 132  # the label column
RIGHT = 14
PLOT_W = WIDTH - LEFT - RIGHT
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
CHAR_W = 6.4  # an upper estimate of one character's advance at font-size 11 (used to keep text in the box)
ROW_H = 19
INK = "#1f2933"
MUTED = "#52606d"
ACCENT = "#1d4ed8"
ALERT = "#b42318"
UNIT_LABELS = {"Cel": "°C", "[degF]": "°F", "{score}": "score"}  # UCUM codes as people write them
LANE_COLOURS = {
    "signs": "#b45309",
    "imaging": "#0f766e",
    "duplex": "#6d28d9",
    "procedures": "#1f2933",
    "drugs": "#1d4ed8",
}


def _w(text: str, size: float = 11) -> float:
    return len(text) * CHAR_W * size / 11


def _fit(text: str, room: float, size: float = 11) -> str:
    """Shorten `text` with an ellipsis so that it fits in `room` units."""
    if _w(text, size) <= room:
        return text
    keep = max(1, int(room / (CHAR_W * size / 11)) - 1)
    return text[:keep].rstrip() + "…"


@dataclass
class _Canvas:
    parts: list[str]

    def add(self, s: str) -> None:
        self.parts.append(s)

    def text(
        self,
        x: float,
        y: float,
        s: str,
        *,
        size: float = 11,
        anchor: str = "start",
        fill: str = INK,
        weight: str = "normal",
    ) -> None:
        # Keep every text inside the viewBox: clamp the anchor so the estimated extent fits.
        width = _w(s, size)
        if anchor == "start":
            x = min(max(x, 2), WIDTH - 2 - width)
        elif anchor == "end":
            x = max(min(x, WIDTH - 2), 2 + width)
        else:
            x = min(max(x, 2 + width / 2), WIDTH - 2 - width / 2)
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" text-anchor="{anchor}" fill="{fill}"'
            f' font-weight="{weight}">{escape(s)}</text>'
        )


class _Scale:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.seconds = max((end - start).total_seconds(), 1.0)

    def x(self, when: datetime) -> float:
        frac = (when - self.start).total_seconds() / self.seconds
        return LEFT + min(max(frac, 0.0), 1.0) * PLOT_W


def _ticks(start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    days = (end - start).days
    out: list[tuple[datetime, str]] = []
    if days <= 120:
        step = 7 if days <= 50 else 14
        t = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=1)
        while t < end:
            out.append((t, t.strftime("%d %b")))
            t += timedelta(days=step)
        return out
    months = 1 if days <= 420 else 3 if days <= 1500 else 12
    y, m = start.year, start.month + 1
    while True:
        if m > 12:
            y, m = y + 1, m - 12
        t = datetime(y, m, 1, tzinfo=UTC)
        if t >= end:
            break
        if (m - 1) % months == 0:
            out.append((t, t.strftime("%b %Y") if months < 12 else str(y)))
        m += 1
    return out


def _pack(items: list[tuple[float, float]]) -> list[int]:
    """Greedy rows so that no two extents overlap; returns the row of each item."""
    ends: list[float] = []
    rows: list[int] = []
    for lo, hi in items:
        for i, end in enumerate(ends):
            if lo > end + 4:
                ends[i] = hi
                rows.append(i)
                break
        else:
            ends.append(hi)
            rows.append(len(ends) - 1)
    return rows


def _placed(x0: float, x1: float, label: str) -> tuple[float, float, str, str]:
    """Where a mark's label goes: right of it if it fits, else left; (lo, hi, anchor, text)."""
    room_right = WIDTH - RIGHT - (x1 + 7)
    room_left = x0 - 7 - LEFT
    if _w(label) <= room_right or room_right >= room_left:
        text = _fit(label, room_right)
        return x0 - 5, x1 + 7 + _w(text), "start", text
    text = _fit(label, room_left)
    return x0 - 7 - _w(text), x1 + 5, "end", text


def render(t: Timeline, title: str = "Heterotopic ossification timeline") -> str:
    """The timeline as an SVG document (a string), with a <title> and a <desc> text alternative."""
    scale = _Scale(t.start, t.end)
    body = _Canvas([])
    y = 44.0  # below the heading and the relevance strip
    plot_top = y

    # ---- index events ----
    marks = sorted({(m.when, m.label) for m in t.index_marks})
    mark_items = [_placed(scale.x(w), scale.x(w), label) for w, label in marks]
    rows = _pack([(lo, hi) for lo, hi, _, _ in mark_items])
    lane_h = max(1, max(rows, default=0) + 1) * ROW_H + 8
    body.text(8, y + 14, "Index events", weight="bold")
    for (when, _), (_, _, anchor, text), row in zip(marks, mark_items, rows, strict=True):
        cx, cy = scale.x(when), y + 10 + row * ROW_H
        body.add(
            f'<path class="index-event" d="M{cx:.1f} {cy - 6:.1f} L{cx + 6:.1f} {cy:.1f} L{cx:.1f} {cy + 6:.1f} '
            f'L{cx - 6:.1f} {cy:.1f} Z" fill="{ALERT}" stroke="#fff" stroke-width="1"/>'
        )
        body.text(cx + (9 if anchor == "start" else -9), cy + 4, text, anchor=anchor)
    y += lane_h

    # ---- lab series ----
    for series in t.series:
        y = _series(body, scale, series, y)

    # ---- event lanes ----
    for lane in t.lanes:
        if not lane.events:
            continue
        y = _lane(body, scale, lane.key, lane.label, list(lane.events), t.now, y)
    plot_bottom = y

    # ---- backgrounds (drawn first, under everything) ----
    back = _Canvas([])
    back.add(
        f'<rect x="{LEFT}" y="{plot_top:.1f}" width="{PLOT_W}" height="{plot_bottom - plot_top:.1f}" fill="#fff"/>'
    )
    for when in sorted({m.when for m in t.index_marks}):
        mark = next(m for m in t.index_marks if m.when == when)
        wx0, wx1 = scale.x(mark.window.start), scale.x(mark.window.end)
        ax0, ax1 = scale.x(mark.attention.start), scale.x(mark.attention.end)
        back.add(
            f'<rect class="window-band" x="{wx0:.1f}" y="{plot_top:.1f}" width="{max(wx1 - wx0, 0):.1f}" '
            f'height="{plot_bottom - plot_top:.1f}" fill="#eef2f7"/>'
        )
        back.add(
            f'<rect class="attention-band" x="{ax0:.1f}" y="{plot_top:.1f}" width="{max(ax1 - ax0, 0):.1f}" '
            f'height="{plot_bottom - plot_top:.1f}" fill="url(#hatch)"/>'
        )
    for when in sorted({m.when for m in t.index_marks}):
        ix = scale.x(when)
        back.add(
            f'<line class="index-line" x1="{ix:.1f}" y1="{plot_top:.1f}" x2="{ix:.1f}" y2="{plot_bottom:.1f}" '
            f'stroke="{ALERT}" stroke-width="1" stroke-dasharray="2 3"/>'
        )
    for i, (when, _) in enumerate(_ticks(t.start, t.end)):
        gx = scale.x(when)
        back.add(
            f'<line x1="{gx:.1f}" y1="{plot_top:.1f}" x2="{gx:.1f}" y2="{plot_bottom:.1f}" stroke="#d9e2ec" '
            f'stroke-width="{1 if i % 2 == 0 else 0.6}"/>'
        )

    # ---- top strip: relevance window and now ----
    top = _Canvas([])
    now_x = scale.x(t.now)
    if t.relevance is not None:
        rx0 = scale.x(t.relevance.start)
        clipped = t.relevance.start < t.start
        top.add(
            f'<line class="relevance-window" x1="{rx0:.1f}" y1="34" x2="{now_x:.1f}" y2="34" stroke="{ACCENT}" '
            f'stroke-width="3" stroke-dasharray="{"6 3" if clipped else "none"}"/>'
        )
        if not clipped:
            top.add(f'<line x1="{rx0:.1f}" y1="29" x2="{rx0:.1f}" y2="39" stroke="{ACCENT}" stroke-width="2"/>')
        state = "inside" if t.in_relevance_window else "outside"
        label = f"Relevance window, {(t.relevance.end - t.relevance.start).days} days (§3a): {state}"
        top.text((rx0 + now_x) / 2, 27, label, anchor="middle", fill=ACCENT, size=11)
    top.add(
        f'<line class="now" x1="{now_x:.1f}" y1="{plot_top - 6:.1f}" x2="{now_x:.1f}" y2="{plot_bottom:.1f}" '
        f'stroke="{INK}" stroke-width="1.5" stroke-dasharray="4 3"/>'
    )

    # ---- axis and legend ----
    axis = _Canvas([])
    axis.add(f'<line x1="{LEFT}" y1="{plot_bottom:.1f}" x2="{LEFT + PLOT_W}" y2="{plot_bottom:.1f}" stroke="{INK}"/>')
    last_hi = -1e9
    for when, label in _ticks(t.start, t.end):
        tx = scale.x(when)
        axis.add(
            f'<line x1="{tx:.1f}" y1="{plot_bottom:.1f}" x2="{tx:.1f}" y2="{plot_bottom + 5:.1f}" stroke="{INK}"/>'
        )
        if tx - _w(label) / 2 > last_hi + 6:
            axis.text(tx, plot_bottom + 18, label, anchor="middle", fill=MUTED)
            last_hi = tx + _w(label) / 2
    axis.text(now_x, plot_bottom + 32, f"as of {t.now.date().isoformat()}", anchor="middle", weight="bold")
    axis.text(8, plot_bottom + 18, "Date", weight="bold")
    y = plot_bottom + 50
    y = _legend(axis, y)
    height = y + 6

    sentences = t.sentences() or ["No dated event in the record."]
    desc = " ".join(sentences)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" width="100%" role="img" '
        f'aria-labelledby="hofhir-tl-title hofhir-tl-desc" font-family="{escape(FONT)}" class="hofhir-timeline">',
        f'<title id="hofhir-tl-title">{escape(title)}</title>',
        f'<desc id="hofhir-tl-desc">{escape(desc)}</desc>',
        "<defs>"
        '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="#fdf3d7"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d8bd5a" '
        'stroke-width="1"/></pattern></defs>',
        f'<rect width="{WIDTH}" height="{height:.0f}" fill="#fff"/>',
    ]
    head = _Canvas([])
    head.text(8, 16, title, size=13, weight="bold")
    svg += head.parts + back.parts + body.parts + top.parts + axis.parts + ["</svg>"]
    return "\n".join(svg)


def _nice(lo: float, hi: float) -> tuple[float, float]:
    if hi <= lo:
        hi = lo + 1
    pad = (hi - lo) * 0.12
    return lo - pad, hi + pad


def _nice_ticks(lo: float, hi: float) -> list[float]:
    """Two or three round values inside [lo, hi] for the y axis."""
    raw = (hi - lo) / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 6) for i in range(4) if first + i * step <= hi]


def _series(c: _Canvas, scale: _Scale, s: Series, y: float) -> float:
    h = 96.0 if s.concept == "alp" else 70.0
    top, bottom = y + 8, y + h - 6
    values = [p.value for p in s.points]
    lo, hi = _nice(
        min([*values, *(v for v in (s.low,) if v is not None)]),
        max([*values, *(v for v in (s.high,) if v is not None)]),
    )

    def sy(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    c.add(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT_W}" y2="{y:.1f}" stroke="#bcccdc"/>')
    c.text(8, y + 20, s.label, weight="bold")
    unit = UNIT_LABELS.get(s.unit, s.unit)
    c.text(8, y + 34, f"({unit})" if unit else "", fill=MUTED)
    if s.high is not None:
        ref = f"ref. {s.low:g}-{s.high:g}" if s.low is not None else f"ref. ≤{s.high:g}"
        c.text(8, y + 48, ref, fill=MUTED)
    if s.high is not None:
        rlo = s.low if s.low is not None else lo
        c.add(
            f'<rect class="reference-range" x="{LEFT}" y="{sy(s.high):.1f}" width="{PLOT_W}" '
            f'height="{max(sy(rlo) - sy(s.high), 0):.1f}" fill="#e3f2e8" stroke="#3f7d58" stroke-dasharray="3 3" '
            f'stroke-width="0.8"/>'
        )
    for v in _nice_ticks(lo, hi):
        c.add(f'<line x1="{LEFT - 3}" y1="{sy(v):.1f}" x2="{LEFT}" y2="{sy(v):.1f}" stroke="{MUTED}"/>')
        c.text(LEFT - 5, sy(v) + 4, f"{v:g}", anchor="end", fill=MUTED, size=10)
    if len(s.points) > 1:
        path = " ".join(f"{scale.x(p.when):.1f},{sy(p.value):.1f}" for p in s.points)
        c.add(f'<polyline points="{path}" fill="none" stroke="{INK}" stroke-width="1.4"/>')
    for p in s.points:
        px, py = scale.x(p.when), sy(p.value)
        above = p.above is True
        c.add(
            f'<circle class="lab-point" data-concept="{escape(s.concept)}" cx="{px:.1f}" cy="{py:.1f}" r="4.5" '
            f'fill="{ALERT if above else "#fff"}" stroke="{ALERT if above else INK}" stroke-width="1.6">'
            f"<title>{escape(s.label)} {p.value:g} {escape(unit)} on {p.when.date().isoformat()}"
            f"{' (above range)' if above else ''}</title></circle>"
        )
        if len(s.points) <= 12:
            c.text(px, py - 8, f"{p.value:.4g}", anchor="middle", size=10, fill=ALERT if above else INK)
    return y + h


def _lane(c: _Canvas, scale: _Scale, key: str, label: str, events: list[Event], now: datetime, y: float) -> float:
    colour = LANE_COLOURS.get(key, INK)
    placed = []
    for e in events:
        x0 = scale.x(e.start)
        until = now if e.ongoing else e.end
        x1 = scale.x(until) if until is not None else x0
        text = e.label + (" (ordered)" if e.ordered_only else "")
        placed.append((x0, x1, _placed(x0, x1, text)))
    rows = _pack([(lo, hi) for _, _, (lo, hi, _, _) in placed])
    h = (max(rows, default=0) + 1) * ROW_H + 10
    c.add(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT_W}" y2="{y:.1f}" stroke="#bcccdc"/>')
    c.text(8, y + 16, label, weight="bold")
    for e, (x0, x1, (_, _, anchor, text)), row in zip(events, placed, rows, strict=True):
        cy = y + 12 + row * ROW_H
        cls = f"event event-{key}"
        if x1 > x0 + 1:
            dash = ' stroke-dasharray="2 2"' if e.ordered_only else ""
            c.add(
                f'<rect class="{cls}" x="{x0:.1f}" y="{cy - 4:.1f}" width="{x1 - x0:.1f}" height="8" rx="3" '
                f'fill="{colour}" fill-opacity="0.8"{dash}/>'
            )
            if e.ongoing:
                c.add(
                    f'<path d="M{x1:.1f} {cy - 6:.1f} L{x1 + 6:.1f} {cy:.1f} L{x1:.1f} {cy + 6:.1f} Z" fill="{colour}"/>'
                )
        elif key in ("imaging", "duplex"):
            shape = (
                f'<rect class="{cls}" x="{x0 - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" fill="{colour}"/>'
                if key == "imaging"
                else f'<path class="{cls}" d="M{x0:.1f} {cy - 6:.1f} L{x0 + 6:.1f} {cy + 5:.1f} L{x0 - 6:.1f} '
                f'{cy + 5:.1f} Z" fill="{colour}"/>'
            )
            c.add(shape)
        else:
            fill = "#fff" if e.ordered_only else colour
            c.add(
                f'<circle class="{cls}" cx="{x0:.1f}" cy="{cy:.1f}" r="5" fill="{fill}" stroke="{colour}" '
                f'stroke-width="2"/>'
            )
        if anchor == "start":
            c.text(x1 + 9 if x1 > x0 + 1 else x0 + 9, cy + 4, text, anchor="start")
        else:
            c.text(x0 - 9, cy + 4, text, anchor="end")
    return y + h


def _legend(c: _Canvas, y: float) -> float:
    items = [
        ('<path d="M{x} {a} L{xr} {y0} L{x} {b} L{xl} {y0} Z" fill="' + ALERT + '"/>', "index event"),
        ('<rect x="{xm}" y="{a}" width="14" height="12" fill="url(#hatch)" stroke="#c9a227"/>', "weeks 2-12"),
        ('<rect x="{xm}" y="{a}" width="14" height="12" fill="#eef2f7" stroke="#9fb3c8"/>', "12-month window"),
        ('<rect x="{xm}" y="{a}" width="14" height="12" fill="#e3f2e8" stroke="#3f7d58"/>', "reference range"),
        (
            '<circle cx="{x}" cy="{y0}" r="4.5" fill="' + ALERT + '" stroke="' + ALERT + '"/>',
            "above range",
        ),
        ('<circle cx="{x}" cy="{y0}" r="4.5" fill="#fff" stroke="' + INK + '" stroke-width="1.6"/>', "within range"),
        ('<line x1="{xm}" y1="{y0}" x2="{x6}" y2="{y0}" stroke="' + INK + '" stroke-dasharray="4 3"/>', "now"),
    ]
    x = 8.0
    for shape, label in items:
        width = 22 + _w(label) + 14
        if x + width > WIDTH - 4:
            x, y = 8.0, y + 18
        cx = x + 7
        c.add(
            shape.format(
                x=f"{cx:.1f}",
                xm=f"{x:.1f}",
                x6=f"{x + 14:.1f}",
                xl=f"{cx - 6:.1f}",
                xr=f"{cx + 6:.1f}",
                a=f"{y - 10:.1f}",
                b=f"{y + 2:.1f}",
                y0=f"{y - 4:.1f}",
            )
        )
        c.text(x + 20, y, label, fill=MUTED)
        x += width
    return y + 8
