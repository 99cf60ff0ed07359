"""The cost of keys and quotas on the proxy path: added latency p50, keys off against
a gateway key with quotas on.

Two gateways in this process (`create_app`, each with its own SQLite database and
writer process, an in-process upstream that answers at once): one with keys off, one
with an admin key and a proxy key that has every limit set (high enough never to
refuse: every call is admitted, counted, and its tokens and cost charged). Calls go
through `httpx.ASGITransport` one at a time, in interleaved rounds (off, on, off,
on...), so a load that changes over the run (other processes on the machine) weighs
on both alike. Reported: each side's p50 over all its calls, the median of the
rounds' p50 differences, and the cost of `QuotaService.admit` alone.

Run: ``python -m bench.quota_bench [--rounds 10] [--calls 400]``. Not part of
``make bench`` (the full-stack bench, bench/runner.py, drives real processes).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.writer_bench import REQUEST
from gateway.app import create_app
from gateway.config import Settings
from gateway.quotas.service import QuotaService

ADMIN_KEY = "bench-admin-key-" + "0" * 32
COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33},
}


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=COMPLETION)


def _settings(workdir: Path, name: str, **extra: Any) -> Settings:
    return Settings.from_mapping(
        {
            "db": str(workdir / f"{name}.db"),
            "log_level": "warning",
            "providers": {"openai": {"kind": "openai", "base_url": "http://upstream.bench/v1"}},
            **extra,
        }
    )


class Side:
    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings, transport=httpx.MockTransport(_answer))
        self.lifespan: Any = None
        self.client: httpx.AsyncClient | None = None
        self.headers: dict[str, str] = {}
        self.samples: list[float] = []

    async def __aenter__(self) -> Side:
        self.lifespan = self.app.router.lifespan_context(self.app)
        await self.lifespan.__aenter__()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://127.0.0.1"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.client is not None
        await self.client.aclose()
        await self.lifespan.__aexit__(None, None, None)

    async def round(self, calls: int) -> list[float]:
        assert self.client is not None
        out = []
        for _ in range(calls):
            began = time.perf_counter()
            r = await self.client.post("/v1/chat/completions", json=REQUEST, headers=self.headers)
            out.append((time.perf_counter() - began) * 1000.0)
            if r.status_code != 200:
                raise SystemExit(f"call failed: {r.status_code} {r.text}")
        self.samples += out
        return out


def admit_cost_us(n: int = 200_000) -> float:
    """``QuotaService.admit`` alone, per call (a key and its project, limits set)."""
    quotas = QuotaService(Settings.from_mapping({}))
    quotas.ledger.set_limits("key", "k1", "bench", quotas.ledger.default_key_limits, time.time())
    began = time.perf_counter()
    for _ in range(n):
        quotas.ledger.subjects[("key", "k1")].minute.requests = 0  # never refused
        quotas.admit("k1", None, "chat")
    return (time.perf_counter() - began) / n * 1e6


async def run(rounds: int, calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="spanlab-quota-bench-") as tmp:
        workdir = Path(tmp)
        off = Side(_settings(workdir, "off"))
        on = Side(_settings(workdir, "on", admin_key=ADMIN_KEY))
        async with off, on:
            assert on.client is not None
            made = await on.client.post(
                "/keys",
                json={
                    "name": "bench",
                    "scopes": ["proxy"],
                    "rpm": 10**9,
                    "tokens_per_day": 10**12,
                    "usd_per_day": 1e9,
                    "usd_per_month": 1e9,
                },
                headers={"x-spanlab-key": ADMIN_KEY},
            )
            assert made.status_code == 201, made.text
            on.headers = {"x-spanlab-key": made.json()["key"]}
            await off.round(calls // 4)  # warm up both (imports, pools, first spans)
            await on.round(calls // 4)
            off.samples.clear()
            on.samples.clear()
            diffs = []
            for _ in range(rounds):
                a = statistics.median(await off.round(calls))
                b = statistics.median(await on.round(calls))
                diffs.append(b - a)
            counted = on.app.state.quotas.usage("key", made.json()["id"])
    return {
        "rounds": rounds,
        "calls_per_round": calls,
        "p50_off_ms": statistics.median(off.samples),
        "p50_on_ms": statistics.median(on.samples),
        "added_p50_ms": statistics.median(on.samples) - statistics.median(off.samples),
        "median_round_diff_ms": statistics.median(diffs),
        "round_diffs_ms": [round(d, 4) for d in diffs],
        "admit_us": admit_cost_us(),
        "requests_counted_today": counted["requests_today"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quota_bench")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    result = asyncio.run(run(args.rounds, args.calls))
    width = max(len(k) for k in result)
    for name, value in result.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{name:<{width}}  {shown}")


if __name__ == "__main__":
    main()
