"""Value-set matching (hofhir.knowledge.terminology) with the real knowledge base: ICD-10-CM structure, systems, names."""

from __future__ import annotations

import pytest

from hofhir.knowledge import Knowledge, _build_valuesets
from hofhir.knowledge.terminology import (
    CPT,
    ICD10CM,
    LOINC,
    RXNORM,
    SNOMED,
    Terminology,
    burn_is_full_thickness,
    burn_tbsa_decile,
    canonical_system,
    icd_codes,
    normalise_code,
    tbi_loc_over_24h,
)


def icd_sets(kb: Knowledge, code: str) -> set[str]:
    return kb.terminology.sets_for_coding(ICD10CM, code)


# ---------- ICD-10-CM prefixes and the 7th character ----------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("S14.111A", {"sci", "sci_complete", "sci_cervical"}),
        ("S24.111A", {"sci", "sci_complete", "sci_thoracic"}),
        ("S34.121A", {"sci", "sci_incomplete", "sci_lumbosacral"}),
        ("S34.131A", {"sci", "sci_complete", "sci_lumbosacral"}),
        ("G82.21", {"sci", "sci_complete"}),
        ("G82.54", {"sci", "sci_incomplete", "sci_cervical"}),
    ],
)
def test_sci_codes_fall_in_population_completeness_and_level_sets(kb: Knowledge, code: str, expected: set[str]) -> None:
    assert expected <= icd_sets(kb, code)


def test_sci_incomplete_code_is_not_complete(kb: Knowledge) -> None:
    sets = icd_sets(kb, "S14.121A")
    assert "sci_incomplete" in sets
    assert "sci_complete" not in sets


def test_category_code_matches_descendants_by_prefix(kb: Knowledge) -> None:
    assert "tbi" in icd_sets(kb, "S06.5X5A")  # S06 is a category in the terminology
    assert "stroke" in icd_sets(kb, "I63.9")
    assert "pressure_ulcer" in icd_sets(kb, "L89.154")


def test_prefix_does_not_match_a_sibling_category(kb: Knowledge) -> None:
    assert "tbi" not in icd_sets(kb, "S07.0XXA")  # crushing injury of face, not S06
    assert "sci" not in icd_sets(kb, "S14.2XXA")  # nerve root of cervical spine, not spinal cord (S14.1)


@pytest.mark.parametrize("seventh", ["A", "D", "S"])
def test_seven_character_injury_code_matches_with_any_encounter_character(kb: Knowledge, seventh: str) -> None:
    # The terminology lists S06.2X6A; S06.2X6D (subsequent encounter) is the same injury.
    assert "tbi" in icd_sets(kb, f"S06.2X6{seventh}")


def _only(code: str, **extra: str) -> Terminology:
    """A terminology with one value set `x` listing one code (as valuesets.toml `add` would)."""
    return Terminology(_build_valuesets({"x": {"add": [{"system": "icd10cm", "code": code, **extra}]}}, []))


@pytest.mark.parametrize(("listed", "recorded"), [("S06.2X6A", "S06.2X6D"), ("T24.311A", "T24.311S")])
def test_seven_character_code_listed_as_initial_encounter_matches_other_encounters(listed: str, recorded: str) -> None:
    assert _only(listed).sets_for_coding(ICD10CM, recorded) == {"x"}


def test_seven_character_code_does_not_match_another_sixth_character() -> None:
    terminology = _only("S06.2X6A")
    assert terminology.sets_for_coding(ICD10CM, "S06.2X5A") == set()
    assert terminology.sets_for_coding(ICD10CM, "S06.2X") == set()


def test_billable_code_listed_without_prefix_flag_matches_exactly_not_its_children() -> None:
    terminology = _only("G82.21")
    assert terminology.sets_for_coding(ICD10CM, "G82.21") == {"x"}
    assert terminology.sets_for_coding(ICD10CM, "G82.2") == set()
    assert _only("G82.2", match="prefix").sets_for_coding(ICD10CM, "G82.21") == {"x"}


@pytest.mark.parametrize("spelling", ["S24.111A", "s24.111a", "S24111A", " S24.111A ", "s24 111a"])
def test_icd_codes_match_without_dots_spaces_or_case(kb: Knowledge, spelling: str) -> None:
    assert icd_sets(kb, spelling) == icd_sets(kb, "S24.111A")
    assert "sci_complete" in icd_sets(kb, spelling)


