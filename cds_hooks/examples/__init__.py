"""Built-in example patients (written by tools/make_examples.py), date shifting, and Bundle -> CDS Hooks request.

A clinical record is only true at the moment it describes ("injury 6 weeks ago"), so an example is shifted
to today when it is loaded: every FHIR date, dateTime and instant moves by the same amount (dates without
a time by whole days).
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any

import orjson

from hofhir.fhir.dates import ensure_aware

# The FHIR elements that carry a point in time in the resources hofhir reads (and Period.start/end).
DATE_KEYS = frozenset(
    {
        "birthDate",
        "deceasedDateTime",
        "onsetDateTime",
        "abatementDateTime",
        "recordedDate",
        "effectiveDateTime",
        "effectiveInstant",
        "issued",
        "performedDateTime",
        "authoredOn",
        "occurrenceDateTime",
        "start",
        "end",
        "date",
        "dateAsserted",
    }
)
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")
PREFETCH_KEYS = {
    "Condition": "conditions",
    "Observation": "observations",
    "Procedure": "procedures",
    "MedicationRequest": "medications",
}


def index() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(resources.files(__package__).joinpath("index.json").read_bytes())
    return data


def load(example_id: str, today: datetime) -> dict[str, Any] | None:
    """The example request with its dates shifted so that its recording moment is `today`; None if unknown."""
    meta = index()
    entry = next((e for e in meta["examples"] if e["id"] == example_id), None)
    if entry is None:
        return None
    body: dict[str, Any] = orjson.loads(resources.files(__package__).joinpath(entry["file"]).read_bytes())
    recorded = ensure_aware(datetime.fromisoformat(meta["recordedAt"]))
    shifted: dict[str, Any] = shift_dates(body, ensure_aware(today) - recorded)
    return shifted


def _shift_value(value: str, delta: timedelta) -> str:
    if DATE_ONLY.match(value):
        return (date.fromisoformat(value) + timedelta(days=round(delta.total_seconds() / 86400))).isoformat()
    if DATE_TIME.match(value):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return (parsed + delta).isoformat()
    return value


def shift_dates(doc: Any, delta: timedelta) -> Any:
    """A copy of `doc` with every date-carrying element moved by `delta`."""
    if isinstance(doc, dict):
        return {
            k: _shift_value(v, delta) if k in DATE_KEYS and isinstance(v, str) else shift_dates(v, delta)
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [shift_dates(v, delta) for v in doc]
    return doc


def latest_date(doc: Any) -> datetime | None:
    """The latest point in time the document holds (birth dates aside): its "now" when nothing else says."""
    found: list[datetime] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in DATE_KEYS and k != "birthDate" and isinstance(v, str):
                    try:
                        found.append(ensure_aware(datetime.fromisoformat(v.replace("Z", "+00:00"))))
                    except ValueError:
                        continue
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return max(found) if found else None


def request_from_resources(resources_: list[dict[str, Any]], hook: str = "patient-view") -> dict[str, Any]:
    """A CDS Hooks request whose prefetch holds these resources (the first Patient is the subject)."""
    patient = next((r for r in resources_ if r.get("resourceType") == "Patient"), None)
    pid = str(patient.get("id")) if patient and patient.get("id") else "unknown"
    bundles: dict[str, list[dict[str, Any]]] = {key: [] for key in PREFETCH_KEYS.values()}
    for r in resources_:
        key = PREFETCH_KEYS.get(str(r.get("resourceType")))
        subject = (r.get("subject") or r.get("patient") or {}).get("reference", "")
        if key and (not patient or not subject or subject.endswith(f"Patient/{pid}") or subject.endswith(pid)):
            bundles[key].append(r)
    prefetch: dict[str, Any] = {"patient": patient} if patient else {}
    for key, items in bundles.items():
        prefetch[key] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(items),
            "entry": [{"resource": r} for r in items],
        }
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/hofhir-preview", "patientId": pid},
        "prefetch": prefetch,
    }


def bundle_entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]
