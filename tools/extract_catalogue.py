"""Regenerate hofhir/knowledge/catalogue.toml from the shared evidence catalogue (ho-knowledge.md).

Run by hand when the clinical team changes ho-knowledge.md:
    python tools/extract_catalogue.py ../shared/clinical/ho-knowledge.md > hofhir/knowledge/catalogue.toml
Every quote is copied verbatim; the section heading becomes the item's area.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ID_RE = re.compile(r"^(R|N|D|L|I|DD|S|PX|RH|PO|E|P)-\d{2}$")
QUOTE_RE = re.compile(r"[\"“]([^\"”]+)[\"”]")
CONTESTED_WORDS = ("contested", "controversial", "conflict", "contradict")


def toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def main(path: str) -> None:
    area = ""
    items: dict[str, dict[str, object]] = {}
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.rstrip("\n")
        if line.startswith("### ") or line.startswith("**Prevention") or line.startswith("**Post-operative"):
            area = line.strip("#* ").strip()
            continue
        ident = statement = evidence = ""
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not cells or not ID_RE.match(cells[0]):
                continue
            ident, statement, evidence = cells[0], cells[1], cells[-1]
            if ident.startswith("PX-"):  # PX table: ID | item | evidence | note
                evidence = cells[2] + (f" (note: {cells[3]})" if len(cells) > 3 and cells[3] else "")
            if ident.startswith("PO-") or ident.startswith("E-"):
                statement = f"{cells[1]}: {cells[2]}"
        elif line.startswith("- "):
            m = re.match(r"^- (?:\*\*)?((?:R|N|D|L|I|DD|S|PX|RH|PO|E|P)-\d{2})(?:\*\*)?\s+(.*)$", line)
            if not m:
                continue
            ident, rest = m.group(1), m.group(2)
            head, _, _tail = rest.partition(":")
            statement, evidence = head.strip("* "), rest
        else:
            continue
        # The catalogue's own design notes ("Rule: …", "Card logic: …") are not evidence.
        quoted_part = re.split(r"\*\*(?:Rule|Card logic):|\bRule:|Card logic:", evidence)[0]
        quotes = QUOTE_RE.findall(quoted_part)
        body = re.sub(r"^[^:\"]*:\s*", "", evidence) if not evidence.startswith(("S1", "S2", '"')) else evidence
        if body.lstrip().startswith("S2") and "S1" not in body:
            seed = "S2"
        elif "S2" in body:
            seed = "S1+S2"
        else:
            seed = "S1"
        if not quotes and "same" in evidence:  # "same sentence as R-09": borrow the quote it points to
            ref = re.search(r"(?:R|N|D|L|I|DD|S|PX|RH|PO|E|P)-\d{2}", evidence)
            source_item = items.get(ref.group(0)) if ref else (list(items.values())[-1] if items else None)
            if source_item:
                quotes = list(source_item["quotes"])  # type: ignore[call-overload]
        contested = any(w in (statement + evidence).lower() for w in CONTESTED_WORDS)
        items[ident] = {
            "area": area,
            "statement": statement.replace("**", ""),
            "quotes": quotes,
            "source": seed,
            "contested": contested,
            "text": evidence.replace("**", ""),
        }

    print("# The evidence catalogue: every ID a rule or a card cites, with its source sentence.")
    print("# Generated from shared/clinical/ho-knowledge.md by tools/extract_catalogue.py; quotes are verbatim.")
    print('# S1 = "Heterotopic Ossification of the Hip" (clinical review); S2 = AAPM&R condition summary.')
    print("# contested = true: the catalogue marks the statement as controversial, contested or conflicting;")
    print("# cards present such statements as such.")
    for ident, item in items.items():
        print(f"\n[{toml_str(ident)}]")
        print(f"area = {toml_str(str(item['area']))}")
        print(f"statement = {toml_str(str(item['statement']))}")
        print(f"source = {toml_str(str(item['source']))}")
        print(f"contested = {'true' if item['contested'] else 'false'}")
        quotes = item["quotes"]
        assert isinstance(quotes, list)
        print("quotes = [" + ", ".join(toml_str(q) for q in quotes) + "]")
        print(f"text = {toml_str(str(item['text']))}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/clinical/ho-knowledge.md")
