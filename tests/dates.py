"""Shift a vignette's clinical timeline to today (shared/vignettes/README.md, HTTP section)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

DATE_FIELDS = frozenset(
    {
        "birthDate",
        "onsetDateTime",
        "abatementDateTime",
        "recordedDate",
        "effectiveDateTime",
        "issued",
        "performedDateTime",
        "authoredOn",
        "occurrenceDateTime",
    }
)


def shift(node: Any, delta: timedelta) -> Any:
    """Every date/dateTime/instant in the listed fields moved by delta (dates by whole days)."""
    if isinstance(node, list):
        return [shift(v, delta) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DATE_FIELDS and isinstance(value, str):
            if len(value) == 10:
                out[key] = (date.fromisoformat(value) + timedelta(days=delta.days)).isoformat()
            else:
                out[key] = (datetime.fromisoformat(value.replace("Z", "+00:00")) + delta).isoformat()
        else:
            out[key] = shift(value, delta)
    return out


def to_today(request: dict[str, Any], then: str) -> dict[str, Any]:
    delta = datetime.now(UTC) - datetime.fromisoformat(then)
    # whole days keep date-only fields and date-times in step (a birthday does not move by hours)
    return shift(request, timedelta(days=delta.days))
