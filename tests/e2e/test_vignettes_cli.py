"""Every shared vignette through the CLI, as its README says: `hofhir evaluate <case> --now <now> --format json`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.vignettes import VIGNETTES, cases, check, load


@pytest.mark.parametrize("case", cases())
def test_vignette_through_the_cli(case: str) -> None:
    _, expect = load(case)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cds_hooks.cli",
            "evaluate",
            str(VIGNETTES / f"{case}.request.json"),
            "--now",
            expect["now"],
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "http_status" in expect:
        assert result.returncode != 0 and result.stderr.strip() and "Traceback" not in result.stderr
        return
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body) == {"cards"}, "--format json prints exactly a CDS Hooks response body"
    assert check(body, expect) == []


def test_there_are_ten_vignettes() -> None:
    assert len(cases()) == 16  # s01-s10, and s11-s16 for ho-rules 1.1


def test_a_request_without_prefetch_or_fhir_server_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    request, _ = load("s01")
    del request["prefetch"]["observations"]
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(request))
    result = subprocess.run(
        [sys.executable, "-m", "cds_hooks.cli", "evaluate", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert "observations" in result.stderr and "fhirServer" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "JSON object"),
        ('{"foo": 1}', "not FHIR"),
        ('{"hook": "no-such-hook", "context": {}}', "unknown hook"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, content: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "cds_hooks.cli", "evaluate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_text_format_names_every_card(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, expect = load("s02")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cds_hooks.cli",
            "evaluate",
            str(VIGNETTES / "s02.request.json"),
            "--now",
            expect["now"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for topic in ("ho-risk", "ho-surveillance", "ho-suspected", "dvt-differential", "ho-rehabilitation"):
        assert topic in result.stdout
    assert "\033[" not in result.stdout, "no colours when not on a terminal"
