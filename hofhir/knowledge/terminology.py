"""Code systems and value-set matching.

ICD-10-CM codes are compared without dots and case-insensitively; codes the terminology marks as a
category match their descendants by prefix; 7-character injury codes (chapters S and T) match whatever
7th character (encounter A/D/S, fracture healing B..S) the record carries. SNOMED CT, LOINC, CPT and
RxNorm match exactly (no hierarchy is available offline). Medication and order texts can also match a
value set by ingredient or procedure name, as whole words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

ALIASES: dict[str, str] = {
    "icd10cm": ICD10CM,
    "snomed": SNOMED,
    "loinc": LOINC,
    "cpt": CPT,
    "rxnorm": RXNORM,
}

# Other spellings of the same systems seen in real EHR data (OIDs, http/https, trailing slashes).
_SYSTEM_SYNONYMS: dict[str, str] = {
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    "http://hl7.org/fhir/sid/icd-10-us": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "urn:oid:2.16.840.1.113883.6.12": CPT,
    "http://www.ama-assn.org/go/cpt/": CPT,
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
}


def canonical_system(system: object) -> str:
    if not system or not isinstance(system, str):
        return ""
    return _canonical_system(system)


@lru_cache(maxsize=1024)  # a handful of system URIs, read for every coding of every resource
def _canonical_system(system: str) -> str:
    system = system.strip()
    if system in ALIASES:
        return ALIASES[system]
    system = _SYSTEM_SYNONYMS.get(system, system)
    if system.startswith("https://"):
        system = "http://" + system[len("https://") :]
    return system.rstrip("/") if system != CPT else system


def normalise_code(system: str, code: str) -> str:
    code = code.strip()
    if system == ICD10CM:
        return code.replace(".", "").replace(" ", "").upper()
    return code


def _icd_stem(code: str) -> str | None:
    """The 6-character stem of a 7-character S/T code (whose 7th character is the encounter extension)."""
    if len(code) == 7 and code[0] in "ST":
        return code[:6]
    return None


# Distinct (system, code) pairs and texts each terminology remembers the matches of (each memo starts
# again when full), and the longest text remembered.
MEMO_ENTRIES = 16_384
MEMO_TEXT_CHARS = 512


def _remember(memo: dict[Any, frozenset[str]], key: Any, found: frozenset[str]) -> None:
    if len(memo) >= MEMO_ENTRIES:
        memo.clear()
    memo[key] = found


@dataclass
class ValueSet:
    name: str
    title: str
    exact: set[tuple[str, str]] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)  # normalised ICD-10-CM prefixes
    excluded_codes: set[tuple[str, str]] = field(default_factory=set)
    excluded_prefixes: set[str] = field(default_factory=set)
    names: tuple[str, ...] = ()
    name_pattern: re.Pattern[str] | None = None
    sources: dict[str, str] = field(default_factory=dict)  # "system|code" -> why it is here


class Terminology:
    """All value sets, indexed for matching a coding against every set at once."""

    def __init__(self, valuesets: Mapping[str, ValueSet]) -> None:
        self.valuesets = dict(valuesets)
        self._exact: dict[tuple[str, str], set[str]] = {}
        self._prefix: dict[str, set[str]] = {}
        for vs in self.valuesets.values():
            for key in vs.exact:
                self._exact.setdefault(key, set()).add(vs.name)
            for prefix in vs.prefixes:
                self._prefix.setdefault(prefix, set()).add(vs.name)
        self._named = [vs for vs in self.valuesets.values() if vs.name_pattern is not None]
        self._coding_memo: dict[tuple[str | None, str], frozenset[str]] = {}
        # Texts too: the same few medication and order texts come in call after call.
        self._text_memo: dict[str, frozenset[str]] = {}

    def sets_for_coding(self, system: Any, code: Any) -> frozenset[str]:
        """Names of the value sets a single coding belongs to.

        Remembered per (system, code): a chart repeats the same few codes, and the answer depends on
        nothing else. Bounded by MEMO_ENTRIES.
        """
        if not code or not isinstance(code, str) or not (system is None or isinstance(system, str)):
            return frozenset()
        key = (system, code)
        found = self._coding_memo.get(key)
        if found is None:
            found = frozenset(self._sets_for_coding(system, code))
            _remember(self._coding_memo, key, found)
        return found

    def _sets_for_coding(self, system: str | None, code: str) -> set[str]:
        sys = canonical_system(system)
        norm = normalise_code(sys, code)
        found = set(self._exact.get((sys, norm), ()))
        if sys == ICD10CM:
            for end in range(3, len(norm) + 1):
                found |= self._prefix.get(norm[:end], set())
        if found:
            found = {name for name in found if not self._excluded(self.valuesets[name], sys, norm)}
        return found

    @staticmethod
    def _excluded(vs: ValueSet, system: str, code: str) -> bool:
        if (system, code) in vs.excluded_codes:
            return True
        return system == ICD10CM and any(code.startswith(p) for p in vs.excluded_prefixes)

    def sets_for_text(self, text: str, only: Iterable[str] | None = None) -> set[str]:
        """Value sets whose names occur in free text (medication names, order texts)."""
        if not text:
            return set()
        found = self._text(text)
        return set(found) if only is None else set(only) & found

    def _text(self, text: str) -> frozenset[str]:
        found = self._text_memo.get(text)
        if found is None:
            found = frozenset(
                vs.name for vs in self._named if vs.name_pattern is not None and vs.name_pattern.search(text)
            )
            if len(text) <= MEMO_TEXT_CHARS:
                _remember(self._text_memo, text, found)
        return found

    def sets_for_concept(self, concept: Any, use_text: bool = False) -> set[str]:
        """Value sets a CodeableConcept (as a dict) belongs to, by any coding (and by text if asked)."""
        if not isinstance(concept, dict):
            return set()
        found: set[str] = set()
        texts: list[str] = []
        codings = concept.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, dict):
                    found |= self.sets_for_coding(coding.get("system"), coding.get("code"))
                    display = coding.get("display")
                    if use_text and isinstance(display, str):
                        texts.append(display)
        text = concept.get("text")
        if use_text and isinstance(text, str):
            texts.append(text)
        for t in texts:
            if t:
                found |= self._text(t)
        return found

    def codes(self, name: str) -> set[tuple[str, str]]:
        return set(self.valuesets[name].exact)


# ---------- ICD-10-CM code structure the rules read ----------


def icd_codes(concept: Any) -> list[str]:
    """Normalised ICD-10-CM codes of a CodeableConcept dict."""
    out: list[str] = []
    if isinstance(concept, dict) and isinstance(concept.get("coding"), list):
        for c in concept["coding"]:
            if isinstance(c, dict) and canonical_system(c.get("system")) == ICD10CM and isinstance(c.get("code"), str):
                out.append(normalise_code(ICD10CM, c["code"]))
    return out


def burn_is_full_thickness(code: str) -> bool:
    """T20-T25 with 5th character 3 (burn) or 7 (corrosion) is third degree; T31/T32 with >= 10 % third degree."""
    if len(code) >= 4 and code[0] == "T" and code[1:3].isdigit():
        cat = int(code[1:3])
        if 20 <= cat <= 25 and len(code) >= 4:
            return code[3] in "37"
        if cat in (31, 32) and len(code) >= 5 and code[4].isdigit():
            return int(code[4]) >= 1
    return False


def burn_tbsa_decile(code: str) -> int | None:
    """T31.x / T32.x: the 4th character is the total body surface decile (0 = < 10 %, 9 = >= 90 %)."""
    if len(code) >= 4 and code[:3] in ("T31", "T32") and code[3].isdigit():
        return int(code[3])
    return None


def tbi_loc_over_24h(code: str) -> bool:
    """S06 codes: a 6th character of 5-8 means loss of consciousness over 24 hours (or death before return)."""
    return code.startswith("S06") and len(code) >= 6 and code[5] in "5678"
