"""Floor, inline and Redis mode measured in turns on one shared machine (a supplement to run.py).

run.py measures each server once, minutes apart; on a machine whose speed drifts (other tenants) the
ratios then move by a third from run to run. Here all three servers run at once and wrk visits them in
turn, several rounds (every other round in the reverse order), so each ratio compares figures taken seconds
apart; the median ratio is printed.

    python benchmarks/interleaved.py [--rounds 5] [--seconds 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Server, cpu_seconds
from benchmarks.run import SERVICE, vignette_body, wrk
from tests.processes import redis_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hofhir-interleaved-"))
    body, path = vignette_body(), f"/cds-services/{SERVICE}"
    with redis_server() as broker:
        broker_pid = broker.process.pid if broker.process is not None else None
        servers = {
            "floor": Server("benchmarks.floor:app", {"HOFHIR_AUTH": "off"}, "floor"),
            "inline": Server("cds_hooks.app:create_app()", {"HOFHIR_AUTH": "off"}, "inline"),
            "redis": Server(
                "cds_hooks.app:create_app()", {"HOFHIR_AUTH": "off", "HOFHIR_REDIS_URL": broker.url}, "redis"
            ),
        }
        rows = [
            ("floor", {}),
            ("inline", {}),
            ("inline", {"vary": "s02-patient"}),
            ("redis", {"vary": "s02-patient"}),
        ]
        try:
            for name, options in rows:  # warm-up
                wrk(servers[name].base + path, body, folder, seconds=2, **options)
            rounds: list[list[float]] = []
            # CPU ms per request of the server's processes (and of the Redis server, for Redis mode): less
            # swayed than req/s by what else the machine runs, since waiting for a core costs no CPU time.
            cpu: list[list[float]] = []
            for r in range(args.rounds):
                # Odd rounds run the servers in the reverse order: a drift within a round favours neither side.
                order = range(len(rows)) if r % 2 == 0 else range(len(rows) - 1, -1, -1)
                measured: dict[int, float] = {}
                cpu_ms: dict[int, float] = {}
                for i in order:
                    name, options = rows[i]
                    pids = [servers[name].process.pid] + ([broker_pid] if name == "redis" and broker_pid else [])
                    before = sum(cpu_seconds(pid) for pid in pids)
                    figures = wrk(servers[name].base + path, body, folder, seconds=args.seconds, **options)
                    used = sum(cpu_seconds(pid) for pid in pids) - before
                    measured[i] = figures["rps"]
                    cpu_ms[i] = used * 1000 / max(1, figures["requests"])
                rps = [measured[i] for i in range(len(rows))]
                rounds.append(rps)
                cpu.append([cpu_ms[i] for i in range(len(rows))])
                print(
                    f"round {r}: floor {rps[0]:.0f}, inline {rps[1]:.0f} ({rps[1] / rps[0]:.3f}x floor), "
                    f"inline varied {rps[2]:.0f}, Redis varied {rps[3]:.0f} ({rps[3] / rps[2]:.2f}x inline varied); "
                    f"CPU ms a request: inline varied {cpu[-1][2]:.2f}, Redis varied {cpu[-1][3]:.2f} (with Redis)",
                    flush=True,
                )
        finally:
            for server in servers.values():
                server.stop()
    inline_ratio = statistics.median(r[1] / r[0] for r in rounds)
    redis_ratio = statistics.median(r[3] / r[2] for r in rounds)
    inline_cpu = statistics.median(c[2] for c in cpu)
    redis_cpu = statistics.median(c[3] for c in cpu)
    print(f"median: inline {inline_ratio:.3f}x floor; Redis mode (varied) {redis_ratio:.2f}x inline (varied)")
    print(
        f"median CPU ms a request: inline varied {inline_cpu:.2f}, Redis mode varied {redis_cpu:.2f} (server + Redis)"
    )


if __name__ == "__main__":
    main()
