"""The README tells a new user the truth: its two set-up commands exist, and it lists every setting the code reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_hofhir_setting_read_by_the_code_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    used: set[str] = set()
    for path in list((ROOT / "hofhir").rglob("*.py")) + list((ROOT / "cds_hooks").rglob("*.py")):
        used |= set(re.findall(r"\"(HOFHIR_[A-Z0-9_]+)\"", path.read_text()))
    missing = sorted(v for v in used if v not in readme)
    assert missing == []


def test_the_readme_commands_are_make_targets_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make run" in readme and "make test" in readme
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
