"""The knowledge base is complete, consistent, and the generated catalogue is current."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hofhir.knowledge import KnowledgeError, load
from hofhir.knowledge.catalogue_doc import markdown

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "hofhir" / "clinical" / "rules", ROOT / "hofhir" / "knowledge" / "cards.toml"]


def test_version_and_every_file_load() -> None:
    k = load()
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d+", k.version)
    assert len(k.evidence) > 100
    assert {"sci", "tbi", "tha", "ho", "alp", "nsaid"} <= set(k.terminology.valuesets)


def test_every_catalogue_id_the_code_cites_exists() -> None:
    k = load()
    cited: set[str] = set()
    for source in SOURCES:
        files = source.glob("*.py") if source.is_dir() else [source]
        for path in files:
            cited |= set(
                re.findall(r"\b(?:R|N|D|L|I|DD|S|PX|RH|PO|E|P)-\d{2}\b|\bLIT-[A-Z0-9-]+[A-Z0-9]\b", path.read_text())
            )
    missing = sorted(c for c in cited if c not in k.evidence)
    assert missing == []


def test_every_seed_item_quotes_its_source() -> None:
    k = load()
    unquoted = sorted(i.id for i in k.evidence.values() if i.source != "LIT" and not i.quotes and i.id != "L-03")
    assert unquoted == []


def test_seed_quotes_are_verbatim_in_the_seed_documents() -> None:
    """Every quote attributed to S1/S2 occurs in the seeds (whitespace and the catalogue's ellipses aside)."""
    seeds_dir = ROOT.parent / "shared" / "seeds"
    if not seeds_dir.is_dir():
        pytest.fail("shared/seeds is missing beside the repo")
    # Seeds are wrapped text: a line ending in a hyphen continues the word ("12-\n18", "knee-\nextension").
    seeds = " ".join(re.sub(r"-\s*\n\s*", "-", p.read_text()) for p in seeds_dir.glob("*.txt"))
    norm = lambda s: re.sub(r"\s+", " ", s.replace("’", "'").replace("“", '"').replace("”", '"')).lower()  # noqa: E731
    haystack = norm(seeds)
    k = load()
    not_found = []
    for item in k.evidence.values():
        if item.source == "LIT":
            continue
        for quote in item.quotes:
            parts = [p.strip(" .,;") for p in norm(quote).split("…") if len(p.strip()) > 12]
            if any(p not in haystack for p in parts):
                not_found.append((item.id, quote[:60]))
    assert not_found == []


def test_docs_rules_md_is_generated_from_the_current_knowledge() -> None:
    assert (ROOT / "docs" / "rules.md").read_text() == markdown(load()) + "\n"


def test_an_operator_copy_overrides_a_threshold(tmp_path: Path) -> None:
    edited = (
        (ROOT / "hofhir" / "knowledge" / "parameters.toml")
        .read_text()
        .replace("threshold_celsius = 38.0", "threshold_celsius = 38.5")
    )
    (tmp_path / "parameters.toml").write_text(edited)
    k = load(tmp_path)
    assert k.param("fever", "threshold_celsius") == 38.5
    assert len(k.evidence) == len(load().evidence), "files absent from the copy come from the packaged base"


def test_a_broken_operator_copy_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "valuesets.toml").write_text('[x]\nconcepts = ["No such concept"]\n')
    with pytest.raises(KnowledgeError, match="No such concept"):
        load(tmp_path)
    with pytest.raises(KnowledgeError, match="not a folder"):
        load(tmp_path / "missing")


def test_unverified_and_empty_codes_are_not_used() -> None:
    k = load()
    all_codes = {code for vs in k.terminology.valuesets.values() for _, code in vs.exact}
    assert "128491006" not in all_codes  # unverified SNOMED "HO" candidate
    assert "" not in all_codes


def test_terminology_file_is_the_shared_one() -> None:
    shared = ROOT.parent / "shared" / "clinical" / "ho-terminology.json"
    assert shared.exists(), f"{shared} missing: the tests need ../shared beside the repository"
    if shared.exists():
        assert (ROOT / "hofhir" / "knowledge" / "ho-terminology.json").read_bytes() == shared.read_bytes()
    assert shutil.which("python3") is not None


# A quote that is only a label or a joint of the source text ("S2: ", " Caveat: ") was cut out of a longer
# passage by mistake: it reaches every card that cites the item and the /rules page.
_LABEL = re.compile(r"\b(?:S1|S2|S1\+S2|Caveat|Note|LIT)\s*:", re.IGNORECASE)


def test_no_catalogue_quote_is_a_fragment_or_a_label() -> None:
    k = load()
    bad = []
    for item in k.evidence.values():
        for quote in item.quotes:
            problems = []
            if quote != quote.strip():
                problems.append("leading or trailing space")
            if len(re.findall(r"\w", quote)) < 8:
                problems.append("too short to be a quote")
            if _LABEL.search(quote):
                problems.append("contains a source label")
            if quote.count("“") != quote.count("”") or quote.count('"') % 2:
                problems.append("unbalanced quotation marks")
            if problems:
                bad.append((item.id, quote, problems))
    assert bad == []


def test_the_fragment_check_catches_the_old_i01_quotes() -> None:
    for fragment in (" S2: ", " Caveat: ", "Three-phase 99m Technetium bone scan is the current “gold standard"):
        assert fragment != fragment.strip() or _LABEL.search(fragment) or fragment.count("“") != fragment.count("”")


def test_i01_quotes_the_two_seeds_and_the_caveat() -> None:
    quotes = load().cite("I-01").quotes
    assert quotes[0].startswith("Three-phase 99m Technetium bone scan is the current “gold standard” for earliest")
    assert "A triple phase bone scan is the main study used for confirmation of HO." in quotes
    assert "low specificity" in quotes
