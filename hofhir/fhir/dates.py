"""Dates from FHIR, read without a clock: partial dates become the start of their period, in UTC."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_when(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware UTC datetime; None for anything unreadable."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_when(value)


# The same dates are read again and again (each resource by several rules, each chart on every call); a
# datetime is immutable, so each distinct string is parsed once (bounded).
@lru_cache(maxsize=8192)
def _parse_when(value: str) -> datetime | None:
    m = _DATE.match(value)
    try:
        if m:
            return datetime(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_date(value: Any) -> date | None:
    when = parse_when(value)
    return when.date() if when else None


def days_between(earlier: datetime, later: datetime) -> float:
    return (later - earlier) / timedelta(days=1)


def years_between(earlier: date, later: date) -> int:
    """Whole years completed (an age)."""
    return later.year - earlier.year - ((later.month, later.day) < (earlier.month, earlier.day))


def ensure_aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def fhir_datetime(moment: datetime) -> str:
    """An aware datetime as the R4B models write a FHIR dateTime: ISO 8601, "Z" for UTC."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
