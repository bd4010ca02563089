"""The rules catalogue, generated from the knowledge base (docs/rules.md and the service's /rules page).

python -m hofhir.knowledge.catalogue_doc > docs/rules.md
"""

from __future__ import annotations

from typing import Any

from hofhir.knowledge import Knowledge, default_knowledge


def catalogue(k: Knowledge) -> dict[str, Any]:
    """The catalogue as data: topics with their logic and citations, and every evidence item."""
    return {
        "knowledgeVersion": k.version,
        "topics": [
            {
                "code": code,
                "display": k.cards["topics"][code],
                "logic": rule["logic"],
                "cites": list(rule["cites"]),
            }
            for code, rule in k.cards["rules"].items()
        ],
        "evidence": [
            {
                "id": item.id,
                "statement": item.statement,
                "source": item.source,
                "contested": item.contested,
                "quotes": list(item.quotes),
                "text": item.text,
            }
            for item in k.evidence.values()
        ],
        "parameters": {key: value for key, value in k.parameters.items() if key != "version"},
    }


def markdown(k: Knowledge) -> str:
    data = catalogue(k)
    lines = [
        "# hofhir rules catalogue",
        "",
        f"Generated from the knowledge base {k.version} by `python -m hofhir.knowledge.catalogue_doc`; do not edit.",
        'S1 = "Heterotopic Ossification of the Hip" (clinical review); S2 = AAPM&R condition summary;',
        "[LIT] = literature outside the seeds, labelled as such on every card.",
        "",
        "## Card topics",
        "",
    ]
    for topic in data["topics"]:
        lines += [
            f"### `{topic['code']}`: {topic['display']}",
            "",
            topic["logic"],
            "",
            "Cites: " + ", ".join(f"[{c}](#{c.lower()})" for c in topic["cites"]),
            "",
        ]
    lines += ["## Evidence", ""]
    for item in data["evidence"]:
        flag = " (contested)" if item["contested"] else ""
        source = "[LIT]" if item["source"] == "LIT" else item["source"]
        lines += [f"### {item['id']}", "", f"**{item['statement']}**, {source}{flag}", ""]
        lines += [f"> {q}" for q in item["quotes"]] or [f"{item['text']}"]
        lines.append("")
    lines += [
        "## Parameters",
        "",
        "Thresholds and windows (`hofhir/knowledge/parameters.toml`, where each value's source is written).",
        "",
    ]
    for key, value in k.parameters["windows"].items():
        lines.append(f"- `windows.{key}` = {value}")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(default_knowledge()))
