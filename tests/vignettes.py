"""The shared clinical vignettes and the checks of their expect files (shared/vignettes/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.contract import response_problems

SHARED = Path(__file__).resolve().parents[2] / "shared"
VIGNETTES = SHARED / "vignettes"


def shared_dir() -> Path:
    """The shared/ folder beside the repo (CI clones the repo with shared/ next to it)."""
    return SHARED


def cases() -> list[str]:
    return sorted(p.name.split(".")[0] for p in VIGNETTES.glob("*.expect.json"))


def load(case: str) -> tuple[dict[str, Any], dict[str, Any]]:
    request = json.loads((VIGNETTES / f"{case}.request.json").read_text())
    expect = json.loads((VIGNETTES / f"{case}.expect.json").read_text())
    return request, expect


def _codes(resource: dict[str, Any]) -> set[str]:
    """Every code in any coding of a resource (any system)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "coding" in node and isinstance(node["coding"], list):
                found.update(str(c.get("code")) for c in node["coding"] if isinstance(c, dict))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(resource)
    return found


INDOMETHACIN_CODES = ["5781", "197817", "310992"]


def spec_1_1(expect: dict[str, Any]) -> dict[str, Any]:
    """An expect file written for ho-rules 1.0 whose expectation ho-rules 1.1 reverses, adjusted to 1.1.

    s04 (generated 2026-11-21, before 1.1) expects an indomethacin suggestion for a man of 70. ho-rules 1.1
    §5a says indomethacin is not suggested from age 65 (LIT-BEERS-INDOMETHACIN) and §9 forbids suggesting a
    drug the screen rules out, so under 1.1 the card must suggest radiotherapy only and cite the Beers item.
    Nothing else in the case changes. (shared/ is read-only: the adjustment lives here, stated.)
    """
    if expect.get("case_id") != "s04":
        return expect
    adjusted = json.loads(json.dumps(expect))
    groups = adjusted.get("suggestion_codes", {}).get("ho-prophylaxis", [])
    adjusted["suggestion_codes"]["ho-prophylaxis"] = [g for g in groups if g != INDOMETHACIN_CODES]
    adjusted.setdefault("suggestion_codes_absent", {})["ho-prophylaxis"] = INDOMETHACIN_CODES
    adjusted["rules_include"]["ho-prophylaxis"] = [
        *adjusted["rules_include"]["ho-prophylaxis"],
        "LIT-BEERS-INDOMETHACIN",
    ]
    return adjusted


def check(body: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    """Every way `body` (a CDS Hooks response) fails the expect file; empty when it passes."""
    expect = spec_1_1(expect)
    problems = list(response_problems(body))
    cards = body.get("cards", [])
    by_topic = {c["source"]["topic"]["code"]: c for c in cards}
    if expect.get("no_cards") and cards:
        problems.append(f"expected no cards, got {sorted(by_topic)}")
    for item in expect.get("topics_present", []):
        topic = item if isinstance(item, str) else item["topic"]
        card = by_topic.get(topic)
        if card is None:
            problems.append(f"missing {topic}")
            continue
        if isinstance(item, dict):
            if "indicator" in item and card["indicator"] != item["indicator"]:
                problems.append(f"{topic}: indicator {card['indicator']} != {item['indicator']}")
            if (
                "riskLevel" in item
                and card["extension"]["org.hofhir.explanation"].get("riskLevel") != item["riskLevel"]
            ):
                problems.append(f"{topic}: riskLevel {card['extension']['org.hofhir.explanation'].get('riskLevel')}")
    for topic in expect.get("topics_absent", []):
        if topic in by_topic:
            problems.append(f"unexpected {topic}")
    for topic, rules in expect.get("rules_include", {}).items():
        have = set(by_topic.get(topic, {}).get("extension", {}).get("org.hofhir.explanation", {}).get("rules", []))
        if not set(rules) <= have:
            problems.append(f"{topic}: rules {sorted(set(rules) - have)} missing")
    for topic, pops in expect.get("populations_include", {}).items():
        have = set(
            by_topic.get(topic, {}).get("extension", {}).get("org.hofhir.explanation", {}).get("populations", [])
        )
        if not set(pops) <= have:
            problems.append(f"{topic}: populations {sorted(set(pops) - have)} missing")
    for topic, groups in expect.get("suggestion_codes", {}).items():
        resources = [
            a.get("resource", {}) for s in by_topic.get(topic, {}).get("suggestions", []) for a in s["actions"]
        ]
        for group in groups:
            if not any(_codes(r) & set(group) for r in resources):
                problems.append(f"{topic}: no suggestion with one of {group}")
    for topic, codes in expect.get("suggestion_codes_absent", {}).items():
        resources = [
            a.get("resource", {}) for s in by_topic.get(topic, {}).get("suggestions", []) for a in s["actions"]
        ]
        if any(_codes(r) & set(codes) for r in resources):
            problems.append(f"{topic}: suggests one of {codes}")
    for topic in expect.get("overrideReasons_required", []):
        if not by_topic.get(topic, {}).get("overrideReasons"):
            problems.append(f"{topic}: no overrideReasons")
    if "riskLevel_if_present" in expect and "ho-risk" in by_topic:
        level = by_topic["ho-risk"]["extension"]["org.hofhir.explanation"].get("riskLevel")
        if level != expect["riskLevel_if_present"]:
            problems.append(f"ho-risk riskLevel {level} != {expect['riskLevel_if_present']}")
    return problems
