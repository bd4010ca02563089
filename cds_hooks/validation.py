"""The shape a CDS Hooks 2.0.1 request must have, per hook (the CDS Hooks library's hook definitions)."""

from __future__ import annotations

from typing import Any

from cds_hooks.errors import HttpError, describe

# hook -> (required context fields, optional context fields)
HOOK_CONTEXT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "patient-view": (("userId", "patientId"), ("encounterId",)),
    "encounter-start": (("userId", "patientId", "encounterId"), ()),
    "encounter-discharge": (("userId", "patientId", "encounterId"), ()),
    "order-select": (("userId", "patientId", "selections", "draftOrders"), ("encounterId",)),
    "order-sign": (("userId", "patientId", "draftOrders"), ("encounterId",)),
}


def bad(message: str, expression: str | None = None) -> HttpError:
    return HttpError(400, message, expression)


def check_request(body: Any, hook: str) -> dict[str, Any]:
    """The request as a dict, or HttpError(400) naming the first problem."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    if body.get("hook") != hook:
        got = "it is missing" if "hook" not in body else f"got {describe(body.get('hook'))}"
        raise bad(f"'hook' must be \"{hook}\" for this service ({got})", "hook")
    instance = body.get("hookInstance")
    if not isinstance(instance, str) or not instance.strip():
        raise bad("'hookInstance' (a UUID string) is required", "hookInstance")
    context = body.get("context")
    if not isinstance(context, dict):
        got = "it is missing" if "context" not in body else f"got {describe(context)}"
        raise bad(f"'context' must be an object ({got})", "context")
    required, _ = HOOK_CONTEXT[hook]
    for name in required:
        if name not in context or context[name] in (None, ""):
            raise bad(f"context.{name} is required for {hook}", f"context.{name}")
    for name in ("userId", "patientId", "encounterId"):
        if name in context and not isinstance(context[name], str):
            raise bad(f"context.{name} must be a string", f"context.{name}")
    if "selections" in context and not (
        isinstance(context["selections"], list) and all(isinstance(s, str) for s in context["selections"])
    ):
        raise bad("context.selections must be an array of strings", "context.selections")
    if "draftOrders" in context:
        drafts = context["draftOrders"]
        if not isinstance(drafts, dict) or drafts.get("resourceType") != "Bundle":
            raise bad("context.draftOrders must be a FHIR Bundle", "context.draftOrders")
        if not isinstance(drafts.get("entry", []), list):
            raise bad("context.draftOrders.entry must be an array", "context.draftOrders.entry")
    server = body.get("fhirServer")
    if server is not None and (not isinstance(server, str) or not server.startswith(("http://", "https://"))):
        raise bad("'fhirServer' must be an absolute http(s) URL", "fhirServer")
    auth = body.get("fhirAuthorization")
    if auth is not None:
        if server is None:
            raise bad("'fhirAuthorization' requires 'fhirServer'", "fhirAuthorization")
        if not isinstance(auth, dict):
            raise bad("'fhirAuthorization' must be an object", "fhirAuthorization")
        for name in ("access_token", "token_type", "expires_in", "scope", "subject"):
            if name not in auth:
                raise bad(f"fhirAuthorization.{name} is required", f"fhirAuthorization.{name}")
            wanted = (int, float) if name == "expires_in" else (str,)
            if not isinstance(auth[name], wanted) or isinstance(auth[name], bool):
                kind = "a number" if name == "expires_in" else "a string"
                raise bad(
                    f"fhirAuthorization.{name} must be {kind} (got {describe(auth[name])})", f"fhirAuthorization.{name}"
                )
        if str(auth.get("token_type")).lower() != "bearer":
            raise bad("fhirAuthorization.token_type must be 'Bearer'", "fhirAuthorization.token_type")
    prefetch = body.get("prefetch")
    if prefetch is not None and not isinstance(prefetch, dict):
        raise bad("'prefetch' must be an object", "prefetch")
    for key, value in (prefetch or {}).items():
        if value is not None and not (isinstance(value, dict) and isinstance(value.get("resourceType"), str)):
            raise bad(f"prefetch.{key} must be a FHIR resource or null", f"prefetch.{key}")
    return body


FEEDBACK_OUTCOMES = ("accepted", "overridden")


def check_feedback(body: Any) -> list[dict[str, Any]]:
    """The feedback items of a CDS Hooks 2.0.1 feedback request, or HttpError(400)."""
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list) or not body["feedback"]:
        raise bad("the body must be an object with a non-empty 'feedback' array")
    items: list[dict[str, Any]] = []
    for i, item in enumerate(body["feedback"]):
        where = f"feedback[{i}]"
        if not isinstance(item, dict):
            raise bad(f"{where} must be an object", where)
        if not isinstance(item.get("card"), str) or not item["card"]:
            raise bad(f"{where}.card (the card's uuid) is required", f"{where}.card")
        if item.get("outcome") not in FEEDBACK_OUTCOMES:
            raise bad(f"{where}.outcome must be 'accepted' or 'overridden'", f"{where}.outcome")
        if not isinstance(item.get("outcomeTimestamp"), str):
            raise bad(f"{where}.outcomeTimestamp is required", f"{where}.outcomeTimestamp")
        accepted = item.get("acceptedSuggestions")
        if item["outcome"] == "accepted":
            if accepted is not None and not (
                isinstance(accepted, list)
                and all(isinstance(a, dict) and isinstance(a.get("id"), str) for a in accepted)
            ):
                raise bad(f"{where}.acceptedSuggestions must be an array of {{id}}", f"{where}.acceptedSuggestions")
            if "overrideReason" in item:
                raise bad(f"{where}.overrideReason is only for an overridden outcome", f"{where}.overrideReason")
        else:
            if accepted:
                raise bad(
                    f"{where}.acceptedSuggestions is only for an accepted outcome", f"{where}.acceptedSuggestions"
                )
            reason = item.get("overrideReason")
            if reason is not None and not isinstance(reason, dict):
                raise bad(f"{where}.overrideReason must be an object", f"{where}.overrideReason")
        items.append(item)
    return items
