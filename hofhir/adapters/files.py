"""Reading FHIR from files: NDJSON folders (bulk-data exports, Synthea's output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from hofhir.fhir.read import InputError, Rejection


def ndjson_resources(folder: Path) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Every resource of every *.ndjson file in a folder; unreadable lines are recorded, not fatal."""
    out: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    files = sorted(folder.glob("*.ndjson"))
    if not files:
        raise InputError(f"{folder} has no .ndjson files")
    for path in files:
        with path.open("rb") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    res = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    rejected.append(Rejection(f"{path.name}:{lineno}", f"not valid JSON: {exc}"))
                    continue
                if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
                    out.append(res)
                else:
                    rejected.append(Rejection(f"{path.name}:{lineno}", "not a FHIR resource"))
    return out, rejected
