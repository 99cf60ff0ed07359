"""``python -m bench``: the gateway against the direct path and nginx, side by side.

Starts a mock upstream, `spanlab serve` and a load generator as separate processes
on loopback, runs the sections, prints one table and writes it (with every round's
raw figures) as JSON under ``bench/results/``. ``--quick`` runs fewer, shorter
rounds (about a minute and a half) for a before/after check while working.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import procs
from bench.feature_rows import keys_quotas, postgres
from bench.report import render, targets
from bench.runner import QUICK, Bench, Plan

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = (
    "spanlab", "uvicorn", "starlette", "httpx", "httpcore", "anyio", "uvloop", "httptools",
    "aiohttp", "httpx-aiohttp", "orjson", "aiosqlite", "prometheus-client", "asyncpg",
)  # fmt: skip


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    root = procs.GATEWAY_ROOT  # the commit of the gateway measured
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "gateway"],
                cwd=root,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    except OSError:
        commit, dirty = "unknown", False
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "commit": commit + ("+dirty" if dirty else ""),
        "gateway_root": str(procs.GATEWAY_ROOT),
        "load_avg_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument(
        "--sections",
        default="1,2,3,4,5,6,7,8,9",
        help="comma-separated sections to run (1 latency, 2 throughput, 3 streaming at 8"
        " and 64, 4 1,000 concurrent streams, 5 capture, 6 writer alone, 7 matrix beside"
        " c=1 traffic, 8 keys and quotas on against off, 9 PostgreSQL as the store)",
    )
    parser.add_argument("--rounds", type=int, help="measured rounds per figure")
    parser.add_argument(
        "--no-nginx", action="store_true", help="leave nginx (the reference proxy) out"
    )
    parser.add_argument(
        "--gateway-root",
        type=Path,
        help="run `spanlab serve` from this checkout (e.g. a `git worktree` of an older"
        " commit) to compare builds; the writer section measures this tree's writer",
    )
    parser.add_argument("--out", type=Path, help="JSON file to write (default bench/results/)")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--note", default="", help="free text stored with the results")
    args = parser.parse_args()

    plan = dataclasses.replace(QUICK if args.quick else Plan())
    plan.sections = tuple(int(s) for s in args.sections.split(",") if s.strip())
    if args.rounds:
        plan.rounds = args.rounds
    plan.nginx = not args.no_nginx
    if args.gateway_root:
        procs.GATEWAY_ROOT = args.gateway_root.resolve()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.time()
    info = machine()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "note": args.note,
        "machine": info,
        "plan": dataclasses.asdict(plan),
    }
    with tempfile.TemporaryDirectory(prefix="spanlab-bench-") as tmp:
        bench = Bench(plan, Path(tmp), log)
        results["nginx"] = bench.nginx_note
        log(bench.nginx_note)
        try:
            steps = (
                (1, "added_latency", bench.added_latency),
                (2, "throughput", bench.throughput),
                (3, "streaming", bench.streaming),
                (4, "many_streams", bench.many_streams),
                (5, "capture", bench.capture_cost),
                (6, "writer", bench.writer),
                (7, "matrix", bench.matrix),
                (8, "keys_quotas", lambda: keys_quotas(bench)),
                (9, "postgres", lambda: postgres(bench)),
            )
            for number, key, step in steps:
                if number in plan.sections:
                    log(f"[{number}] {key}")
                    results[key] = step()
            results["spans"] = bench.spans_accounting()
            results["loadgen_cpu_util_max"] = max(bench.loadgen_cpu, default=None)
        finally:
            bench.close()
    info["load_avg_end"] = os.getloadavg()
    results["seconds"] = round(time.time() - started, 1)
    results["targets"] = targets(results)
    table = render(results)
    results["table"] = table
    print(table)
    if not args.no_save:
        out = args.out
        if out is None:
            RESULTS.mkdir(exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            out = RESULTS / f"{stamp}-{results['mode']}.json"
        out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        log(f"wrote {out}")


if __name__ == "__main__":
    main()
