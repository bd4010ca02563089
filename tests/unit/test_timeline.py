"""The HO timeline model on the shared vignettes, and its SVG: well-formed, titled, every text inside the box."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds_hooks.timeline_svg import CHAR_W, render
from hofhir.clinical.evaluate import chart_facts, evaluate
from hofhir.clinical.model import Population
from hofhir.clinical.timeline import Timeline, build_timeline, quiet_reason
from hofhir.fhir.read import from_hook_request, from_resources
from hofhir.knowledge import Knowledge
from tests.vignettes import cases, load, shared_dir

SVG = "{http://www.w3.org/2000/svg}"
SYNTHEA = sorted((shared_dir() / "fhir-samples" / "synthea-r4-bundles").glob("*.json"))


def timeline_of(case: str, kb: Knowledge) -> tuple[Timeline, Any]:
    request, expect = load(case)
    now = datetime.fromisoformat(expect["now"])
    inputs = from_hook_request(request, kb.terminology, request.get("prefetch") or {})
    evaluation = evaluate(inputs, now, kb)
    return build_timeline(chart_facts(inputs, kb, now), evaluation, kb), evaluation


def lane(t: Timeline, key: str) -> list[Any]:
    return list(next(lane for lane in t.lanes if lane.key == key).events)


def test_sci_at_five_weeks_has_its_injury_its_bands_the_alp_rise_and_the_signs_in_order(kb: Knowledge) -> None:
    t, _ = timeline_of("s02", kb)
    sci = [m for m in t.index_marks if m.population is Population.SCI]
    assert sci, "the SCI index event"
    injury = sci[0].when
    assert sci[0].attention.start == injury + timedelta(days=14)
    assert sci[0].attention.end == injury + timedelta(days=84)
    assert sci[0].window.end == injury + timedelta(days=365)
    assert (t.now - injury).days == 35
    alp = next(s for s in t.series if s.concept == "alp")
    assert [p.value for p in alp.points] == [118, 220], "both ALP results, oldest first"
    assert [p.above for p in alp.points] == [False, True]
    assert (alp.low, alp.high, alp.unit) == (44, 147, "U/L")
    signs = lane(t, "signs")
    assert [e.start for e in signs] == sorted(e.start for e in signs)
    assert {e.concept for e in signs} >= {"poor_hip_rom", "sign_swelling"}
    assert all(e.ongoing for e in signs if e.concept in ("poor_hip_rom", "sign_swelling"))
    assert t.relevance is not None and t.relevance.start == t.now - timedelta(days=365)
    assert t.in_relevance_window
    assert t.start < injury and t.end > t.now, "the picture shows the injury and now"


def test_a_thirty_year_old_tha_with_old_ho_lies_outside_the_relevance_window(kb: Knowledge) -> None:
    t, _ = timeline_of("s04", kb)
    assert not t.in_relevance_window
    assert [e.concept for e in lane(t, "procedures")][:1] == ["tha"]
    assert {m.population for m in t.index_marks} >= {Population.THA, Population.HO_HISTORY}
    assert [m.when for m in t.index_marks] == sorted(m.when for m in t.index_marks)


def test_tbi_with_coma_has_the_gcs_series_and_both_populations(kb: Knowledge) -> None:
    t, _ = timeline_of("s06", kb)
    assert {m.population for m in t.index_marks} >= {Population.TBI, Population.FRACTURE}
    gcs = next(s for s in t.series if s.concept == "gcs_total")
    assert [p.value for p in gcs.points] == [6, 7, 13]


def test_ho_excision_order_shows_ho_and_the_raised_alp(kb: Knowledge) -> None:
    t, _ = timeline_of("s05", kb)
    assert Population.HO_HISTORY in {m.population for m in t.index_marks}
    alp = next(s for s in t.series if s.concept == "alp")
    assert all(p.above for p in alp.points)
    assert any(e.concept == "antispasticity" for e in lane(t, "drugs"))


def test_the_text_alternative_says_each_event_and_the_model_is_json(kb: Knowledge) -> None:
    t, _ = timeline_of("s02", kb)
    text = " ".join(t.sentences())
    assert "220 U/L" in text and "above range" in text and "weeks 2-12" in text and "inside" in text
    model = orjson.loads(orjson.dumps(t.as_dict()))
    assert model["series"][0]["concept"] == "alp" and model["relevanceWindow"]["inside"] is True


def test_no_card_reasons(kb: Knowledge) -> None:
    _, evaluation = timeline_of("s08", kb)
    assert not evaluation.guidance
    assert "No cards: No heterotopic ossification risk population" in (quiet_reason(evaluation, kb) or "")
    request, expect = load("s02")
    request["prefetch"]["patient"]["deceasedBoolean"] = True
    now = datetime.fromisoformat(expect["now"])
    inputs = from_hook_request(request, kb.terminology, request["prefetch"])
    dead = evaluate(inputs, now, kb)
    assert "deceased" in (quiet_reason(dead, kb) or "")
    _, with_cards = timeline_of("s02", kb)
    assert quiet_reason(with_cards, kb) is None


def _check_svg(svg: str) -> None:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.find(f"{SVG}title") is not None and (root.find(f"{SVG}title").text or "").strip()
    assert root.find(f"{SVG}desc") is not None
    assert root.get("role") == "img" and root.get("aria-labelledby")
    _, _, width, height = (float(v) for v in (root.get("viewBox") or "").split())
    assert "<script" not in svg and "@import" not in svg and 'href="http' not in svg
    texts = root.iter(f"{SVG}text")
    for text in texts:
        content = text.text or ""
        x, y = float(text.get("x", 0)), float(text.get("y", 0))
        size = float(text.get("font-size", 11))
        span = len(content) * CHAR_W * size / 11
        left = {"start": x, "middle": x - span / 2, "end": x - span}[text.get("text-anchor", "start")]
        assert left >= 0 and left + span <= width, f"{content!r} leaves the box horizontally"
        assert y - size >= 0 and y <= height, f"{content!r} leaves the box vertically"
        assert size >= 10, "readable at 600 px wide"


@pytest.mark.parametrize("case", cases())
def test_the_svg_of_every_vignette_is_well_formed_titled_and_inside_its_box(case: str, kb: Knowledge) -> None:
    t, _ = timeline_of(case, kb)
    _check_svg(render(t))


@pytest.mark.parametrize("path", SYNTHEA[:6], ids=lambda p: p.name.split("_")[0])
def test_the_svg_of_a_synthea_patient_is_inside_its_box(path: Path, kb: Knowledge) -> None:
    bundle = orjson.loads(path.read_bytes())
    resources = [e["resource"] for e in bundle["entry"]]
    inputs = from_resources(resources, kb.terminology, "patient-view", None)
    now = datetime.fromisoformat("2026-11-30T12:00:00+00:00")
    evaluation = evaluate(inputs, now, kb)
    svg = render(build_timeline(chart_facts(inputs, kb, now), evaluation, kb))
    _check_svg(svg)
    assert re.search(r"<title[^>]*>", svg)


def test_imaging_duplex_procedures_and_drug_spans_are_in_their_lanes(kb: Knowledge) -> None:
    from tests.builders import NOW, condition, medication_request, patient, procedure, request, service_request

    resources = [
        patient("male", 45),
        condition("S24.111A", days_ago=400),  # SCI over a year ago
        condition("M61.251", days_ago=300),  # HO of the hip
        procedure("78315", days_ago=280),  # three-phase bone scan
        procedure("93970", days_ago=270),  # venous duplex
        procedure("27036", days_ago=20),  # HO excision
        procedure("77401", days_ago=19),  # radiotherapy
        medication_request("5781", "indomethacin 25 MG", days_ago=18),
        service_request("73502", status="active", days_ago=1),  # a hip radiograph ordered
    ]
    body = request("patient-view", resources)
    inputs = from_hook_request(body, kb.terminology, body["prefetch"])
    evaluation = evaluate(inputs, NOW, kb)
    t = build_timeline(chart_facts(inputs, kb, NOW), evaluation, kb)
    imaging = lane(t, "imaging")
    assert [(e.concept, e.ordered_only) for e in imaging] == [("bone_scan", False), ("hip_radiograph", True)]
    assert [e.concept for e in lane(t, "duplex")] == ["venous_duplex"]
    assert [e.concept for e in lane(t, "procedures")] == ["ho_excision", "radiotherapy"]
    [drug] = lane(t, "drugs")
    assert drug.concept == "indomethacin" and drug.ongoing, "an active prescription runs to now, drawn once"
    assert t.in_relevance_window, "an HO excision 20 days ago (§3a)"
    svg = render(t)
    _check_svg(svg)
    assert svg.count('class="event event-imaging"') == 2 and 'class="event event-duplex"' in svg


def test_a_tbi_known_only_by_coma_after_trauma_is_drawn_as_the_cards_judged_it(kb: Knowledge) -> None:
    """The TBI population is derived (coma within 30 days of a trauma code, 1.1 §2): the timeline is drawn
    from the facts the rules read, so its index marks are the populations the cards were judged on."""
    from tests.builders import NOW, condition, patient, request

    body = request("patient-view", [patient(), condition("S72.301A", days_ago=40), condition("R40.20", days_ago=35)])
    inputs = from_hook_request(body, kb.terminology, body["prefetch"])
    evaluation = evaluate(inputs, NOW, kb)
    assert "tbi" in evaluation.trace["populations"]
    t = build_timeline(chart_facts(inputs, kb, NOW), evaluation, kb)
    assert {m.population.value for m in t.index_marks} == set(evaluation.trace["populations"])
