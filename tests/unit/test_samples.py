"""Real sample data (read-only, /work/shared/fhir-samples) through the library and the CLI.

Every Synthea bundle, every HL7 R4 example (single resources and Bundles of every type) and every
patient of the NDJSON bulk export evaluates without error; every CDS Hooks response passes the card
checker; and the clinically interesting Synthea patients get the cards their records support.
Each file is parsed once per session for the library path (the CLI reads its file itself).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds_hooks.cards import render_response
from cds_hooks.cli import main as cli_main
from hofhir.adapters import files
from hofhir.clinical.evaluate import Evaluation, evaluate
from hofhir.fhir import read
from hofhir.knowledge import default_knowledge
from tests.builders import request
from tests.contract import response_problems

SAMPLES = Path("/work/shared/fhir-samples")
SYNTHEA_DIR = SAMPLES / "synthea-r4-bundles"
HL7_DIR = SAMPLES / "hl7-r4-examples"
NDJSON_DIR = SAMPLES / "synthea-v3-bulk-10-patients"
SYNTHEA = sorted(SYNTHEA_DIR.glob("*.json"))
HL7 = sorted(p for p in HL7_DIR.glob("*.json") if not p.name.startswith("_"))
CLI_NOW = "2026-11-21T00:00:00Z"
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def short(path: Path) -> str:
    """Cary_OHara_e39b….json -> Cary_OHara."""
    return "_".join(path.stem.split("_")[:-1]) if path.parent == SYNTHEA_DIR else path.stem


def synthea_path(name: str) -> Path:
    return next(p for p in SYNTHEA if short(p) == name)


@cache
def resources_of(path: Path) -> tuple[dict[str, Any], ...]:
    data = orjson.loads(path.read_bytes())
    return tuple(read.bundle_resources(data) if data.get("resourceType") == "Bundle" else [data])


@cache
def library_evaluation(path: Path, hook: str = "patient-view") -> Evaluation:
    k = default_knowledge()
    return evaluate(read.from_resources(list(resources_of(path)), k.terminology, hook), NOW, k)


@cache
def ndjson() -> tuple[list[dict[str, Any]], list[read.Rejection]]:
    return files.ndjson_resources(NDJSON_DIR)


def ndjson_patients() -> list[str]:
    return [r["id"] for r in ndjson()[0] if r.get("resourceType") == "Patient"]


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[Any]:
    """Run `hofhir evaluate ARGS --format json --now CLI_NOW` in-process; the JSON documents it printed."""
    code = cli_main(["evaluate", *args, "--format", "json", "--now", CLI_NOW])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    out = captured.out.strip()
    try:
        return [orjson.loads(out)]
    except orjson.JSONDecodeError:  # a folder of several patients: one JSON document per line
        return [orjson.loads(line) for line in out.splitlines()]


def card_topics(body: dict[str, Any]) -> set[str]:
    return {c["source"]["topic"]["code"] for c in body["cards"]}


def explanation(body: dict[str, Any], topic: str) -> dict[str, Any]:
    (found,) = [c for c in body["cards"] if c["source"]["topic"]["code"] == topic]
    return dict(found["extension"]["org.hofhir.explanation"])


def test_the_sample_folders_hold_what_the_readme_says() -> None:
    assert len(SYNTHEA) == 14
    assert len(HL7) == 193
    assert len(ndjson_patients()) >= 10


# ================= Synthea bundles =================


@pytest.mark.parametrize("path", SYNTHEA, ids=short)
def test_synthea_bundle_through_the_library(path: Path) -> None:
    evaluation = library_evaluation(path)
    assert evaluation.trace["rejected"] == []  # all of them are valid R4
    assert response_problems(render_response(evaluation.guidance)) == []


@pytest.mark.parametrize("path", SYNTHEA, ids=short)
def test_synthea_bundle_through_a_hook_request_gives_the_same_cards(path: Path) -> None:
    k = default_knowledge()
    resources = list(resources_of(path))
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    hook_request = request("patient-view", resources, patient_id=pid)
    evaluation = evaluate(read.from_hook_request(hook_request, k.terminology), NOW, k)
    expected = library_evaluation(path)
    assert [(g.topic, g.risk_level, g.rules) for g in evaluation.guidance] == [
        (g.topic, g.risk_level, g.rules) for g in expected.guidance
    ]
    assert evaluation.trace["populations"] == expected.trace["populations"]


@pytest.mark.parametrize("path", SYNTHEA, ids=short)
def test_synthea_bundle_through_the_cli(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (body,) = cli_json(capsys, str(path))
    assert response_problems(body) == []
    assert card_topics(body) == {g.topic.value for g in library_evaluation(path).guidance}


# What each Synthea record supports at 2026-11-21. Every index date is years back: after ho-rules 1.1 §3a
# (the relevance window) no living patient gets a chart card; the assessment stays in the trace.
SYNTHEA_EXPECTED: dict[str, tuple[bool, dict[str, str], set[str]]] = {
    # name: (deceased, {population: level}, card topics)
    "Almeda_Conn": (True, {"tbi": "low"}, set()),
    "Andrea_Dach": (True, {"stroke": "low"}, set()),
    "Arla_Lang": (False, {"tbi": "low"}, set()),
    "Cary_OHara": (False, {"sci": "moderate"}, set()),
    "Deidre_Daniel": (False, {"fracture": "low"}, set()),
    "Desmond_Gutmann": (False, {"tbi": "low"}, set()),
    "Elisha_Schroeder": (True, {"stroke": "low"}, set()),
    "Floyd_Connelly": (False, {}, set()),  # hip osteoarthritis, no arthroplasty
    "Gilberto_Orosco": (True, {"tbi": "low"}, set()),
    "Kathe_Zieme": (False, {"fracture": "low"}, set()),
    "Laticia_Dibbert": (True, {}, set()),  # knee, not hip, replacement
    "Lonnie_Von": (False, {"fracture": "low"}, set()),
    "Marc_Corkery": (False, {}, set()),  # second-degree burn only
    "Ned_Hintz": (False, {}, set()),
}


@pytest.mark.parametrize("name", sorted(SYNTHEA_EXPECTED))
def test_synthea_patient_gets_the_cards_the_record_supports(name: str) -> None:
    deceased, populations, expected_topics = SYNTHEA_EXPECTED[name]
    evaluation = library_evaluation(synthea_path(name))
    assert evaluation.trace["deceased"] is deceased
    assert {p: v["level"] for p, v in evaluation.trace["populations"].items()} == populations
    assert {g.topic.value for g in evaluation.guidance} == expected_topics
    if populations and not deceased:
        assert evaluation.no_cards_reason == "outside-relevance-window"
        assert evaluation.trace["relevanceWindow"]["inside"] is False


def test_sci_patient_cary_ohara_is_moderate_with_age_present_and_the_rest_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    evaluation = library_evaluation(synthea_path("Cary_OHara"))
    statuses = {f["rule"]: f["status"] for f in evaluation.trace["populations"]["sci"]["factors"]}
    assert statuses == {"N-01": "present", "N-02": "unknown", "N-03": "unknown", "N-04": "unknown"}
    # 1.1 §3a: the chronic SCI is outside the relevance window: the risk and rehabilitation cards are
    # withheld (the trace says so), and the chart gets no card.
    withheld = {w["topic"] for w in evaluation.trace["withheld"]}
    assert withheld == {"ho-risk", "ho-rehabilitation"}
    assert evaluation.trace["assessment"]["summary"].startswith("Moderate risk")
    (body,) = cli_json(capsys, str(synthea_path("Cary_OHara")))
    assert body["cards"] == []


def test_sci_patient_at_discharge_gets_no_education_outside_the_window(capsys: pytest.CaptureFixture[str]) -> None:
    # 1.1 §7: ho-education only inside the relevance window (the SCI is years old).
    (body,) = cli_json(capsys, str(synthea_path("Cary_OHara")), "--hook", "encounter-discharge")
    assert response_problems(body) == []
    assert card_topics(body) == set()
    evaluation = library_evaluation(synthea_path("Cary_OHara"), "encounter-discharge")
    assert {w["topic"] for w in evaluation.trace["withheld"]} == {"ho-risk", "ho-education"}


def test_tbi_patient_arla_lang_is_low_with_severity_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    evaluation = library_evaluation(synthea_path("Arla_Lang"))
    n07 = next(f for f in evaluation.trace["populations"]["tbi"]["factors"] if f["rule"] == "N-07")
    assert n07["status"] == "unknown"
    assert evaluation.trace["populations"]["tbi"]["level"] == "low"
    (body,) = cli_json(capsys, str(synthea_path("Arla_Lang")))
    assert body["cards"] == []  # 1.1 §3a: a concussion years ago puts no card on the chart


@pytest.mark.parametrize("name", ["Elisha_Schroeder", "Andrea_Dach"])
def test_deceased_stroke_patient_gets_no_cards_but_the_trace_recognises_the_stroke(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluation = library_evaluation(synthea_path(name))
    assert evaluation.trace["deceased"] is True
    assert "stroke" in evaluation.trace["populations"]
    assert evaluation.trace["populations"]["stroke"]["indexDate"] is not None
    (body,) = cli_json(capsys, str(synthea_path(name)))
    assert body == {"cards": []}


def test_second_degree_burn_is_not_the_burn_population(capsys: pytest.CaptureFixture[str]) -> None:
    assert "burn" not in library_evaluation(synthea_path("Marc_Corkery")).trace["populations"]
    (body,) = cli_json(capsys, str(synthea_path("Marc_Corkery")))
    assert body == {"cards": []}


@pytest.mark.parametrize("name", ["Deidre_Daniel", "Kathe_Zieme"])
def test_hip_fracture_patient_is_the_fracture_population_at_low_risk(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluation = library_evaluation(synthea_path(name))
    assert evaluation.trace["populations"]["fracture"]["level"] == "low"
    assert {"R-09", "R-18"} <= set(evaluation.trace["assessment"]["rules"])
    (body,) = cli_json(capsys, str(synthea_path(name)))
    assert body["cards"] == []  # 1.1 §3a: the fracture is years old


def test_stopped_medication_in_a_synthea_record_is_listed_as_ignored() -> None:
    ignored = library_evaluation(synthea_path("Deidre_Daniel")).trace["ignored"]
    assert ignored and all("status stopped" in item for item in ignored)


# ================= HL7 R4 examples =================


@pytest.mark.parametrize("path", HL7, ids=lambda p: p.stem)
def test_hl7_example_through_library_and_cli(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evaluation = library_evaluation(path)
    library_body = render_response(evaluation.guidance)
    assert response_problems(library_body) == []
    (cli_body,) = cli_json(capsys, str(path))
    assert response_problems(cli_body) == []
    assert card_topics(cli_body) == card_topics(library_body)


@pytest.mark.parametrize("hook", ["encounter-start", "encounter-discharge", "order-select", "order-sign"])
def test_every_hl7_example_evaluates_under_every_hook(hook: str) -> None:
    for path in HL7:
        evaluation = library_evaluation(path, hook)
        assert response_problems(render_response(evaluation.guidance)) == [], path.name


def test_hl7_stroke_condition_alone_is_a_low_stroke_risk_outside_the_window() -> None:
    evaluation = library_evaluation(HL7_DIR / "Condition-stroke.json")
    assert evaluation.trace["populations"]["stroke"]["level"] == "low"
    assert evaluation.guidance == []  # 1.1 §3a: the stroke of the example is years before NOW
    assert evaluation.no_cards_reason == "outside-relevance-window"


def test_hl7_bundles_of_every_type_are_read() -> None:
    types = {orjson.loads(p.read_bytes()).get("type") for p in HL7 if p.name.startswith("Bundle-")}
    assert {"transaction", "transaction-response", "searchset", "collection", "document"} <= types
    for p in HL7:
        if p.name.startswith("Bundle-") and p.name != "Bundle-bundle-search-warning.json":
            assert library_evaluation(p).trace["resourcesSeen"] >= 1, p.name


def test_search_bundle_outcome_entries_are_dropped() -> None:
    # its only entry is an OperationOutcome (search.mode "outcome"): not a clinical resource
    assert library_evaluation(HL7_DIR / "Bundle-bundle-search-warning.json").trace["resourcesSeen"] == 0


# ================= NDJSON bulk export =================


@pytest.mark.parametrize("index", range(13))
def test_ndjson_patient_through_the_library(index: int) -> None:
    patients = ndjson_patients()
    if index >= len(patients):
        pytest.fail(f"only {len(patients)} patients in {NDJSON_DIR}")
    k = default_knowledge()
    resources, rejected = ndjson()
    assert rejected == []
    evaluation = evaluate(read.from_resources(resources, k.terminology, "patient-view", patients[index]), NOW, k)
    assert evaluation.trace["patient"] == patients[index]
    assert evaluation.trace["rejected"] == []
    assert response_problems(render_response(evaluation.guidance)) == []


def test_ndjson_folder_through_the_cli_answers_every_patient(capsys: pytest.CaptureFixture[str]) -> None:
    lines = cli_json(capsys, str(NDJSON_DIR))
    assert sorted(line["patient"] for line in lines) == sorted(f"Patient/{p}" for p in ndjson_patients())
    for line in lines:
        assert response_problems(line["response"]) == [], line["patient"]
    # 1.1 §3a: every index event of these patients is years old: no chart card for any of them.
    assert all(line["response"]["cards"] == [] for line in lines)


def test_ndjson_folder_through_the_cli_for_one_patient(capsys: pytest.CaptureFixture[str]) -> None:
    k = default_knowledge()
    resources, _ = ndjson()
    for pid in ndjson_patients():
        evaluation = evaluate(read.from_resources(resources, k.terminology, "patient-view", pid), NOW, k)
        if evaluation.trace["populations"]:
            break
    else:
        pytest.fail("no NDJSON patient is in an at-risk population")
    (body,) = cli_json(capsys, str(NDJSON_DIR), "--patient", pid)
    assert response_problems(body) == []
    assert card_topics(body) == {g.topic.value for g in evaluation.guidance}


# ================= ho-rules 1.1 §3a: cards per sample patient =================

CHART_TOPICS = {"ho-risk", "ho-surveillance", "ho-rehabilitation", "ho-education"}


def sample_evaluations() -> list[tuple[str, Evaluation]]:
    """(label, patient-view evaluation) for every Synthea bundle, HL7 example and NDJSON patient."""
    k = default_knowledge()
    out = [(f"synthea/{short(p)}", library_evaluation(p)) for p in SYNTHEA]
    out += [(f"hl7/{p.stem}", library_evaluation(p)) for p in HL7]
    resources, _ = ndjson()
    for pid in ndjson_patients():
        inputs = read.from_resources(resources, k.terminology, "patient-view", pid)
        out.append((f"ndjson/{pid[:18]}", evaluate(inputs, NOW, k)))
    return out


def test_no_sample_patient_gets_a_chart_card_and_the_table_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """After 1.1 none of the sample patients gets a chart card at the current date (all events are old).

    The table of cards per patient (and, for those with a population, why there are none) is printed to
    the terminal whatever pytest's capture settings, so that it shows in CI output.
    """
    rows = []
    offenders = []
    for name, evaluation in sample_evaluations():
        found = sorted(g.topic.value for g in evaluation.guidance)
        populations = ",".join(f"{p}:{v['level']}" for p, v in evaluation.trace["populations"].items())
        if not populations and not found:
            continue  # nothing about HO in the record (most HL7 examples)
        withheld = ",".join(sorted({w["topic"] for w in evaluation.trace["withheld"]}))
        rows.append(
            (name, populations or "-", ",".join(found) or "-", withheld or "-", evaluation.no_cards_reason or "-")
        )
        if set(found) & CHART_TOPICS:
            offenders.append((name, found))
    header = ("patient", "populations", "cards", "withheld (1.1 §3a)", "no-cards reason")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    with capsys.disabled():
        print(f"\n\nCards per sample patient at {NOW.date()} (patient-view), patients with an HO population:")
        print("\n".join(lines))
    assert len(rows) >= 10  # the Synthea and NDJSON patients with an index population are all listed
    assert offenders == []
