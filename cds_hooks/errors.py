"""Errors as FHIR OperationOutcomes: every 4xx says what was wrong; nothing answers with a traceback."""

from __future__ import annotations

from typing import Any

# HTTP status -> OperationOutcome.issue.code
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    412: "incomplete",
    413: "too-costly",
    415: "not-supported",
    429: "throttled",
    500: "exception",
    503: "transient",
}


_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "true or false",
    int: "a number",
    float: "a number",
}


def describe(value: Any) -> str:
    """A client's value in plain words for an OperationOutcome (never a Python repr)."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:59] + "…"
        return f'"{shown}"' if shown.strip() else "an empty string"
    return _JSON_TYPES.get(type(value), "a JSON value")


class HttpError(Exception):
    def __init__(self, status: int, message: str, expression: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.expression = expression


def operation_outcome(
    status: int, message: str, expression: str | None = None, severity: str = "error"
) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": severity,
        "code": ISSUE_CODES.get(status, "processing"),
        "diagnostics": message,
    }
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