def test_normalise_code_touches_only_icd10cm() -> None:
    assert normalise_code(ICD10CM, "m61.251") == "M61251"
    assert normalise_code(LOINC, "6768-6") == "6768-6"
    assert normalise_code(SNOMED, " 90584004 ") == "90584004"


def test_icd_codes_of_a_concept_are_normalised_and_ignore_other_systems() -> None:
    concept = {
        "coding": [
            {"system": ICD10CM, "code": "s06.2x6a"},
            {"system": SNOMED, "code": "127295002"},
            {"system": "urn:oid:2.16.840.1.113883.6.90", "code": "T31.32"},
            {"system": ICD10CM},  # no code
            "not a coding",
        ]
    }
    assert icd_codes(concept) == ["S062X6A", "T3132"]
    assert icd_codes(None) == []


# ---------- HO: M61.x, not FOP, not calcification ----------


@pytest.mark.parametrize("code", ["M61.051", "M61.251", "M61.359", "M61.551", "M61.9"])
def test_acquired_ho_codes_are_ho(kb: Knowledge, code: str) -> None:
    assert "ho" in icd_sets(kb, code)


@pytest.mark.parametrize("code", ["M61.10", "M61.15", "M61.19", "M61.40", "M61.451"])
def test_fop_and_calcification_without_ossification_are_not_ho(kb: Knowledge, code: str) -> None:
    assert "ho" not in icd_sets(kb, code)


def test_postoperative_ho_snomed_is_ho(kb: Knowledge) -> None:
    assert "ho" in kb.terminology.sets_for_coding(SNOMED, "444748003")


# ---------- spasticity vs spasm ----------


@pytest.mark.parametrize("code", ["R25.2", "M62.838"])
def test_spasm_codes_are_not_spasticity(kb: Knowledge, code: str) -> None:
    assert "spasticity" not in icd_sets(kb, code)


def test_spasticity_snomed_is_spasticity(kb: Knowledge) -> None:
    assert "spasticity" in kb.terminology.sets_for_coding(SNOMED, "221360009")


# ---------- medication and order names ----------


def test_baclofen_product_is_found_by_ingredient_name_in_its_display(kb: Knowledge) -> None:
    med = {"coding": [{"system": RXNORM, "code": "197446", "display": "Baclofen 10 MG Oral Tablet"}]}
    assert "antispasticity" not in kb.terminology.sets_for_concept(med)  # the SCD code itself is not listed
    assert "antispasticity" in kb.terminology.sets_for_concept(med, use_text=True)


def test_medication_text_names_match_as_whole_words_only(kb: Knowledge) -> None:
    t = kb.terminology
    assert "anticoagulant" in t.sets_for_text("Enoxaparin 40 MG/0.4 ML Prefilled Syringe")
    assert "nsaid" in t.sets_for_text("INDOMETHACIN 25 mg capsule")
    assert "antispasticity" not in t.sets_for_text("baclofenex 10 mg")  # not a whole word
    assert "rom_therapy" in t.sets_for_text("CPM machine to the right hip")
    assert "rom_therapy" not in t.sets_for_text("Compliance review")


def test_aspirin_is_not_an_ho_prophylaxis_nsaid(kb: Knowledge) -> None:
    assert "nsaid" not in kb.terminology.sets_for_coding(RXNORM, "1191")
    assert "aspirin" in kb.terminology.sets_for_coding(RXNORM, "1191")
    assert "nsaid" not in kb.terminology.sets_for_text("Aspirin 81 MG Oral Tablet")


def test_etidronate_has_no_code_but_is_matched_by_name(kb: Knowledge) -> None:
    assert "etidronate" in kb.terminology.sets_for_text("Etidronate Disodium 400 MG Oral Tablet")


def test_text_matching_can_be_limited_to_some_sets(kb: Knowledge) -> None:
    text = "indomethacin with enoxaparin"
    assert kb.terminology.sets_for_text(text, only=["anticoagulant"]) == {"anticoagulant"}


# ---------- code systems ----------


