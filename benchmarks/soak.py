"""Soak: minutes of mixed traffic against hofhir under gunicorn, with memory per process at start and end.

    python benchmarks/soak.py [--seconds 300] [--clients 4] [--redis-url redis://127.0.0.1:6379/15] [--set HOFHIR_X=V]

Starts gunicorn with the production config (cds_hooks/gunicorn_conf.py: 2 workers x 4 threads) on a free
loopback port, JWT checks off, embedded mode unless --redis-url is given. Clients send, in a fixed rotation:
every vignette's hook call (dates shifted to today), feedback on the cards that came back, discovery,
/rules, /metrics, Subscription handshakes and event notifications, and bad requests (malformed JSON,
wrong content type, unknown service), for a bounded time and a bounded number of requests. Prints the
status counts (any 5xx is a failure), latency percentiles per kind, and the RSS of the master and each
worker at start, every minute and at the end; writes the same as JSON (--json). Loopback only.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dates import to_today  # noqa: E402
from tests.processes import free_port, wait_healthy  # noqa: E402
from tests.vignettes import cases, load  # noqa: E402

MAX_REQUESTS = 2_000_000  # a hard bound on top of the time bound
SUBSCRIPTIONS = ROOT.parent / "shared" / "fhir-samples" / "subscriptions"


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def memory(master: int) -> dict[str, int]:
    out = {"master": rss_kib(master)}
    for i, pid in enumerate(children(master)):
        out[f"worker{i + 1}"] = rss_kib(pid)
    return out


def notification_bodies() -> list[bytes]:
    bodies = []
    for path in sorted(SUBSCRIPTIONS.rglob("*.json")):
        raw = path.read_bytes()
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("resourceType") in ("Bundle", "Parameters", "SubscriptionStatus"):
            bodies.append(raw)
    return bodies


def start(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("HOFHIR_")} | env
    full |= {"HOFHIR_BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": f"/tmp/hofhir-soak-{port}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:cds_hooks.gunicorn_conf", "cds_hooks.app:create_app()"],
        env=full,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    if not wait_healthy(proc, base, timeout=60):
        proc.kill()
        raise SystemExit("gunicorn did not answer on /healthz")
    return proc, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--set", action="append", default=[], metavar="HOFHIR_X=VALUE", help="a setting for the service"
    )
    args = parser.parse_args()
    env = {"HOFHIR_AUTH": "off", "HOFHIR_LOG_LEVEL": "WARNING"}
    env |= dict(item.split("=", 1) for item in args.set)
    if args.redis_url:
        env["HOFHIR_REDIS_URL"] = args.redis_url
    hooks = []
    for case in cases():
        request, expect = load(case)
        if "http_status" not in expect:
            hooks.append((expect["service_id"], orjson.dumps(to_today(request, expect["now"]))))
    notes = notification_bodies()
    proc, base = start(env)
    master = proc.pid
    samples: list[tuple[float, dict[str, int]]] = [(0.0, memory(master))]
    statuses: Counter[tuple[str, int]] = Counter()
    latency: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    stop_at = time.monotonic() + args.seconds
    sent = itertools.count()
    json_headers = {"Content-Type": "application/json"}

    def client_loop(seed: int) -> None:
        rotation = itertools.cycle(range(seed, seed + 1000))
        with httpx.Client(base_url=base, timeout=10) as http:
            while time.monotonic() < stop_at and next(sent) < MAX_REQUESTS:
                step = next(rotation)
                kind, response = "hook", None
                started = time.perf_counter()
                slot = step % 10
                if slot < 5:
                    service, body = hooks[step % len(hooks)]
                    response = http.post(f"/cds-services/{service}", content=body, headers=json_headers)
                    if response.status_code == 200:
                        cards = response.json().get("cards", [])
                        if cards and step % 3 == 0:
                            fb = {
                                "feedback": [
                                    {
                                        "card": cards[0]["uuid"],
                                        "outcome": "accepted",
                                        "outcomeTimestamp": "2026-11-30T00:00:00Z",
                                    }
                                ]
                            }
                            r = http.post(f"/cds-services/{service}/feedback", json=fb)
                            with lock:
                                statuses[("feedback", r.status_code)] += 1
                elif slot == 5:
                    kind, response = "discovery", http.get("/cds-services")
                elif slot == 6:
                    kind = "rules/metrics"
                    response = http.get("/rules" if step % 2 else "/metrics", headers={"Accept": "application/json"})
                elif slot == 7 and notes:
                    kind = "notification"
                    response = http.post(
                        "/fhir/notifications",
                        content=notes[step % len(notes)],
                        headers={"Content-Type": "application/fhir+json"},
                    )
                else:
                    kind = "bad input"
                    bad = step % 3
                    if bad == 0:
                        response = http.post(
                            "/cds-services/hofhir-patient-view", content=b"{not json", headers=json_headers
                        )
                    elif bad == 1:
                        response = http.post(
                            "/cds-services/hofhir-patient-view", content=b"{}", headers={"Content-Type": "text/plain"}
                        )
                    else:
                        response = http.post("/cds-services/no-such-service", content=b"{}", headers=json_headers)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    statuses[(kind, response.status_code)] += 1
                    latency[kind].append(elapsed)

    threads = [threading.Thread(target=client_loop, args=(i * 7,), daemon=True) for i in range(args.clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    next_sample = began + 60
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if time.monotonic() >= next_sample:
            samples.append((time.monotonic() - began, memory(master)))
            next_sample += 60
    samples.append((time.monotonic() - began, memory(master)))
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)

    total = sum(statuses.values())
    errors = sum(n for (_, status), n in statuses.items() if status >= 500)
    print(f"soak: {args.seconds:.0f} s, {args.clients} clients, {total} requests, {errors} answered 5xx")
    print(f"{'kind':14} {'status':>6} {'count':>8}")
    for (kind, status), n in sorted(statuses.items()):
        print(f"{kind:14} {status:6d} {n:8d}")
    print(f"\n{'kind':14} {'n':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, values in sorted(latency.items()):
        values.sort()
        q = statistics.quantiles(values, n=100) if len(values) > 1 else [values[0]] * 99
        print(f"{kind:14} {len(values):7d} {q[49]:8.1f} {q[98]:8.1f} {values[-1]:8.1f}")
    print("\nRSS (MiB) per process")
    names = sorted({name for _, m in samples for name in m})
    print(f"{'t (s)':>7} " + " ".join(f"{n:>9}" for n in names))
    for at, m in samples:
        print(f"{at:7.0f} " + " ".join(f"{m.get(n, 0) / 1024:9.1f}" for n in names))
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "seconds": args.seconds,
                    "clients": args.clients,
                    "requests": total,
                    "5xx": errors,
                    "statuses": {f"{k} {s}": n for (k, s), n in statuses.items()},
                    "rss_kib": [{"t": at, **m} for at, m in samples],
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
