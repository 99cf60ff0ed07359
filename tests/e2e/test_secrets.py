"""No secret reaches the database or the logs, wherever a client or upstream puts it.

A unique canary is planted in every place a key travels: the Authorization header, an
``x-api-key`` header, an ``?api_key=`` query parameter, an ``api_key`` body field, and
the provider key the gateway itself holds (which the mock upstream then echoes back in
an error message, as real providers do). After a graceful shutdown the raw bytes of the
SQLite files and of the server's output are searched for it.
"""

from __future__ import annotations

import base64
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.e2e.conftest import PROVIDER_KEY_ENV, GatewayProcess, StartGateway
from tests.e2e.mock_upstream import MockUpstream
from tests.serve import EventsReader

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


def test_base_url_credentials_are_not_logged(
    start_gateway: StartGateway, mock_upstream: MockUpstream, test_id: str
) -> None:
    """An upstream behind HTTP basic auth is configured as https://user:pass@host/v1
    (httpx sends the userinfo as credentials); `spanlab serve` logged each provider's
    base_url as is at start, password included."""
    password = "pw-" + uuid.uuid4().hex + "%40x"  # percent-encoded: the password ends "@x"
    base_url = mock_upstream.base_url.replace("http://", f"http://spanlab:{password}@", 1)
    gateway = start_gateway(
        default_provider="basic",
        providers={"basic": {"kind": "openai", "base_url": base_url}},
    )
    r = httpx.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-test-id": test_id, "authorization": "Bearer sk-client"},
    )
    assert r.status_code == 200, r.text
    # The URL's credentials, decoded, replace the client's own on the way upstream.
    sent = mock_upstream.find(test_id).header("authorization")
    decoded = password.replace("%40", "@")
    assert sent == "Basic " + base64.b64encode(f"spanlab:{decoded}".encode()).decode()
    gateway.stop_gracefully()
    log = gateway.log()
    assert "basic (http://" in log  # the provider is still named at start
    assert password not in log
    assert decoded not in log


def echo_upstream(request: Request) -> Response:
    """An upstream that repeats what it was sent: the Authorization header (in a
    response header and in the answer) and the query string, as some proxies and
    debugging endpoints do."""
    auth = request.headers.get("authorization", "")
    said = f"you sent authorization={auth} query={request.query_string.decode()}"
    status = int(request.headers.get("x-echo-status", "200"))
    headers = {"x-echo-authorization": auth, "content-type": "application/json"}
    if status != 200:
        error = {"error": {"message": said, "type": "invalid_request_error", "code": None}}
        return Response(orjson.dumps(error), status=status, headers=headers)
    usage = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
    message = {"role": "assistant", "content": said}
    if not (request.get_json(silent=True) or {}).get("stream"):
        body = {
            "id": "chatcmpl-echo",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        }
        return Response(orjson.dumps(body), headers=headers)
    chunk = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    events = [
        {**chunk, "choices": [{"index": 0, "delta": message, "finish_reason": None}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**chunk, "choices": [], "usage": usage},
    ]
    sse = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    return Response(sse, headers={**headers, "content-type": "text/event-stream"})


def test_base_url_credentials_echoed_by_the_upstream_are_never_stored(
    start_gateway: StartGateway, httpserver: HTTPServer, test_id: str
) -> None:
    """Issue 9 #2: the Basic header built from a base_url's user:pass was not a known
    secret value, so an upstream echoing its Authorization header put it into the span
    (database and WAL, /spans, /traces, /events, export); a client's bearer token
    repeated in the query string was stored as is too."""
    password = "pw-" + uuid.uuid4().hex + "%40x"
    decoded = password.replace("%40", "@")
    token = base64.b64encode(f"spanlab:{decoded}".encode()).decode()
    client_token = "sk-client-" + uuid.uuid4().hex
    canaries = [decoded, password, token, client_token, uuid_part(decoded), uuid_part(client_token)]
    httpserver.expect_request("/v1/chat/completions").respond_with_handler(echo_upstream)
    base_url = httpserver.url_for("/v1").replace("http://", f"http://spanlab:{password}@", 1)
    gateway = start_gateway(
        default_provider="basic",
        providers={"basic": {"kind": "openai", "base_url": base_url}},
        events_heartbeat_s=0.1,
    )
    events = EventsReader(f"{gateway.base_url}/events")
    url = f"{gateway.base_url}/v1/chat/completions?foo={client_token}&n=1"
    headers = {"authorization": f"Bearer {client_token}", "x-thread-id": test_id}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    answers = [
        httpx.post(url, json=body, headers=headers),
        httpx.post(url, json={**body, "stream": True}, headers=headers),
        httpx.post(url, json=body, headers={**headers, "x-echo-status": "401"}),
    ]
    assert [r.status_code for r in answers] == [200, 200, 401]
    # The upstream did echo the credential it received: the Basic header from the URL.
    assert f"Basic {token}" in answers[0].text and token in answers[1].text
    assert answers[0].headers["x-echo-authorization"] == f"Basic {token}"

    spans = gateway.wait_spans(3, thread=test_id)
    deadline = time.monotonic() + 10
    while events.spans() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events.spans() >= 3, events.lines
    client = gateway.client
    read = [client.get(f"{gateway.base_url}/spans", params={"thread": test_id}).text]
    for span in spans:
        detail = client.get(f"{gateway.base_url}/spans/{span['span_id']}")
        assert detail.status_code == 200
        assert "you sent authorization=" in detail.text
        assert "foo=" in detail.json()["query"]
        read += [detail.text, client.get(f"{gateway.base_url}/traces/{span['trace_id']}").text]
    created = client.post(
        f"{gateway.base_url}/experiments", json={"original_span_id": spans[0]["span_id"]}
    )
    assert created.status_code == 201, created.text
    exported = client.get(f"{gateway.base_url}/experiments/{created.json()['id']}/export")
    events.stop.set()
    events.thread.join(5)
    read += [exported.text, "\n".join(events.lines)]
    files = sorted(gateway.workdir.glob("spanlab.db*"))
    assert Path(f"{gateway.db}-wal") in files
    stored = [p.read_bytes() for p in files]

    gateway.stop_gracefully()
    stored += [p.read_bytes() for p in sorted(gateway.workdir.glob("spanlab.db*"))]
    stored.append(gateway.log_path.read_bytes())
    for canary in canaries:
        assert not [text for text in read if canary in text], f"{canary} was served"
        assert not [data for data in stored if canary.encode() in data], f"{canary} was stored"


def uuid_part(value: str) -> str:
    """The random part of a canary: found even where the rest was cut or re-encoded."""
    return next(part for part in value.replace("@", "-").split("-") if len(part) == 32)