@pytest.mark.parametrize(
    ("system", "canonical"),
    [
        ("urn:oid:2.16.840.1.113883.6.90", ICD10CM),
        ("http://hl7.org/fhir/sid/icd-10-us", ICD10CM),
        ("urn:oid:2.16.840.1.113883.6.96", SNOMED),
        ("https://snomed.info/sct", SNOMED),
        ("http://snomed.info/sct/", SNOMED),
        ("urn:oid:2.16.840.1.113883.6.1", LOINC),
        ("urn:oid:2.16.840.1.113883.6.12", CPT),
        ("http://www.ama-assn.org/go/cpt/", CPT),
        ("urn:oid:2.16.840.1.113883.6.88", RXNORM),
        ("snomed", SNOMED),
    ],
)
def test_other_spellings_of_a_system_are_the_same_system(system: str, canonical: str) -> None:
    assert canonical_system(system) == canonical


def test_oid_spelled_codings_match_value_sets(kb: Knowledge) -> None:
    t = kb.terminology
    assert "sci_complete" in t.sets_for_coding("urn:oid:2.16.840.1.113883.6.90", "S24.111A")
    assert "spasticity" in t.sets_for_coding("urn:oid:2.16.840.1.113883.6.96", "221360009")
    assert "alp" in t.sets_for_coding("urn:oid:2.16.840.1.113883.6.1", "6768-6")
    assert "ho_excision" in t.sets_for_coding("urn:oid:2.16.840.1.113883.6.12", "27036")


def test_a_code_in_the_wrong_system_does_not_match(kb: Knowledge) -> None:
    assert kb.terminology.sets_for_coding(LOINC, "221360009") == set()
    assert kb.terminology.sets_for_coding(SNOMED, "27036") == set()


@pytest.mark.parametrize("code", [None, "", 42, ["S24.111A"]])
def test_missing_or_non_string_codes_match_nothing(kb: Knowledge, code: object) -> None:
    assert kb.terminology.sets_for_coding(ICD10CM, code) == set()  # type: ignore[arg-type]


def test_concepts_that_are_not_dicts_match_nothing(kb: Knowledge) -> None:
    assert kb.terminology.sets_for_concept("S24.111A") == set()
    assert kb.terminology.sets_for_concept({"coding": "S24.111A"}) == set()


# ---------- burns and TBI by code structure ----------


@pytest.mark.parametrize(
    ("code", "full_thickness"),
    [
        ("T24.311A", True),  # third degree, right thigh
        ("T24.211A", False),  # second degree
        ("T24.011A", False),  # unspecified degree
        ("T25.721A", True),  # third-degree corrosion (5th character 7)
        ("T31.32", True),  # 30-39 % TBSA with 20-29 % third degree
        ("T31.30", False),  # 30-39 % TBSA, < 10 % third degree
        ("T32.11", True),  # corrosions, 10-19 % TBSA, 10-19 % third degree
        ("T30.0", False),  # burn of unspecified body region
        ("S24.111A", False),
    ],
)
def test_burn_full_thickness_by_fifth_character(code: str, full_thickness: bool) -> None:
    assert burn_is_full_thickness(normalise_code(ICD10CM, code)) is full_thickness


@pytest.mark.parametrize(
    ("code", "decile"),
    [("T31.32", 3), ("T31.0", 0), ("T31.99", 9), ("T32.40", 4), ("T24.311A", None), ("T3", None)],
)
def test_burn_extent_decile_from_t31_t32_fourth_character(code: str, decile: int | None) -> None:
    assert burn_tbsa_decile(normalise_code(ICD10CM, code)) == decile


@pytest.mark.parametrize(
    ("code", "over_24h"),
    [
        ("S06.2X6A", True),  # LOC > 24 h without return to the pre-existing level
        ("S06.2X6D", True),
        ("S06.5X5A", True),  # > 24 h with return
        ("S06.1X7A", True),  # death before regaining consciousness
        ("S06.3X8A", True),
        ("S06.2X4A", False),  # 6-24 h
        ("S06.0X1A", False),  # 30 min or less
        ("S06.2X9A", False),  # unspecified duration
        ("S06.2XAA", False),  # LOC status unknown
        ("S14.116A", False),  # not S06
        ("S06", False),
    ],
)
def test_tbi_loss_of_consciousness_over_24h_from_sixth_character(code: str, over_24h: bool) -> None:
    assert tbi_loc_over_24h(normalise_code(ICD10CM, code)) is over_24h
