"""Processes for the benchmarks: gunicorn servers, workers, CPU pinning and CPU-time accounting.

Everything listens on 127.0.0.1 and every wait is bounded.
"""

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
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CPUS = os.cpu_count() or 1
# Two cores: the servers get core 0, the load generator core 1 ("pinned away from the server").
SERVER_CPUS = "0" if CPUS > 1 else None
LOAD_CPUS = "1" if CPUS > 1 else None


def pinned(command: list[str], cpus: str | None) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", cpus, *command] if cpus and taskset else command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HOFHIR_")} | extra


class Server:
    """A gunicorn with hofhir's production settings (cds_hooks/gunicorn_conf.py), pinned to SERVER_CPUS."""

    def __init__(self, app: str, env: dict[str, str], name: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix=f"hofhir-bench-{name}-"))
        self.log = self.folder / "server.log"
        full = clean_env(env) | {
            "HOFHIR_BIND": f"127.0.0.1:{self.port}",
            "PROMETHEUS_MULTIPROC_DIR": str(self.folder / "metrics"),
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                pinned([sys.executable, "-m", "gunicorn", "-c", "python:cds_hooks.gunicorn_conf", app], SERVER_CPUS),
                env=full,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn {app} exited at start:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"gunicorn {app} did not answer in 60 s")

    def stop(self) -> None:
        stop_group(self.process)


class Worker:
    """A `hofhir worker` (Celery) with its own heartbeat folder; ready when it consumes."""

    def __init__(self, env: dict[str, str], name: str, cpus: str | None = SERVER_CPUS) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"hofhir-bench-{name}-"))
        self.log = self.folder / "worker.log"
        full = clean_env(env) | {"HOFHIR_WORKER_HEARTBEAT_DIR": str(self.folder)}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                pinned([sys.executable, "-m", "cds_hooks.cli", "worker", "--hostname", f"{name}@%h"], cpus),
                env=full,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not (self.folder / "ready").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"worker {name} did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def finished(self, task: str) -> int:
        """Tasks of this name the worker finished with success (its hofhir.task log lines)."""
        marker = f'"task":"{task}","state":"SUCCESS"'
        return self.log.read_text().count(marker)

    def stop(self) -> None:
        stop_group(self.process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process we started and its children (its own session), by its id."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextlib.contextmanager
def started(thing: Server | Worker) -> Iterator[Server | Worker]:
    try:
        yield thing
    finally:
        thing.stop()
