"""Real processes for integration tests: a Redis server of our own, `hofhir worker` processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False): a wait on a condition."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(proc: subprocess.Popen[bytes], base: str, timeout: float = 30.0) -> bool:
    """True once GET base/healthz answers 200; False when the process exits first or the time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.1)
    return False


def start_service(env: dict[str, str], log: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`hofhir serve` on a free loopback port with exactly `env` as its HOFHIR_* settings. Its log goes to a
    file (`log`, or a temporary one), never a pipe: a pipe nobody reads fills up and then hangs the service."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("HOFHIR_")} | env
    out = log.open("wb") if log is not None else tempfile.TemporaryFile()  # noqa: SIM115 - outlives this call
    proc = subprocess.Popen(
        [sys.executable, "-m", "cds_hooks.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=full,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    if not wait_healthy(proc, base):
        proc.kill()
        proc.wait()
        out.seek(0)
        raise RuntimeError(f"hofhir serve did not start: {out.read()[-2000:].decode(errors='replace')}")
    return proc, base


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make services`")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Worker:
    """A `hofhir worker` process with its own heartbeat folder."""

    def __init__(self, env: dict[str, str], name: str, pool: str | None = "prefork") -> None:
        """`pool`: Celery's --pool; None leaves it to the worker role (HOFHIR_WORKER_ROLE)."""
        self.folder = Path(tempfile.mkdtemp(prefix=f"hofhir-{name}-"))
        self.log = self.folder / "worker.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith("HOFHIR_")} | env
        full["HOFHIR_WORKER_HEARTBEAT_DIR"] = str(self.folder)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cds_hooks.cli",
                    "worker",
                    "--hostname",
                    f"{name}@%h",
                    *(["--pool", pool] if pool else []),
                ],
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.folder / "ready").exists():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group (the main process and its pool children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()
