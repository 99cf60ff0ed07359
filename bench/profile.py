"""Profile the gateway under load with py-spy: where its CPU goes per call.

Starts the mock upstream, `spanlab serve` and the load generator as the benchmark
does, warms up, then records the gateway with py-spy while the load runs, and prints
the functions with the most samples (own time, and time including callees).
``pip install py-spy`` first (not a dependency of the project).

    python -m bench.profile --concurrency 64 --latency-ms 50 [--stream] [--no-capture] [--keys]

``--keys``: the gateway requires a gateway key, and the calls carry one whose quotas are
all set (never refusing), as the benchmark's section 8 (`bench.feature_rows`).
"""

from __future__ import annotations

import argparse
import collections
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.feature_rows import make_key
from bench.procs import Gateway, LoadGenerator, MockUpstream
from bench.util import HEADERS
from bench.writer_bench import REQUEST

_LINE = re.compile(r":\d+\)$")


def summarize(raw: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [
            _LINE.sub(")", f).replace(str(Path(sys.prefix)), "<venv>") for f in stack.split(";")
        ]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} samples", "", "own time:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out += ["", "including callees:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--stream", action="store_true", help="64-chunk streams instead")
    parser.add_argument("--no-capture", action="store_true")
    parser.add_argument("--keys", action="store_true", help="keys and quotas on (section 8)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", type=Path, help="keep py-spy's raw (collapsed) output here")
    args = parser.parse_args()
    beside = Path(sys.executable).parent / "py-spy"
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="spanlab-profile-") as tmp:
        mock = MockUpstream()
        loadgen = LoadGenerator()
        admin_key = "bench-admin-" + secrets.token_hex(16)
        gateway = Gateway(
            Path(tmp),
            "gateway",
            mock,
            capture=not args.no_capture,
            settings=f'admin_key = "{admin_key}"' if args.keys else "",
        )
        raw = args.out or Path(tmp) / "profile.txt"
        try:
            key = {"x-spanlab-key": make_key(gateway, admin_key)["key"]} if args.keys else {}
            headers = {**HEADERS, **key, "x-mock-latency-ms": str(args.latency_ms)}
            job = {"host": "127.0.0.1", "port": gateway.port, "path": "/v1/chat/completions"}
            warm = {**job, "kind": "throughput", "body": REQUEST, "headers": headers}
            loadgen.run({**warm, "concurrency": args.concurrency, "duration": 1.0})
            record = subprocess.Popen(
                [spy, "record", "-p", str(gateway.proc.pid), "-o", str(raw), "-f", "raw",
                 "-d", str(int(args.seconds)), "-r", "250", "--nonblocking"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.5)
            if args.stream:
                result = loadgen.run(
                    {**job, "kind": "streams", "body": {**REQUEST, "stream": True},
                     "headers": {**HEADERS, **key, "x-mock-chunks": "64",
                                 "x-mock-interval-ms": "20"},
                     "concurrency": args.concurrency, "total": args.concurrency * 4,
                     "expected_events": 64}
                )  # fmt: skip
            else:
                result = loadgen.run({**warm, "concurrency": args.concurrency,
                                      "duration": args.seconds})  # fmt: skip
            record.wait()
        finally:
            gateway.stop()
            loadgen.stop()
            mock.stop()
        summary = {k: result.get(k) for k in ("rps", "complete", "errors", "cpu_util")}
        print(f"load: {summary}")
        print(summarize(raw, args.top))


if __name__ == "__main__":
    main()
