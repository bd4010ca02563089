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
