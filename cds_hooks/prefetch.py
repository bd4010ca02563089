"""Prefetch per CDS Hooks 2.0.1: use what came, fetch what is absent or failed, 412 when it cannot be had.

- key present with a resource or Bundle: used as is;
- key present with null: the CDS Client found no data (nothing to fetch);
- key absent, or present with an OperationOutcome (a failed prefetch): fetched from `fhirServer` with
  `fhirAuthorization`, under the call's deadline; without a fhirServer, or when the server fails,
  the required data cannot be had and the service answers 412.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qsl

from cds_hooks.errors import HttpError
from cds_hooks.services import PREFETCH_KEYS, prefetch_templates
from hofhir.adapters.fhirclient import BearerToken, FhirClient, FhirDeadlineExceeded, FhirError
from hofhir.knowledge import Knowledge

TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


class DeadlineMissed(Exception):
    """Fetching absent prefetch ran past the hook call's deadline."""


class PrefetchUnavailable(HttpError):
    def __init__(self, message: str) -> None:
        super().__init__(412, message)


def fill_template(template: str, request: dict[str, Any]) -> str:
    """Replace prefetch tokens ({{context.patientId}}, {{userPractitionerId}} …) with the request's values."""
    context = request.get("context") or {}
    user = str(context.get("userId") or "")

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("context."):
            found = context.get(name.split(".", 1)[1])
            if isinstance(found, str | int):
                return str(found)
            raise PrefetchUnavailable(f"prefetch token {{{{{name}}}}} has no value in the request context")
        for kind in ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson"):
            if name == f"user{kind}Id" and user.startswith(f"{kind}/"):
                return user.split("/", 1)[1]
        raise PrefetchUnavailable(f"prefetch token {{{{{name}}}}} cannot be filled from this request")

    return TOKEN.sub(value, template)


def _failed(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def missing_keys(prefetch: dict[str, Any]) -> list[str]:
    """Keys the rules need that are absent or came back as a failed prefetch (an OperationOutcome)."""
    return [key for key in PREFETCH_KEYS if key not in prefetch or _failed(prefetch[key])]


def fetch(client: FhirClient, query: str, deadline: float) -> Any:
    """Run one filled prefetch template: a read (Type/id) or a search (Type?params) gathered into one Bundle."""
    path, _, qs = query.partition("?")
    if not qs and "/" in path:
        rtype, rid = path.split("/", 1)
        return client.read(rtype, rid, deadline=deadline)
    resources = client.search(path, parse_qsl(qs, keep_blank_values=True), deadline=deadline)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def resolve_prefetch(
    request: dict[str, Any], k: Knowledge, deadline: float | None = None, attempt_timeout_s: float = 2.0
) -> dict[str, Any]:
    """The complete prefetch for a request; raises PrefetchUnavailable (412) when data cannot be had."""
    given = request.get("prefetch") or {}
    prefetch = dict(given) if isinstance(given, dict) else {}
    wanted = missing_keys(prefetch)
    if not wanted:
        return prefetch
    server = request.get("fhirServer")
    if not isinstance(server, str) or not server:
        raise PrefetchUnavailable(
            f"required prefetch missing or failed ({', '.join(wanted)}) and the request names no fhirServer"
        )
    auth = request.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, dict) else None
    deadline = deadline if deadline is not None else time.monotonic() + 5.0
    templates = prefetch_templates(k)
    try:
        client = FhirClient(server, auth=BearerToken(token) if token else None, timeout=attempt_timeout_s, retries=1)
    except ValueError as exc:
        raise PrefetchUnavailable(f"fhirServer is not usable: {exc}") from exc
    with client:
        for key in wanted:
            query = fill_template(templates[key], request)
            try:
                prefetch[key] = fetch(client, query, deadline)
            except FhirDeadlineExceeded as exc:
                raise DeadlineMissed(key) from exc
            except (FhirError, ValueError) as exc:  # ValueError: an id in the context that is not a FHIR id
                raise PrefetchUnavailable(f"could not fetch prefetch '{key}' from the fhirServer: {exc}") from exc
    return prefetch
