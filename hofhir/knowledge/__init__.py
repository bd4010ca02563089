"""The knowledge base: data files with their sources, loaded into typed objects.

Files (this folder, or an operator's edited copy named by HOFHIR_KNOWLEDGE; a file missing there is
taken from here): parameters.toml (thresholds, windows, ranges, regimens, the version), catalogue.toml
(seed evidence), literature.toml ([LIT] items), valuesets.toml + ho-terminology.json (codes),
cards.toml (card texts).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, TypeVar

from hofhir.knowledge.terminology import ICD10CM, Terminology, ValueSet, canonical_system, normalise_code

PACKAGE_DIR = Path(__file__).resolve().parent
FILES = (
    "parameters.toml",
    "catalogue.toml",
    "literature.toml",
    "valuesets.toml",
    "ho-terminology.json",
    "cards.toml",
)


T = TypeVar("T")
DERIVED_ENTRIES = 1024


class KnowledgeError(ValueError):
    """The knowledge base cannot be loaded (a missing file, bad TOML, an unknown concept name)."""


@dataclass(frozen=True)
class EvidenceItem:
    id: str
    statement: str
    source: str  # S1, S2, S1+S2, LIT
    contested: bool
    quotes: tuple[str, ...]
    text: str
    area: str

    @property
    def is_literature(self) -> bool:
        return self.source == "LIT"


@dataclass(frozen=True)
class Knowledge:
    version: str
    parameters: dict[str, Any]
    evidence: dict[str, EvidenceItem]
    terminology: Terminology
    cards: dict[str, Any]
    location: str
    # What is derived from this knowledge alone and asked for on every call (a card's evidence section for
    # a set of rule IDs...), made on first use. Never copied by dataclasses.replace: a changed knowledge
    # value starts with nothing derived.
    derived: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def derive(self, key: Any, make: Callable[[], T]) -> T:
        """`make()`, once per key for this knowledge value (at most DERIVED_ENTRIES keys are kept)."""
        try:
            found: T = self.derived[key]
        except KeyError:
            found = make()
            if len(self.derived) >= DERIVED_ENTRIES:
                self.derived.clear()
            self.derived[key] = found
        return found

    def param(self, section: str, key: str) -> Any:
        try:
            return self.parameters[section][key]
        except KeyError as exc:
            raise KnowledgeError(f"parameters.toml has no [{section}] {key}") from exc

    def window(self, key: str) -> int:
        return int(self.param("windows", key))

    def cite(self, ident: str) -> EvidenceItem:
        try:
            return self.evidence[ident]
        except KeyError as exc:
            raise KnowledgeError(f"unknown catalogue ID {ident!r}") from exc


def _read_file(name: str, folder: Path | None) -> bytes:
    for base in (folder, PACKAGE_DIR):
        if base is not None and (base / name).is_file():
            return (base / name).read_bytes()
    raise KnowledgeError(f"knowledge file {name} not found")


@cache
def r4b_shapes() -> dict[str, Any]:
    """The R4B element table (`r4b_shapes.json`, written by tools/r4b_shapes.py from the installed models)."""
    data: dict[str, Any] = json.loads(_read_file("r4b_shapes.json", None))
    return data


def _toml(name: str, folder: Path | None) -> dict[str, Any]:
    try:
        return tomllib.loads(_read_file(name, folder).decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise KnowledgeError(f"{name}: {exc}") from exc


def _build_valuesets(spec: dict[str, Any], terminology_json: list[dict[str, Any]]) -> dict[str, ValueSet]:
    concepts = {c["concept"]: c["codes"] for c in terminology_json}
    out: dict[str, ValueSet] = {}
    for name, body in spec.items():
        vs = ValueSet(name=name, title=str(body.get("title", name)))
        entries: list[tuple[str, str, bool, str]] = []
        for concept in body.get("concepts", []):
            if concept not in concepts:
                raise KnowledgeError(f"valuesets.toml [{name}]: no concept {concept!r} in ho-terminology.json")
            for coding in concepts[concept]:
                # Unresolved placeholders have an empty code; unverified codes are not used (ho-knowledge 3).
                if not coding.get("code") or not coding.get("verified"):
                    continue
                prefix = "prefix" in str(coding.get("source", ""))
                entries.append((coding["system"], coding["code"], prefix, f"{concept}: {coding.get('source', '')}"))
        for extra in body.get("add", []):
            entries.append((extra["system"], extra["code"], extra.get("match") == "prefix", str(extra.get("why", ""))))
        excluded = {str(x) for x in body.get("exclude", [])}
        for system, code, prefix, why in entries:
            sys = canonical_system(system)
            norm = normalise_code(sys, code)
            if code in excluded:
                continue
            vs.sources[f"{sys}|{code}"] = why
            if sys == ICD10CM and prefix:
                vs.prefixes.add(norm)
            elif sys == ICD10CM and len(norm) == 7 and norm[0] in "ST":
                vs.prefixes.add(norm[:6])  # any 7th character
            else:
                vs.exact.add((sys, norm))
        for code in excluded:
            if re.match(r"^[A-Z]\d", code):
                vs.excluded_prefixes.add(normalise_code(ICD10CM, code))
            else:
                vs.excluded_codes |= {
                    (s, code) for s in (canonical_system(a) for a in ("snomed", "loinc", "rxnorm", "cpt"))
                }
        names = tuple(str(n) for n in body.get("names", []))
        if names:
            vs.names = names
            vs.name_pattern = re.compile(
                r"(?<![A-Za-z0-9])(?:" + "|".join(re.escape(n) for n in names) + r")(?![A-Za-z0-9])",
                re.IGNORECASE,
            )
        out[name] = vs
    return out


def load(folder: str | os.PathLike[str] | None = None) -> Knowledge:
    """Load the knowledge base from `folder` (files missing there come from the packaged copy)."""
    base = Path(folder) if folder else None
    if base is not None and not base.is_dir():
        raise KnowledgeError(f"HOFHIR_KNOWLEDGE={base} is not a folder")
    parameters = _toml("parameters.toml", base)
    evidence: dict[str, EvidenceItem] = {}
    for name in ("catalogue.toml", "literature.toml"):
        for ident, item in _toml(name, base).items():
            evidence[ident] = EvidenceItem(
                id=ident,
                statement=str(item.get("statement", "")),
                source=str(item.get("source", "")),
                contested=bool(item.get("contested", False)),
                quotes=tuple(item.get("quotes", [])),
                text=str(item.get("text", "")),
                area=str(item.get("area", "")),
            )
    try:
        terminology_json = json.loads(_read_file("ho-terminology.json", base))
    except json.JSONDecodeError as exc:
        raise KnowledgeError(f"ho-terminology.json: {exc}") from exc
    valuesets = _build_valuesets(_toml("valuesets.toml", base), terminology_json)
    version = str(parameters.get("version", ""))
    if not version:
        raise KnowledgeError("parameters.toml: no version")
    return Knowledge(
        version=version,
        parameters=parameters,
        evidence=evidence,
        terminology=Terminology(valuesets),
        cards=_toml("cards.toml", base),
        location=str(base or PACKAGE_DIR),
    )


@lru_cache(maxsize=4)
def _cached(folder: str) -> Knowledge:
    return load(folder or None)


def knowledge_at(folder: str | None) -> Knowledge:
    """The knowledge base in `folder` (Settings.knowledge, HOFHIR_KNOWLEDGE), else the packaged one; loaded once."""
    return _cached(folder or "")


def default_knowledge() -> Knowledge:
    """The packaged knowledge base (loaded once); the service and the worker use `knowledge_at(settings.knowledge)`."""
    return knowledge_at(None)
