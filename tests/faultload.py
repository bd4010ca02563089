"""A steady hook-call load against a real `hofhir serve` in Redis mode while faults are injected into real
processes (Redis SIGSTOPped, the worker killed with -9). Shared by tests/integration/test_faults.py and
benchmarks/faults.py. Loopback only, every loop bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.dates import to_today
from tests.processes import RedisServer, Worker, redis_server, start_service
from tests.vignettes import load


@dataclass
class Call:
    started: float  # monotonic, when the request was sent
    ms: float  # wall time of the whole HTTP call
    status: int  # 0: no answer (client timeout or connection error)
    path: str  # X-Hofhir-Evaluated-By


@dataclass
class Phase:
    name: str
    calls: list[Call] = field(default_factory=list)

    def ms(self) -> list[float]:
        return sorted(c.ms for c in self.calls)

    def summary(self) -> dict[str, Any]:
        values = self.ms()
        if not values:
            return {"phase": self.name, "n": 0}
        q = statistics.quantiles(values, n=100) if len(values) > 1 else [values[0]] * 99
        paths: dict[str, int] = {}
        for c in self.calls:
            paths[c.path] = paths.get(c.path, 0) + 1
        return {
            "phase": self.name,
            "n": len(values),
            "p50": round(q[49], 1),
            "p99": round(q[98], 1),
            "max": round(values[-1], 1),
            "non200": sum(1 for c in self.calls if c.status != 200),
            "paths": paths,
        }


def hook_bodies(count: int) -> list[dict[str, Any]]:
    """`count` different patient-view requests: the s02 vignette (five cards) with its patient renamed
    everywhere (context, Patient.id, every reference), so no call is answered from the run-ahead cache."""
    request, expect = load("s02")
    body = to_today(request, expect["now"])
    patient = str(body["context"]["patientId"])
    text = orjson.dumps(body).decode()
    bodies = []
    stamp = time.monotonic_ns()
    for i in range(count):
        renamed = text.replace(f'"{patient}"', f'"fault-{stamp}-{i}"').replace(
            f"Patient/{patient}", f"Patient/fault-{stamp}-{i}"
        )
        b = orjson.loads(renamed)
        b["hookInstance"] = f"fault-{i}"
        bodies.append(b)
    return bodies


class Load:
    """Calls at a fixed rate (open loop: a slow answer never delays the next call) from a few threads."""

    def __init__(self, base: str, rate: float, client_timeout_s: float = 5.0) -> None:
        self.base = base
        self.interval = 1.0 / rate
        self.client_timeout_s = client_timeout_s
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.bodies = iter(hook_bodies(5_000))

    def _one(self, client: httpx.Client, body: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            r = client.post("/cds-services/hofhir-patient-view", json=body)
            status, path = r.status_code, r.headers.get("X-Hofhir-Evaluated-By", "")
        except httpx.HTTPError:
            status, path = 0, "no-answer"
        call = Call(started, (time.monotonic() - started) * 1000, status, path)
        with self.lock:
            self.calls.append(call)

    def run(self, seconds: float) -> list[Call]:
        """Send calls for `seconds`; returns the calls sent in that time once all have answered."""
        from concurrent.futures import ThreadPoolExecutor

        first = len(self.calls)
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        with (
            httpx.Client(base_url=self.base, timeout=self.client_timeout_s, limits=limits) as client,
            ThreadPoolExecutor(max_workers=24) as pool,
        ):
            start = time.monotonic()
            n = int(seconds / self.interval)
            for i in range(n):
                delay = start + i * self.interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._one, client, next(self.bodies))
        with self.lock:
            return sorted(self.calls[first:], key=lambda c: c.started)


@contextlib.contextmanager
def stack(deadline_ms: int, **extra_env: str) -> Iterator[tuple[RedisServer, Worker, str]]:
    """A Redis, one `hofhir worker` and a `hofhir serve` in Redis mode where every call goes to the worker
    (HOFHIR_WORKER_MIN_RESOURCES=0: the path the faults are about)."""
    with redis_server() as broker:
        common = {"HOFHIR_REDIS_URL": broker.url, "HOFHIR_AUTH": "off", "HOFHIR_LOG_LEVEL": "WARNING"}
        worker = Worker(common | {"HOFHIR_WORKER_CONCURRENCY": "1", "HOFHIR_TASK_TIME_LIMIT_S": "6"}, "faults")
        proc: subprocess.Popen[bytes] | None = None
        try:
            worker.wait_ready()
            env = common | {
                "HOFHIR_DEADLINE_MS": str(deadline_ms),
                "HOFHIR_WORKER_MIN_RESOURCES": "0",
                **extra_env,
            }
            proc, base = start_service(env, worker.folder / "serve.log")
            yield broker, worker, base
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            worker.stop()
            if broker.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(broker.process.pid, signal.SIGCONT)


def during(load: Load, seconds: float, fault: Callable[[], None], undo: Callable[[], None] | None = None) -> list[Call]:
    """Run the load for `seconds` with `fault` applied at its start (and `undo` at its end)."""
    fault()
    try:
        return load.run(seconds)
    finally:
        if undo is not None:
            undo()


def run_scenarios(
    deadline_ms: int, rate: float, normal_s: float, stopped_s: float, killed_s: float
) -> tuple[list[Phase], dict[str, int]]:
    """normal -> Redis SIGSTOPped -> Redis back -> worker killed -9; the calls of each phase."""
    phases = [Phase("normal"), Phase("redis-sigstop"), Phase("worker-killed")]
    with stack(deadline_ms) as (broker, worker, base):
        load = Load(base, rate)
        load.run(1.0)  # warm-up, not counted
        phases[0].calls = load.run(normal_s)
        assert broker.process is not None
        pid = broker.process.pid
        phases[1].calls = during(
            load, stopped_s, lambda: os.kill(pid, signal.SIGSTOP), lambda: os.kill(pid, signal.SIGCONT)
        )
        load.run(1.0)  # Redis back: let the service see it again, not counted
        phases[2].calls = during(load, killed_s, worker.kill)
        scraped = httpx.get(f"{base}/metrics", timeout=5).text
    fallbacks: dict[str, int] = {}
    for line in scraped.splitlines():
        if line.startswith("hofhir_inline_fallbacks_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            fallbacks[reason] = int(float(line.rsplit(" ", 1)[1]))
    return phases, fallbacks
