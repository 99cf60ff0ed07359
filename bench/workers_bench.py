"""What more gateway processes buy, on each store: proxied throughput of one and of two
processes (``spanlab serve --workers``), on SQLite and on PostgreSQL, against the
direct path, in the same run.

Each round runs the direct path (load generator -> mock) and then every configuration
in a rotating order, each for ``--seconds`` at ``--concurrency`` clients with an
instant upstream (the gateway is the bottleneck: what a second process can add), and
records req/s, errors, and the CPU seconds per 1,000 calls of the whole gateway
process tree (supervisor, workers, span writers). The figure is the median over the
rounds after the first (warm-up). PostgreSQL is a throwaway cluster
(`bench.postgres.PostgresServer`, Debian's binaries).

Run: ``python -m bench.workers_bench`` (``--rounds 3 --seconds 4``); results go to
``bench/results/<time>-workers.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.postgres import PostgresServer
from bench.procs import Gateway, LoadGenerator, MockUpstream
from bench.util import HEADERS, median
from bench.writer_bench import REQUEST

RESULTS = Path(__file__).resolve().parent / "results"


def throughput(
    loadgen: LoadGenerator, port: int, concurrency: int, seconds: float
) -> dict[str, Any]:
    return loadgen.run(
        {
            "kind": "throughput",
            "host": "127.0.0.1",
            "port": port,
            "path": "/v1/chat/completions",
            "body": REQUEST,
            "headers": dict(HEADERS),
            "concurrency": concurrency,
            "duration": seconds,
            "timeout": 30.0,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    configs: list[tuple[str, int]] = [("sqlite", 1), ("sqlite", 2)]
    if not args.no_postgres:
        configs += [("postgresql", 1), ("postgresql", 2)]
    rows: dict[str, list[dict[str, Any]]] = {"direct": []}
    with tempfile.TemporaryDirectory(prefix="spanlab-workers-bench-") as tmp:
        workdir = Path(tmp)
        pg = None if args.no_postgres else PostgresServer()
        if pg is not None:
            pg.__enter__()
        mock, loadgen = MockUpstream(), LoadGenerator()
        gateways: dict[str, Gateway] = {}
        try:
            for store, workers in configs:
                name = f"{store}-{workers}"
                db = None
                if store == "postgresql":
                    assert pg is not None
                    db = pg.create_database(name.replace("-", "_"))
                gateways[name] = Gateway(workdir, name, mock, True, db=db, workers=workers)
                rows[name] = []
            time.sleep(2.0)  # every worker up
            names = list(gateways)
            for round_no in range(args.rounds + 1):
                order = names[round_no % len(names) :] + names[: round_no % len(names)]
                direct = throughput(loadgen, mock.port, args.concurrency, args.seconds)
                rows["direct"].append(
                    {"round": round_no, "rps": direct["rps"], "errors": direct["errors"]}
                )
                for name in order:
                    gateway = gateways[name]
                    cpu = gateway.tree_cpu_seconds()
                    result = throughput(loadgen, gateway.port, args.concurrency, args.seconds)
                    cpu = gateway.tree_cpu_seconds() - cpu
                    calls = max(1, result["sent"])
                    rows[name].append(
                        {
                            "round": round_no,
                            "rps": result["rps"],
                            "ratio": result["rps"] / direct["rps"] if direct["rps"] else None,
                            "errors": result["errors"],
                            "cpu_s_per_1000": 1000.0 * cpu / calls,
                        }
                    )
                    print(
                        f"round {round_no} {name}: {result['rps']:.0f} req/s"
                        f" (direct {direct['rps']:.0f}), errors {result['errors']}",
                        flush=True,
                    )
        finally:
            for gateway in gateways.values():
                gateway.stop()
            loadgen.stop()
            mock.stop()
            if pg is not None:
                pg.__exit__(None, None, None)
    table: dict[str, dict[str, float | None]] = {
        name: {
            key: median([r[key] for r in measured[1:]])
            for key in ("rps", "ratio", "errors", "cpu_s_per_1000")
            if key in measured[0]
        }
        for name, measured in rows.items()
    }
    print(f"\n{'configuration':<16}{'req/s':>10}{'/direct':>10}{'errors':>8}{'CPU s/1000':>12}")
    for name, figures in table.items():
        ratio: float | None = figures.get("ratio")
        per_call: float | None = figures.get("cpu_s_per_1000")
        rps, errors = figures["rps"] or 0.0, figures["errors"] or 0.0
        print(
            f"{name:<16}{rps:>10.0f}"
            f"{'' if ratio is None else f'{ratio:.2f}':>10}"
            f"{errors:>8.0f}"
            f"{'' if per_call is None else f'{per_call:.2f}':>12}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / time.strftime("%Y%m%d-%H%M%S-workers.json")
    out.write_text(
        json.dumps(
            {
                "plan": vars(args),
                "machine": {
                    "cpus": psutil.cpu_count(),
                    "python": platform.python_version(),
                    "load_average": list(psutil.getloadavg()),
                },
                "median": table,
                "rounds": rows,
            },
            indent=2,
        )
    )
    print(f"saved {out}")


if __name__ == "__main__":
    main()
