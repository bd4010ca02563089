"""The preview as a clinician sees it, in Debian's Chromium driven by Playwright (no browser download).

Starts `hofhir serve` (gunicorn) with HOFHIR_AUTH=off, picks the built-in SCI patient, evaluates, and checks
what is on the screen: rendered cards, a suggestion revealing its ServiceRequest, a dismissal that /feedback
counts, the timeline with the injury and the ALP points, and a bad paste shown as an OperationOutcome.
Saves the README's screenshots under docs/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from cds_hooks.cli import main
from tests.processes import free_port
from tests.vignettes import shared_dir

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CARY = next((shared_dir() / "fhir-samples" / "synthea-r4-bundles").glob("Cary_OHara_*.json"))
CARY_NOW = "2011-01-20T12:00:00Z"  # 100 days after Cary's spinal cord injury: inside the relevance window


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOFHIR_")} | {"HOFHIR_AUTH": "off"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_hooks.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("hofhir serve did not start")
        yield base
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
        lines = [line for line in err.decode().splitlines() if line.strip()]
        assert all(line.startswith("{") for line in lines), "serve logs JSON lines only"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make services`"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, device_scale_factor=1)
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def test_a_clinician_evaluates_the_sci_patient_and_acts_on_the_cards(service: str, page: Page) -> None:
    page.goto(f"{service}/")
    expect(page.locator("#auth-banner")).to_be_hidden()
    page.wait_for_selector("#example option[value='ex-sci-hip']", state="attached")
    page.select_option("#example", "ex-sci-hip")
    cards = page.locator("#cards .card")
    expect(cards.first).to_be_visible()
    assert cards.count() >= 4
    text = page.locator("#cards").inner_text()
    assert "**" not in text and "Why" in text
    expect(page.locator("#patient-banner")).to_contain_text("Maria Keller")

    # The timeline: the index event and the three ALP results.
    svg = page.locator("#timeline svg.hofhir-timeline")
    expect(svg).to_be_visible()
    assert svg.locator("title").first.text_content() == "Heterotopic ossification timeline"
    assert svg.locator(".index-event").count() >= 1
    assert svg.locator("circle.lab-point[data-concept='alp']").count() == 3
    page.screenshot(path=str(DOCS / "preview.png"))

    # A suggestion button reveals the exact resource it would create.
    suggestion = page.locator("details.suggestion", has=page.locator("pre[data-resource-type='ServiceRequest']")).first
    resource = suggestion.locator("pre.fhir-resource")
    expect(resource).to_be_hidden()
    suggestion.locator("summary").click()
    expect(resource).to_be_visible()
    assert '"resourceType": "ServiceRequest"' in resource.inner_text()
    suggestion.screenshot(path=str(DOCS / "preview-suggestion.png"))

    # An override reason from the dismiss menu is posted as CDS Hooks feedback and counted.
    card = page.locator("#cards .card", has=page.locator("select.override-reason option:nth-child(2)")).first
    topic = card.get_attribute("data-topic")
    select = card.locator("select.override-reason")
    reason = select.locator("option").nth(1).get_attribute("value")
    select.select_option(reason)
    card.locator("button.dismiss-btn").click()
    expect(page.locator("#feedback-note")).to_contain_text("Feedback sent")
    counts = httpx.get(f"{service}/feedback").json()["topics"]
    assert counts[topic]["overridden"] >= 1 and counts[topic]["overrideReasons"][reason] >= 1


def test_a_pasted_invalid_request_shows_the_operation_outcome(service: str, page: Page) -> None:
    page.goto(f"{service}/")
    page.locator("#paste-panel summary").click()
    page.fill("#paste", '{"hook": "patient-view", "context": {"patientId": "p1"}}')
    page.click("#evaluate-paste")
    errors = page.locator("#errors")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("hookInstance")
    expect(errors).to_contain_text("HTTP 400")
    page.screenshot(path=str(DOCS / "preview-error.png"))


def test_the_html_report_of_a_synthea_patient_opens_in_the_browser(tmp_path: Path, page: Page) -> None:
    report = tmp_path / "cary.html"
    assert main(["evaluate", str(CARY), "--format", "html", "-o", str(report), "--now", CARY_NOW]) == 0
    page.goto(report.as_uri())
    expect(page.locator(".patient-banner")).to_contain_text("Cary")
    expect(page.locator("svg.hofhir-timeline")).to_be_visible()
    assert page.locator(".card").count() >= 1
    assert page.locator("svg.hofhir-timeline .index-event").count() >= 1
