"""DNS rebinding and cross-site protection: the Host check, the Origin check (``null``
included, and on a public bind address), and the JSON content type a browser cannot
send cross-site without a preflight."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import httpx2  # what the anthropic SDK is built on
import openai
import pytest

from gateway.http.guard import AllowedHosts, allowed_hosts, host_name, is_json_type
from tests.conftest import Gateway, GatewayFactory
from tests.e2e.anthropic_support import MockAnthropic
from tests.experiments_helpers import capture, create, error_of
from tests.fakes import FakeUpstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("path", ["/spans", "/v1/models", "/healthz"])
async def test_foreign_host_is_refused(gateway: Gateway, path: str) -> None:
    r = await gateway.client.get(path, headers={"host": "attacker.example:8080"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "host_not_allowed"


@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1", "[::1]:8080", "spanlab.test"])
async def test_local_hosts_are_accepted(gateway: Gateway, host: str) -> None:
    r = await gateway.client.get("/healthz", headers={"host": host})
    assert r.status_code == 200


async def test_cross_site_post_is_refused_and_costs_nothing(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/v1/chat/completions", json=CHAT, headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "origin_not_allowed"
    assert gateway.upstream.requests == []


async def test_same_origin_and_originless_posts_pass(gateway: Gateway) -> None:
    for headers in ({"origin": "http://localhost:8080"}, {}):
        r = await gateway.client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert r.status_code == 200


async def test_star_allows_any_host(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(allowed_hosts="*")
    r = await gw.client.get("/healthz", headers={"host": "anything.example"})
    assert r.status_code == 200


def test_allowed_hosts_rules() -> None:
    # A public bind address: any Host, but Origins only the request's own host.
    assert allowed_hosts("0.0.0.0", "") == AllowedHosts(hosts=None, origins=frozenset())
    star = allowed_hosts("127.0.0.1", "*")
    assert star.hosts is None and "localhost" in star.origins and "*" not in star.origins
    allowed = allowed_hosts("127.0.0.1", "gw.internal, Other.Example")
    assert allowed.hosts is not None
    assert {"gw.internal", "other.example", "localhost"} <= allowed.hosts == allowed.origins
    public = allowed_hosts("0.0.0.0", "gw.example")
    assert public.hosts is not None and "gw.example" in public.hosts
    assert host_name("[::1]:8080") == "::1"
    assert host_name("Example.COM:443") == "example.com"


@pytest.mark.parametrize(
    ("value", "is_json"),
    [
        (b"application/json", True),
        (b"application/json; charset=utf-8", True),
        (b"Application/JSON ;charset=UTF-8", True),
        (b"application/merge-patch+json", True),
        (b"text/plain", False),
        (b"text/plain; application/json", False),
        (b"application/x-www-form-urlencoded", False),
        (b"multipart/form-data; boundary=x", False),
        (b"application/jsonx", False),
        (b"", False),
    ],
)
def test_json_content_types(value: bytes, is_json: bool) -> None:
    assert is_json_type(value) is is_json


# --- Origin: null ---------------------------------------------------------------------------

NULL = {"origin": "null"}


async def experiment(gateway: Gateway) -> dict[str, Any]:
    """An experiment on a captured call (one upstream request)."""
    span = await capture(gateway)
    return await create(gateway, original_span_id=span["span_id"])


async def test_null_origin_post_to_the_proxy_is_refused_and_costs_nothing(
    gateway: Gateway,
) -> None:
    r = await gateway.client.post("/v1/chat/completions", json=CHAT, headers=NULL)
    assert r.status_code == 403
    assert error_of(r)["code"] == "origin_not_allowed"
    assert gateway.upstream.requests == []
    await gateway.flush()
    assert (await gateway.client.get("/spans")).json()["data"] == []


async def test_null_origin_is_refused_for_every_state_changing_method(gateway: Gateway) -> None:
    exp = await experiment(gateway)
    path = f"/experiments/{exp['id']}"
    attempts = [
        ("POST", "/experiments", {"original_span_id": exp["original_span_id"]}),
        ("POST", "/experiments/import", {"experiments": [exp]}),
        ("POST", f"{path}/run", None),
        ("POST", f"{path}/duplicate", None),
        ("PUT", path, {"name": "renamed"}),
        ("PATCH", path, {"name": "renamed"}),
        ("DELETE", path, None),
    ]
    for method, url, body in attempts:
        r = await gateway.client.request(method, url, json=body, headers=NULL)
        assert r.status_code == 403, (method, url, r.text)
        assert error_of(r)["code"] == "origin_not_allowed"
    assert (await gateway.client.get(path)).json() == exp  # untouched
    assert len((await gateway.client.get("/experiments")).json()["data"]) == 1
    assert len(gateway.upstream.requests) == 1  # the captured call, nothing after
    # Reading stays possible (a page cannot read the answer without CORS anyway).
    assert (await gateway.client.get(path, headers=NULL)).status_code == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1.evil.example:8080"])
async def test_cross_site_origin_on_management_api_is_refused(
    gateway: Gateway, origin: str
) -> None:
    r = await gateway.client.post(
        "/experiments", json={"modified_request": CHAT}, headers={"origin": origin}
    )
    assert r.status_code == 403 and error_of(r)["code"] == "origin_not_allowed"
    assert (await gateway.client.get("/experiments")).json()["data"] == []


# --- content type ---------------------------------------------------------------------------


SIMPLE_BODIES: list[tuple[str, dict[str, str]]] = [
    ('{"model": "gpt-4o-mini", "messages": []}', {"content-type": "text/plain"}),
    ("model=gpt-4o-mini", {"content-type": "application/x-www-form-urlencoded"}),
    ("--b\r\n\r\n--b--\r\n", {"content-type": "multipart/form-data; boundary=b"}),
    ('{"model": "gpt-4o-mini", "messages": []}', {}),  # a Blob body: no type at all
]


@pytest.mark.parametrize(("body", "headers"), SIMPLE_BODIES)
async def test_simple_request_to_the_proxy_never_reaches_the_upstream(
    gateway: Gateway, body: str, headers: dict[str, str]
) -> None:
    r = await gateway.client.post("/v1/chat/completions", content=body, headers=headers)
    assert r.status_code == 415, r.text
    error = error_of(r)
    assert error["code"] == "unsupported_media_type"
    assert error["type"] == "invalid_request_error"
    assert "application/json" in error["message"]
    assert gateway.upstream.requests == []
    await gateway.flush()
    assert (await gateway.client.get("/spans")).json()["data"] == []


@pytest.mark.parametrize(("body", "headers"), SIMPLE_BODIES)
async def test_simple_request_to_the_management_api_is_refused(
    gateway: Gateway, body: str, headers: dict[str, str]
) -> None:
    exp = await experiment(gateway)
    for method, url in [
        ("POST", "/experiments"),
        ("POST", "/experiments/import"),
        ("POST", f"/experiments/{exp['id']}/duplicate"),
        ("PUT", f"/experiments/{exp['id']}"),
    ]:
        r = await gateway.client.request(method, url, content=body, headers=headers)
        assert r.status_code == 415, (method, url, r.text)
        assert error_of(r)["code"] == "unsupported_media_type"
    assert (await gateway.client.get("/experiments")).json()["data"] == [exp]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"]
)
async def test_json_posts_pass(gateway: Gateway, content_type: str) -> None:
    r = await gateway.client.post(
        "/v1/chat/completions",
        content=b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}',
        headers={"content-type": content_type},
    )
    assert r.status_code == 200, r.text
    assert len(gateway.upstream.requests) == 1


async def test_bodiless_posts_without_a_type_still_work(gateway: Gateway) -> None:
    """What the CLI and curl send to /run and /duplicate: no body, no Content-Type."""
    exp = await experiment(gateway)
    r = await gateway.client.post(f"/experiments/{exp['id']}/duplicate")
    assert "content-type" not in r.request.headers
    assert r.status_code == 201, r.text
    r = await gateway.client.post(f"/experiments/{exp['id']}/run")
    assert r.status_code == 200, r.text
    # ...but a body-less request that names a type must name JSON, and one that comes
    # from a page is judged by its Origin.
    r = await gateway.client.post(
        f"/experiments/{exp['id']}/run", headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415
    r = await gateway.client.post(f"/experiments/{exp['id']}/run", headers=NULL)
    assert r.status_code == 403


async def test_official_sdks_pass(make_gateway: GatewayFactory) -> None:
    """The content types the OpenAI and Anthropic SDKs really send."""
    mock = MockAnthropic()
    openai_gw: Gateway = await make_gateway()
    anthropic_gw: Gateway = await make_gateway(FakeUpstream(handler=mock.httpx_handler))

    def http_client(gw: Gateway) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app))

    oai = openai.AsyncOpenAI(
        api_key="sk-test",
        base_url="http://localhost/v1",
        http_client=http_client(openai_gw),
        max_retries=0,
    )
    reply = await oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Hello there!"
    # (the fake upstream answers every path with a chat completion: not parsed here)
    raw = await oai.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x")
    assert raw.status_code == 200
    raw = await oai.responses.with_raw_response.create(model="gpt-4o-mini", input="hi")
    assert raw.status_code == 200
    sent = openai_gw.upstream.requests
    assert [r.url.path for r in sent] == ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"]

    claude = anthropic.AsyncAnthropic(
        api_key="sk-ant-test",
        base_url="http://localhost",
        http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=anthropic_gw.app)),
        max_retries=0,
        default_headers={"x-api-key": "sk-ant-test"},  # what the mock checks
    )
    message = await claude.messages.create(
        model="claude-3-5-sonnet-latest",
        max_tokens=16,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.content
    assert [r.headers["content-type"] for r in anthropic_gw.upstream.requests] == [
        "application/json"
    ]


# --- a public bind address ------------------------------------------------------------------


def public_request(origin: str | None, host: str = "gw.example:8080") -> dict[str, Any]:
    headers = {"host": host}
    if origin is not None:
        headers["origin"] = origin
    return {"json": CHAT, "headers": headers}


@pytest.mark.parametrize("configured", ["", "*"])
async def test_public_bind_still_checks_the_origin(
    make_gateway: GatewayFactory, configured: str
) -> None:
    gw: Gateway = await make_gateway(host="0.0.0.0", allowed_hosts=configured)
    # Any Host: the names it is reached by are not known.
    r = await gw.client.get("/healthz", headers={"host": "10.1.2.3:8080"})
    assert r.status_code == 200
    # Programs (no Origin) and the same-origin web UI pass.
    for origin in (None, "http://gw.example:8080", "https://GW.example"):
        r = await gw.client.post("/v1/chat/completions", **public_request(origin))
        assert r.status_code == 200, (origin, r.text)
    # Another site, or a page that hides its origin, does not.
    for origin in ("https://evil.example", "null", "http://localhost:3000"):
        r = await gw.client.post("/v1/chat/completions", **public_request(origin))
        assert r.status_code == 403, (origin, r.text)
        assert error_of(r)["code"] == "origin_not_allowed"
    assert len(gw.upstream.requests) == 3
    # The content type rule holds there too.
    r = await gw.client.post(
        "/v1/chat/completions",
        content=b"{}",
        headers={"host": "gw.example", "content-type": "text/plain"},
    )
    assert r.status_code == 415
    assert len(gw.upstream.requests) == 3


async def test_public_bind_with_named_hosts(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway(host="0.0.0.0", allowed_hosts="gw.example, app.example")
    r = await gw.client.get("/healthz", headers={"host": "10.1.2.3:8080"})
    assert r.status_code == 403
    r = await gw.client.post("/v1/chat/completions", **public_request("https://app.example"))
    assert r.status_code == 200
    r = await gw.client.post("/v1/chat/completions", **public_request("null"))
    assert r.status_code == 403
