"""The CLI tells the why: text with reasons and suggestions, a quiet reason, an HTML report, `hofhir send`,
and `hofhir serve` refusing bad settings with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from cds_hooks.app import create_app
from cds_hooks.cli import main
from cds_hooks.settings import Settings
from tests.processes import free_port
from tests.vignettes import VIGNETTES, load, shared_dir

S02 = VIGNETTES / "s02.request.json"
NOW = load("s02")[1]["now"]
CARY = next((shared_dir() / "fhir-samples" / "synthea-r4-bundles").glob("Cary_OHara_*.json"))
CARY_NOW = "2011-01-20T12:00:00Z"  # 100 days after Cary's spinal cord injury: inside the relevance window


def test_text_prints_each_card_with_its_why_and_its_suggestions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(S02), "--now", NOW]) == 0
    out = capsys.readouterr().out
    assert "\033[" not in out, "no colour when stdout is not a terminal"
    assert out.count("Why:") == 5
    assert "• ALP 220 U/L on" in out
    assert "→ Order a three-phase bone scan (creates a ServiceRequest)" in out
    assert "**" not in out
    assert max(len(line) for line in out.splitlines()) <= 110, "wrapped"


def test_a_patient_without_cards_is_told_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(VIGNETTES / "s08.request.json"), "--now", NOW]) == 0
    assert "No cards: No heterotopic ossification risk population in the record." in capsys.readouterr().out


def test_html_writes_one_self_contained_page_for_a_synthea_bundle(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert main(["evaluate", str(CARY), "--format", "html", "-o", str(page), "--now", CARY_NOW]) == 0
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "<title" in html
    assert "<script" not in html and "<link" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert 'class="card card-' in html and "**" not in html


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    server = make_server("127.0.0.1", free_port(), create_app(Settings(auth=False)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def test_send_posts_a_request_shifted_to_now_and_prints_the_answer(
    service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{service}/cds-services/hofhir-patient-view"
    assert main(["send", url, str(S02), "--shift-to-now", "--recorded-at", NOW]) == 0
    cards = json.loads(capsys.readouterr().out)["cards"]
    assert {c["source"]["topic"]["code"] for c in cards} >= {"ho-risk", "ho-suspected", "dvt-differential"}


def test_send_turns_a_bundle_into_a_request_for_the_service_of_its_hook(
    service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", service, str(CARY), "--shift-to-now"]) == 0
    assert "cards" in json.loads(capsys.readouterr().out)


def test_send_reports_refusals_and_unreachable_services(service: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad = Path(__file__).parent / "bad-request.json"
    try:
        bad.write_text(json.dumps({"hook": "patient-view", "context": {}}))
        assert main(["send", f"{service}/cds-services/hofhir-patient-view", str(bad)]) == 5
        assert "hookInstance" in capsys.readouterr().err
    finally:
        bad.unlink()
    assert main(["send", f"http://127.0.0.1:{free_port()}/cds-services/x", str(S02)]) == 4


def test_serve_with_auth_on_and_no_issuer_exits_2_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOFHIR_")} | {"HOFHIR_AUTH": "on"}
    done = subprocess.run(
        [sys.executable, "-m", "cds_hooks.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "HOFHIR_AUTH=off" in lines[0] and "HOFHIR_AUTH_ISSUERS" in lines[0]
