"""Upstream HTTP clients compared alone: what each costs the gateway per call.

The gateway's upstream client is one ``httpx.AsyncClient``. This measures, in one
process against the mock upstream in another, the client's CPU time per request
and its throughput at several concurrencies, for:

* ``httpx``: httpx's own transport (httpcore's connection pool);
* ``httpx+aiohttp``: the same ``httpx.AsyncClient`` on an aiohttp-backed transport
  (`gateway.transport.AiohttpTransport`, the gateway's; ``httpx-aiohttp``'s package
  when installed, as ``httpx+httpx_aiohttp``);
* ``httpx-transport``: an ``httpx.Request`` handed straight to that transport, as the
  proxy sends (no client layers);
* ``aiohttp``: ``aiohttp.ClientSession`` directly, the floor.

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

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-0123456789"}

Call = Callable[[], Awaitable[int]]


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=30)


async def make_client(kind: str, url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
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
    if kind == "httpx+aiohttp":
        from gateway.transport import AiohttpTransport

        transport = AiohttpTransport(limits=_limits())
    elif kind == "httpx+httpx_aiohttp":
        from httpx_aiohttp import AiohttpTransport as ThirdParty

        transport = ThirdParty(limits=_limits())
    client = httpx.AsyncClient(limits=_limits(), transport=transport, trust_env=False)
    if kind == "httpx-transport":
        # What the proxy does: the request built once per call, sent to the transport.
        from gateway.transport import AiohttpTransport

        direct = AiohttpTransport(limits=_limits())
        parsed = httpx.URL(url)
        timeout = client.timeout.as_dict()

        async def call_transport() -> int:
            request = httpx.Request(
                "POST", parsed, headers=list(HEADERS.items()), content=BODY,
                extensions={"timeout": timeout},
            )  # fmt: skip
            response = await direct.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
            return response.status_code

        return call_transport, direct.aclose

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
    parser.add_argument("--clients", default="httpx,httpx+aiohttp,aiohttp")
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
