"""A real `hofhir serve` process for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOFHIR_")} | env
    # The log goes to a file, not a pipe: nobody reads a pipe while the service runs, and a full one hangs it.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the service process
    proc = subprocess.Popen(
        [sys.executable, "-m", "cds_hooks.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"hofhir serve exited: {log.read().decode(errors='replace')}")
        try:
            if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("hofhir serve did not start in 30 s")


@pytest.fixture(scope="session")
def service() -> Iterator[str]:
    proc, base = start_service({"HOFHIR_AUTH": "off"})
    yield base
    proc.terminate()
    proc.wait(timeout=10)
