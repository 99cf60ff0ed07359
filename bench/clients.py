"""Upstream HTTP clients compared alone: what each costs the gateway per call.

This measures, in one
process against the mock upstream in another, the client's CPU time per request
and its throughput at several concurrencies, for:

* ``httpx``: httpx's own transport (httpcore's connection pool);
* ``httpx+httpx_aiohttp``: the same ``httpx.AsyncClient`` on ``httpx-aiohttp``'s
  aiohttp-backed transport (when that package is installed);
* ``aiohttp``: ``aiohttp.ClientSession`` directly;
* ``spanlab``: the gateway's own client, `gateway.http.client.ConnectionPool`, called
  as the proxy calls it.

Each client does what the proxy does: send with the response streamed, read the
body, close. ``python -m bench.clients [--seconds 3] [--levels 1,64,256]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx

from bench.procs import MockUpstream
from bench.util import run
from gateway.http.client import ConnectionPool
from gateway.http.upstream import Timeouts, UpstreamRequest, UpstreamURL

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-0123456789"}

Call = Callable[[], Awaitable[int]]


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=30)


async def make_client(kind: str, url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    if kind == "spanlab":
        pool = ConnectionPool(max_connections=1000)
        request = UpstreamRequest(
            "POST", UpstreamURL.parse(url), list(HEADERS.items()), BODY, Timeouts()
        )

        async def call_spanlab() -> int:
            response = await pool.send(request)
            try:
                await response.read()
            finally:
                await response.aclose()
            return response.status

        return call_spanlab, pool.aclose
    if kind == "aiohttp":
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000, keepalive_timeout=30),
            auto_decompress=False,
        )

        async def call_aiohttp() -> int:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()
                return response.status

        return call_aiohttp, session.close
    transport: httpx.AsyncBaseTransport | None = None
    if kind == "httpx+httpx_aiohttp":
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=_limits())
    client = httpx.AsyncClient(limits=_limits(), transport=transport, trust_env=False)

    async def call_httpx() -> int:
        request = client.build_request("POST", url, headers=HEADERS, content=BODY)
        response = await client.send(request, stream=True)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response.status_code

    return call_httpx, client.aclose


async def measure(kind: str, url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    call, close = await make_client(kind, url)
    try:
        # Warm up: open the connections.
        await asyncio.gather(*(call() for _ in range(concurrency)))
        done = errors = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                try:
                    status = await call()
                except Exception:
                    errors += 1
                    continue
                if status == 200:
                    done += 1
                else:
                    errors += 1

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await close()
    return {
        "client": kind,
        "concurrency": concurrency,
        "rps": done / wall,
        "cpu_us_per_request": cpu * 1e6 / max(done, 1),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--levels", default="1,64,256")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", default="httpx,aiohttp,spanlab")
    args = parser.parse_args()
    mock = MockUpstream()
    try:
        url = mock.base_url + "/chat/completions"
        results = []
        for _ in range(args.rounds):
            for level in (int(x) for x in args.levels.split(",")):
                for kind in args.clients.split(","):
                    result = run(measure(kind, url, level, args.seconds))
                    results.append(result)
                    print(json.dumps(result), flush=True)
    finally:
        mock.stop()


if __name__ == "__main__":
    main()
