"""The server `hofhir serve` runs where there is no fork (Windows): waitress, here on Linux as a real process.

`serve()` chooses waitress only without os.fork, so the test starts the same `_waitress` function directly:
the app it serves, the threads it gets and the answers are those a Windows user would get.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import httpx
import pytest

from tests.dates import to_today
from tests.processes import free_port, wait_healthy
from tests.vignettes import check, load

SERVE = """
import sys
from cds_hooks.server import _waitress
from cds_hooks.settings import Settings
sys.exit(_waitress(Settings.from_env(), "127.0.0.1", int(sys.argv[1])))
"""


@pytest.mark.timeout(120)
def test_waitress_serves_discovery_a_hook_call_and_bad_input_as_gunicorn_does() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOFHIR_")} | {"HOFHIR_AUTH": "off"}
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            assert wait_healthy(proc, base), "waitress did not start"
            with httpx.Client(base_url=base, timeout=30) as client:
                services = client.get("/cds-services").json()["services"]
                assert {s["id"] for s in services} >= {"hofhir-patient-view", "hofhir-order-sign"}
                request, expect = load("s02")
                response = client.post("/cds-services/hofhir-patient-view", json=to_today(request, expect["now"]))
                assert response.status_code == 200 and check(response.json(), expect) == []
                bad = client.post(
                    "/cds-services/hofhir-patient-view", content=b"{", headers={"Content-Type": "application/json"}
                )
                assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        out.seek(0)
        log = out.read().decode(errors="replace")
    assert "waitress" in log and "Traceback" not in log
