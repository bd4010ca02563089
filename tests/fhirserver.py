"""Runs the test FHIR engine (tests/fhirserver/server.mjs, Medplum's in-memory FHIR router) for tests.

    with run_fhir_server(bundles=[path]) as fhir:
        fhir.base_url            # "http://127.0.0.1:PORT/fhir"
        fhir.patient_ids         # ids of the Patients the loaded bundles created
        fhir.fault(status=503)   # the next matching request fails (see server.mjs for the controls)
        fhir.requests()          # what the engine received: method, path, authorization, status

Starts node on a free port, waits for its `LISTENING <port>` line, loads the bundles (transaction or
batch), and kills the process at the end. Runs `npm ci` first when node_modules is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

SERVER_DIR = Path(__file__).resolve().parent / "fhirserver"
BASE_PATH = "/fhir"
_npm_lock = threading.Lock()


def ensure_node_modules(server_dir: Path = SERVER_DIR) -> None:
    """Install the engine's npm packages from package-lock.json when they are not there yet."""
    with _npm_lock:
        if (server_dir / "node_modules" / "@medplum" / "fhir-router").is_dir():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed: run `make services` (tools/ensure-services.sh)")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=server_dir,
            check=True,
            timeout=600,
        )


class FhirTestServer:
    """A running test engine: its base URL plus the test controls of server.mjs."""

    def __init__(self, origin: str, process: subprocess.Popen[bytes]) -> None:
        self.origin = origin
        self.base_url = origin + BASE_PATH
        self.token_url = origin + "/auth/token"
        self.process = process
        self.patient_ids: list[str] = []
        self._admin = httpx.Client(base_url=origin, timeout=60.0)

    def __str__(self) -> str:
        return self.base_url

    def close(self) -> None:
        self._admin.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._admin.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    # -- data ----------------------------------------------------------------------------------
    def load_bundle(self, bundle: Path | str | dict[str, Any]) -> dict[str, Any]:
        """Run a transaction/batch Bundle (a file or a dict) past auth, faults and the request log;
        returns the response Bundle and records the ids of the Patients it created."""
        body = bundle if isinstance(bundle, dict) else json.loads(Path(bundle).read_text(encoding="utf-8"))
        response = self._admin.post(
            "/__admin/load", content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        if response.status_code != 200:
            raise RuntimeError(f"loading {bundle!s:.80} failed: HTTP {response.status_code} {response.text[:500]}")
        result: dict[str, Any] = response.json()
        for entry in result.get("entry", []):
            location = entry.get("response", {}).get("location", "")
            if location.startswith("Patient/"):
                self.patient_ids.append(location.split("/")[1])
        return result

    def reset(self, *, keep_data: bool = False) -> None:
        """Back to the start state: faults, request log, auth settings, paging config (and data)."""
        self._call("POST", "/__admin/reset", {"keepData": keep_data})
        if not keep_data:
            self.patient_ids.clear()

    # -- faults and observation ----------------------------------------------------------------
    def fault(
        self,
        *,
        status: int | None = None,
        count: int = 1,
        delay_ms: int = 0,
        match: str = "",
        method: str | None = None,
        retry_after: int | str | None = None,
        drop: bool = False,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Make the next `count` requests (-1: all) whose "METHOD /path?query" contains `match` fail."""
        spec: dict[str, Any] = {"count": count, "delayMs": delay_ms, "match": match, "drop": drop}
        for key, value in (("status", status), ("method", method), ("retryAfter", retry_after), ("body", body)):
            if value is not None:
                spec[key] = value
        result: dict[str, Any] = self._call("POST", "/__admin/fault", spec)
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/__admin/fault")

    def requests(self, match: str = "", method: str | None = None) -> list[dict[str, Any]]:
        """Requests received (admin calls excluded), oldest first, filtered like faults."""
        log: list[dict[str, Any]] = self._call("GET", "/__admin/requests")
        return [
            r
            for r in log
            if match in f"{r['method']} {r['path']}" and (method is None or r["method"] == method.upper())
        ]

    def clear_requests(self) -> None:
        self._call("DELETE", "/__admin/requests")

    # -- auth and paging behaviour -------------------------------------------------------------
    def require_auth(
        self,
        *,
        tokens: Iterable[str] = (),
        clients: Iterable[tuple[str, dict[str, Any]]] = (),
        token_ttl: int = 300,
    ) -> None:
        """Require a bearer token on the FHIR API: one of `tokens`, or one that /auth/token issued to
        a client (client_id, JWKS with its public keys). No tokens and no clients: open again."""
        self._call(
            "POST",
            "/__admin/auth",
            {
                "tokens": list(tokens),
                "clients": [{"clientId": cid, "jwks": jwks} for cid, jwks in clients],
                "tokenTtl": token_ttl,
            },
        )

    def revoke_tokens(self) -> None:
        """Forget every access token /auth/token issued (the next use of one gets 401)."""
        self._call("POST", "/__admin/revoke-tokens")

    def configure(self, *, link_style: str | None = None, page_size: int | None = None) -> None:
        """link_style: "absolute" (default), "relative", or "loop" (next always points at page one)."""
        body: dict[str, Any] = {}
        if link_style is not None:
            body["linkStyle"] = link_style
        if page_size is not None:
            body["pageSize"] = page_size
        self._call("POST", "/__admin/config", body)


@contextlib.contextmanager
def run_fhir_server(
    bundles: Iterable[Path | str] = (),
    *,
    token: str | None = None,
    startup_timeout: float = 60.0,
    verbose: bool = False,
) -> Iterator[FhirTestServer]:
    """Start the engine on a free 127.0.0.1 port, load `bundles`, yield it, stop it."""
    ensure_node_modules()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed: run `make services` (tools/ensure-services.sh)")
    command = [node, str(SERVER_DIR / "server.mjs"), "--port", "0"]
    if token:
        command += ["--token", token]
    if verbose:
        command.append("--verbose")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRSERVER_")}
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, cwd=SERVER_DIR, stdout=subprocess.PIPE, stderr=stderr, env=env)
        server: FhirTestServer | None = None
        try:
            port = _wait_for_port(process, startup_timeout, stderr)
            server = FhirTestServer(f"http://127.0.0.1:{port}", process)
            for bundle in bundles:
                server.load_bundle(bundle)
            yield server
        finally:
            if server is not None:
                server.close()
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()


def _wait_for_port(process: subprocess.Popen[bytes], timeout: float, stderr: Any) -> int:
    """Read the server's first stdout line (`LISTENING <port>`) within `timeout` seconds."""
    stdout = process.stdout
    assert stdout is not None
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    first = line[0].decode().strip() if line else ""
    if not first.startswith("LISTENING "):
        process.kill()
        process.wait(timeout=5)
        stderr.seek(0)
        detail = stderr.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"test FHIR server did not start (first line {first!r}):\n{detail}")
    return int(first.split()[1])
