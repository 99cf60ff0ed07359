"""The matrix benchmark: a variants x inputs run through a real `spanlab serve` against
the mock upstream, and live proxy traffic beside it.

Figures:

* cells/s: cells / wall time from ``POST /experiments/{id}/run`` to the run's end;
* the gateway's overhead per cell: each cell's ``duration_ms`` (what the engine
  measured around the pipeline call, retries included; there are none here) minus
  the mock's own latency (a direct latency job against the mock, no gateway), p50/p95;
* live traffic: the proxy's own figures in short closed-loop bursts of the load
  generator (default c=1), each paired with a burst straight to the mock, in
  alternating order: the added latency is proxied minus direct, p50 and p99, the
  median over pairs; alone, then while the matrix runs in the same gateway. A pair
  that outlives the run is dropped (it would measure less overlap than it says).

Not a timed test. Run: ``python -m bench.matrix_bench`` (1,000 cells: 4 variants x 250
inputs at concurrency 32) or smaller: ``--inputs 50`` (200 cells).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.procs import Gateway, LoadGenerator, MockUpstream, Nginx
from bench.util import HEADERS, median, percentile
from bench.writer_bench import REQUEST


def _job(loadgen: LoadGenerator, kind: str, port: int, **spec: Any) -> dict[str, Any]:
    job = {
        "kind": kind,
        "host": "127.0.0.1",
        "port": port,
        "path": "/v1/chat/completions",
        "body": REQUEST,
        "headers": dict(HEADERS),
        **spec,
    }
    return loadgen.run(job)


def _ms(summary: dict[str, Any], p: str) -> float | None:
    value = summary.get(p)
    return None if value is None else round(float(value) / 1000.0, 3)


def setup_matrix(client: httpx.Client, variants: int, inputs: int) -> str:
    r = client.post("/experiments", json={"name": "matrix bench"})
    r.raise_for_status()
    experiment_id: str = r.json()["id"]
    for i in range(variants):
        body = {
            "name": f"v{i}",
            "systemPrompt": f"You are variant {i}. Answer briefly.",
            "config": {"model": "gpt-4o-mini", "temperature": round(0.1 * i, 1)},
        }
        client.post(f"/experiments/{experiment_id}/variants", json=body).raise_for_status()
    lines = [f"Question number {n}: what is {n} + {n}?" for n in range(inputs)]
    client.post(f"/experiments/{experiment_id}/inputs", json={"inputs": lines}).raise_for_status()
    return experiment_id


def wait_for_run(client: httpx.Client, experiment_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress: dict[str, Any] = client.get(f"/experiments/{experiment_id}/progress").json()
        if progress["status"] != "running":
            return progress
        time.sleep(0.05)
    raise RuntimeError(f"the matrix run did not end within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--inputs", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--burst-s", type=float, default=0.5, help="one live traffic burst")
    parser.add_argument("--bursts", type=int, default=6, help="burst pairs without the matrix")
    parser.add_argument("--burst-clients", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument("--out", type=Path, help="also write the figures (JSON) to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="spanlab-matrix-bench-") as tmp:
        workdir = Path(tmp)
        mock = MockUpstream()
        gateway = Gateway(workdir, "matrix", mock, capture=True)
        loadgen = LoadGenerator()
        try:
            result = matrix_section(
                mock,
                gateway,
                loadgen,
                None,
                variants=args.variants,
                inputs=args.inputs,
                concurrency=args.concurrency,
                bursts=args.bursts,
                burst_s=args.burst_s,
                burst_clients=args.burst_clients,
                timeout=args.timeout,
            )
        finally:
            loadgen.stop()
            gateway.stop()
            mock.stop()
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(report(result))


def _pair(
    loadgen: LoadGenerator, ports: dict[str, int], burst: dict[str, Any], flip: bool
) -> dict[str, Any]:
    """One proxied burst and one direct burst (to the mock), and one through nginx when
    it is there, in alternating order; the added latency is their difference, so load
    from elsewhere on the machine shows in both and cancels out."""
    order = list(ports.items())
    return {
        name: _job(loadgen, "throughput", port, **burst)
        for name, port in (order[::-1] if flip else order)
    }


def matrix_section(
    mock: MockUpstream,
    gateway: Gateway,
    loadgen: LoadGenerator,
    nginx: Nginx | None,
    *,
    variants: int = 4,
    inputs: int = 250,
    concurrency: int = 32,
    bursts: int = 6,
    burst_s: float = 0.5,
    burst_clients: int = 1,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """The figures of one matrix run beside live traffic (the bench's section 7, and
    this module's main)."""
    base = f"http://127.0.0.1:{gateway.port}"
    burst = {"concurrency": burst_clients, "duration": burst_s}
    ports = {"proxied": gateway.port, "direct": mock.port}
    if nginx is not None:
        ports["nginx"] = nginx.port
    # The mock's own latency (no gateway), and the proxy's alone (warm-up first).
    direct = _job(loadgen, "latency", mock.port, n=300)
    warm = _job(loadgen, "throughput", gateway.port, concurrency=burst_clients, duration=0.5)
    proxied_sent = warm["sent"]
    alone = [_pair(loadgen, ports, burst, bool(i % 2)) for i in range(bursts)]
    # The run is started as the web UI starts one: no provider credentials in the request
    # (the gateway's configured provider answers for them). A run started with the
    # caller's own credentials stays in the gateway's process (they exist nowhere else);
    # otherwise `spanlab serve` runs the cells in its background process.
    manage = {"user-agent": HEADERS["user-agent"]}
    with httpx.Client(base_url=base, headers=manage, timeout=60.0, trust_env=False) as client:
        experiment_id = setup_matrix(client, variants, inputs)
        started = time.monotonic()
        r = client.post(f"/experiments/{experiment_id}/run", json={"concurrency": concurrency})
        r.raise_for_status()
        cells = int(r.json()["cells"])
        # Pairs of short bursts while the run goes on; only those that ended with the
        # matrix still running count (a pair outliving the run would measure less than
        # it says).
        beside: list[dict[str, Any]] = []
        outlived: list[dict[str, Any]] = []
        while True:
            result = _pair(loadgen, ports, burst, bool(len(beside) % 2))
            during = client.get(f"/experiments/{experiment_id}/progress").json()
            if during["status"] != "running":
                outlived.append(result)
                break
            beside.append(result)
        progress = wait_for_run(client, experiment_id, timeout)
        wall = time.monotonic() - started
        detail = client.get(f"/experiments/{experiment_id}").json()
    proxied_sent += sum(p["proxied"]["sent"] for p in alone + beside + outlived)
    alone_figures, beside_figures = _bursts(alone), _bursts(beside)
    a, b = alone_figures["added_p50_ms"], beside_figures["added_p50_ms"]
    durations = [
        float(run["duration_ms"])
        for run in detail["runs"]
        if run.get("matrix_run_id") and run.get("duration_ms") is not None
    ]
    mock_ms = _ms(direct["latency_us"], "p50") or 0.0
    overhead = [d - mock_ms for d in durations]
    return {
        "cells": cells,
        "variants": variants,
        "inputs": inputs,
        "concurrency": concurrency,
        "status": progress["status"],
        "completed": progress["completed"],
        "failed": progress["failed"],
        "retries": progress["retries"],
        "wall_s": round(wall, 3),
        "cells_per_s": round(cells / wall, 1) if wall else None,
        "mock_latency_p50_ms": mock_ms,
        "cell_overhead_ms": {
            "p50": _round(percentile(overhead, 50)),
            "p95": _round(percentile(overhead, 95)),
            "max": _round(max(overhead) if overhead else None),
        },
        "live_alone": alone_figures,
        "live_beside_matrix": {**beside_figures, "pairs_outliving_the_run_dropped": len(outlived)},
        "added_p50_beside_minus_alone_ms": None if a is None or b is None else _round(b - a),
        "live_requests_proxied": proxied_sent,
        "burst": {"clients": burst_clients, "seconds": burst_s},
        "gateway_cpu_s": round(gateway.cpu_seconds(), 2),
    }


def _bursts(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over pairs of bursts: the proxied p50, p99 and req/s, and the added
    latency (proxied minus direct, per pair)."""
    if not pairs:
        return {
            "pairs": 0,
            "nginx_added_p50_ms": None,
            "nginx_added_p99_ms": None,
            "p50_ms": None,
            "p99_ms": None,
            "rps": None,
            "added_p50_ms": None,
            "added_p99_ms": None,
        }

    def added(p: str) -> float | None:
        return _round(
            median(
                [
                    (_ms(x["proxied"]["latency_us"], p) or 0.0)
                    - (_ms(x["direct"]["latency_us"], p) or 0.0)
                    for x in pairs
                ]
            )
        )

    def nginx_added(p: str) -> float | None:
        if "nginx" not in pairs[0]:
            return None
        return _round(
            median(
                [
                    (_ms(x["nginx"]["latency_us"], p) or 0.0)
                    - (_ms(x["direct"]["latency_us"], p) or 0.0)
                    for x in pairs
                ]
            )
        )

    return {
        "pairs": len(pairs),
        "nginx_added_p50_ms": nginx_added("p50"),
        "nginx_added_p99_ms": nginx_added("p99"),
        "p50_ms": _round(median([_ms(x["proxied"]["latency_us"], "p50") for x in pairs])),
        "p99_ms": _round(median([_ms(x["proxied"]["latency_us"], "p99") for x in pairs])),
        "rps": _round(median([x["proxied"]["rps"] for x in pairs])),
        "added_p50_ms": added("p50"),
        "added_p99_ms": added("p99"),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def report(r: dict[str, Any]) -> str:
    alone, beside = r["live_alone"], r["live_beside_matrix"]

    def live(x: dict[str, Any]) -> str:
        return (
            f"added p50 {x['added_p50_ms']} ms, p99 {x['added_p99_ms']} ms"
            f" (proxied p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms, {x['rps']} req/s;"
            f" {x['pairs']} pair(s))"
        )

    lines = [
        f"matrix: {r['variants']} variants x {r['inputs']} inputs = {r['cells']} cells,"
        f" concurrency {r['concurrency']}: {r['status']} ({r['completed']} completed,"
        f" {r['failed']} failed, {r['retries']} retries)",
        f"  {r['cells_per_s']} cells/s ({r['wall_s']} s wall; gateway CPU {r['gateway_cpu_s']} s)",
        f"  gateway overhead per cell (cell duration - mock p50 {r['mock_latency_p50_ms']} ms):"
        f" p50 {r['cell_overhead_ms']['p50']} ms, p95 {r['cell_overhead_ms']['p95']} ms",
        f"live proxy traffic, c={r['burst']['clients']}, {r['burst']['seconds']} s bursts,"
        " proxied minus direct:",
        f"  alone:         {live(alone)}",
        f"  beside matrix: {live(beside)}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
