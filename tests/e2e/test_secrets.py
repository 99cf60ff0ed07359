"""No secret reaches the database or the logs, wherever a client or upstream puts it.

A unique canary is planted in every place a key travels: the Authorization header, an
``x-api-key`` header, an ``?api_key=`` query parameter, an ``api_key`` body field, and
the provider key the gateway itself holds (which the mock upstream then echoes back in
an error message, as real providers do). After a graceful shutdown the raw bytes of the
SQLite files and of the server's output are searched for it.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PROVIDER_KEY_ENV, GatewayProcess, StartGateway
from tests.e2e.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e

CANARY = "canary" + uuid.uuid4().hex
PROVIDER_SECRET = f"sk-{CANARY}-provider"
AUTH_SECRET = f"sk-{CANARY}-authorization"
HEADER_SECRET = f"{CANARY}-x-api-key"
QUERY_SECRET = f"{CANARY}-query"
BODY_SECRET = f"{CANARY}-body"
ALL_SECRETS = (PROVIDER_SECRET, AUTH_SECRET, HEADER_SECRET, QUERY_SECRET, BODY_SECRET)


def secret_headers(test_id: str, **extra: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {AUTH_SECRET}",
        "x-api-key": HEADER_SECRET,
        "x-test-id": test_id,
        "x-thread-id": "secrets",
        **extra,
    }


def chat_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "api_key": BODY_SECRET,
        **extra,
    }


def files_with(paths: list[Path], needle: bytes) -> list[str]:
    return [str(p) for p in paths if p.exists() and needle in p.read_bytes()]


def test_secrets_reach_neither_the_database_nor_the_logs(
    start_gateway: StartGateway, mock_upstream: MockUpstream
) -> None:
    # Debug logging: nothing a library logs on the way may carry a key either.
    gateway: GatewayProcess = start_gateway(
        env={PROVIDER_KEY_ENV: PROVIDER_SECRET}, log_level="debug"
    )
    url = f"{gateway.base_url}/v1/chat/completions?api_key={QUERY_SECRET}"
    calls: list[tuple[str, str, dict[str, Any], dict[str, str]]] = []
    for provider in ("mock", "passthru"):
        for scenario in ("plain", "echo_key"):
            for stream in (False, True):
                test_id = f"canary-{provider}-{scenario}-{stream}-{uuid.uuid4().hex[:6]}"
                body = chat_body(model=f"{provider}/gpt-4o-mini", stream=stream)
                headers = secret_headers(test_id, **{"x-mock-scenario": scenario})
                calls.append((test_id, scenario, body, headers))

    span_ids: list[str] = []
    with httpx.Client(timeout=10.0) as client:
        for _, scenario, body, headers in calls:
            response = client.post(url, json=body, headers=headers)
            assert response.status_code == (401 if scenario == "echo_key" else 200)
            span_ids.append(response.headers["x-spanlab-span-id"])
            if scenario == "echo_key":
                # The upstream really did echo secrets back through the gateway.
                assert CANARY in response.text
        # Calls the gateway itself refuses or cannot deliver, secrets attached.
        refused = [
            client.post(
                url,
                content=b'{"model": "gpt-4o-mini", "api_key": "' + BODY_SECRET.encode(),
                headers=secret_headers("canary-badjson", **{"content-type": "application/json"}),
            ),
            client.post(url, json=chat_body(padding="z" * 70_000), headers=secret_headers("big")),
            client.post(url, json=chat_body(model="dead/x"), headers=secret_headers("dead")),
            client.post(
                url,
                json=chat_body(),
                headers=secret_headers("unknown", **{"x-spanlab-provider": "nowhere"}),
            ),
        ]
        assert [r.status_code for r in refused] == [400, 413, 502, 404]
        span_ids += [r.headers["x-spanlab-span-id"] for r in refused]
        metrics = client.get(f"{gateway.base_url}/metrics").text

    # Each secret travelled where it should: the provider key replaced the client's
    # credentials on "mock"; the client's own went through on "passthru".
    keyed = mock_upstream.find(calls[0][0])
    assert keyed.header("authorization") == f"Bearer {PROVIDER_SECRET}"
    assert keyed.header("x-api-key") is None
    assert keyed.query["api_key"] == QUERY_SECRET
    assert keyed.json["api_key"] == BODY_SECRET
    passthru = mock_upstream.find(calls[4][0])
    assert passthru.header("authorization") == f"Bearer {AUTH_SECRET}"
    assert passthru.header("x-api-key") == HEADER_SECRET

    # Every call is stored, and where a secret was, the record says so.
    stored = [gateway.span(span_id) for span_id in span_ids]
    assert all(span["request_headers"]["authorization"] == "[REDACTED]" for span in stored)
    echoed = [s for s in stored if s["http_status"] == 401]
    assert len(echoed) == 4
    assert all("[REDACTED]" in s["error"]["message"] for s in echoed)
    assert CANARY not in metrics

    # While the server runs, recent writes sit in the write-ahead log: search it too.
    live_files = sorted(gateway.workdir.glob("spanlab.db*"))
    assert Path(f"{gateway.db}-wal") in live_files
    leaks_while_running = files_with(live_files, CANARY.encode())

    gateway.stop_gracefully()
    files = sorted(gateway.workdir.glob("spanlab.db*"))
    assert gateway.db in files
    with sqlite3.connect(gateway.db) as conn:
        assert conn.execute("SELECT count(*) FROM spans").fetchone()[0] == len(span_ids)
    log = gateway.log_path
    assert log.stat().st_size > 0
    leaks = leaks_while_running + files_with([*files, log], CANARY.encode())
    assert not leaks, f"the canary leaked into {leaks}:\n" + "\n".join(
        line for line in gateway.log().splitlines() if CANARY in line
    )
