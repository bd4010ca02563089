"""Tests start from a clean environment: a developer's (or `make run`'s) HOFHIR_* variables never change what a
test sees. A test that needs a setting passes it explicitly."""

from __future__ import annotations

import os

for _name in [n for n in os.environ if n.startswith("HOFHIR_")]:
    del os.environ[_name]
