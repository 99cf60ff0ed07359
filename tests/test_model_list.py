"""Model endpoints in process: the merged list of every provider's models (GET /v1/models
and the UI's GET /models), one model's details (GET /v1/models/{id}) and Anthropic's
POST /v1/messages/count_tokens. The official SDKs against a real server:
tests/e2e/test_models_e2e.py."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.e2e.anthropic_support import MODELS as CLAUDE_MODELS
from tests.e2e.anthropic_support import MockAnthropic
from tests.fakes import FakeUpstream, stream_response

SECRET = "sk-broken-echo-0123456789abcdef"
KEY_ENV = "MODEL_LIST_ANTHROPIC_KEY"
PROVIDER_KEY = "sk-ant-provider-key-0123456789"
ANTHROPIC = {"kind": "anthropic", "base_url": "http://anthropic.test/v1"}
PROVIDERS: dict[str, Any] = {
    "openai": {"kind": "openai", "base_url": "http://upstream.test/v1"},
    "local": {"kind": "openai", "base_url": "http://local.test/v1"},
    # Keyed: not the home provider of an OpenAI client, so asked with its own key.
    "anthropic": {**ANTHROPIC, "api_key_env": KEY_ENV},
    "broken": {"kind": "openai", "base_url": "http://broken.test/v1"},
}
LISTS = {
    "upstream.test": ["gpt-4o", "shared-model"],
    "local.test": ["llama3", "shared-model", "org/tuned"],
}


def openai_list(models: list[str]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 1, "owned_by": "x"} for m in models],
    }


class Upstreams:
    """Each fake host answers as its kind of provider would; broken.test fails, echoing
    the key it was sent (as some upstreams do) to show it never reaches the log."""

    def __init__(self, slow_host: str | None = None) -> None:
        self.claude = MockAnthropic()
        self.slow_host = slow_host

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == self.slow_host:
            body = orjson.dumps(openai_list(["late-model"]))
            return stream_response([body], delay=5.0)
        if host == "anthropic.test":
            return self.claude.httpx_handler(request)
        if host == "broken.test":
            message = f"Incorrect API key provided: {SECRET}"
            return httpx.Response(500, json={"error": {"message": message, "code": "boom"}})
        path = request.url.path
        if path.startswith("/v1/models/"):
            return httpx.Response(200, json={"id": path.rsplit("/", 1)[-1], "object": "model"})
        return httpx.Response(200, json=openai_list(LISTS[host]))


async def merged_gateway(
    make_gateway: GatewayFactory, upstreams: Upstreams | None = None, **overrides: Any
) -> Gateway:
    overrides.setdefault("providers", PROVIDERS)
    gw: Gateway = await make_gateway(FakeUpstream(handler=upstreams or Upstreams()), **overrides)
    return gw


@pytest.fixture(autouse=True)
def anthropic_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, PROVIDER_KEY)


def asked(gw: Gateway) -> dict[str, httpx.Request]:
    return {r.url.host: r for r in gw.upstream.requests}


async def test_every_providers_models_under_ids_that_route(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await merged_gateway(make_gateway)
    with caplog.at_level(logging.WARNING, logger="gateway.proxy.providers.model_list"):
        r = await gw.client.get("/v1/models", headers={"authorization": "Bearer sk-client"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    # The default provider's models bare; the others' prefixed; a Claude model bare
    # since rule 3 sends bare claude-* names to the Anthropic provider; each once.
    assert ids == [
        "gpt-4o",
        "shared-model",
        "local/llama3",
        "local/shared-model",
        "local/org/tuned",
        *(m["id"] for m in CLAUDE_MODELS),
    ]
    router = gw.state.router
    sources = {
        "gpt-4o": ("openai", "gpt-4o"),
        "shared-model": ("openai", "shared-model"),
        "local/llama3": ("local", "llama3"),
        "local/shared-model": ("local", "shared-model"),
        "local/org/tuned": ("local", "org/tuned"),
        **{m["id"]: ("anthropic", m["id"]) for m in CLAUDE_MODELS},
    }
    for listed in ids:
        route = router.resolve(listed)
        assert (route.provider.name, route.upstream_model) == sources[listed]
    # An Anthropic model in the OpenAI list's shape.
    sonnet = body["data"][5]
    assert sonnet == {
        "id": "claude-sonnet-4-5-20250929",
        "object": "model",
        "created": 1759104000,
        "owned_by": "anthropic",
        "display_name": "Claude Sonnet 4.5",
    }
    # The failing provider is left out, with one log line and no secret in it.
    lines = [rec.getMessage() for rec in caplog.records]
    assert lines == ["model list: provider 'broken' left out: HTTP 500 (boom)"]
    # One span for the call, naming what each provider answered.
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert (span["operation"], span["status"], span["provider"]) == ("models", "ok", None)
    assert span["attributes"]["spanlab.model_list"] == {
        "openai": {"models": 2},
        "local": {"models": 3},
        "anthropic": {"models": 3},
        "broken": {"error": "HTTP 500 (boom)"},
    }
    assert span["response"]["data"][0]["id"] == "gpt-4o"
    # Every provider was asked once, with a traceparent naming that span.
    sent = asked(gw)
    assert sorted(sent) == ["anthropic.test", "broken.test", "local.test", "upstream.test"]
    assert len(gw.upstream.requests) == 4
    for request in sent.values():
        assert request.headers["traceparent"].split("-")[2] == span["span_id"]
    assert sent["anthropic.test"].url.params["limit"] == "1000"  # not the API's 20


async def test_without_a_default_provider_the_list_is_no_longer_a_404(
    make_gateway: GatewayFactory,
) -> None:
    gw = await merged_gateway(make_gateway, default_provider="")
    r = await gw.client.get("/v1/models")
    assert r.status_code == 200, r.text
    ids = [m["id"] for m in r.json()["data"]]
    assert ids[:5] == [
        "openai/gpt-4o",
        "openai/shared-model",
        "local/llama3",
        "local/shared-model",
        "local/org/tuned",
    ]
    assert ids[5:] == [m["id"] for m in CLAUDE_MODELS]  # bare claude-* still routes


async def test_the_clients_key_goes_only_to_its_home_provider(
    make_gateway: GatewayFactory,
) -> None:
    gw = await merged_gateway(make_gateway)
    r = await gw.client.get(
        "/v1/models", headers={"authorization": "Bearer sk-client-own", "x-other": "kept"}
    )
    assert r.status_code == 200
    sent = asked(gw)
    assert sent["upstream.test"].headers["authorization"] == "Bearer sk-client-own"
    for host in ("local.test", "broken.test"):  # keyless, not home: no credential at all
        assert "authorization" not in sent[host].headers
        assert sent[host].headers["x-other"] == "kept"
    claude = sent["anthropic.test"].headers
    assert claude["x-api-key"] == PROVIDER_KEY  # its own key
    assert "authorization" not in claude
    assert claude["anthropic-version"]


async def test_x_spanlab_provider_narrows_the_list_to_that_provider(
    make_gateway: GatewayFactory,
) -> None:
    gw = await merged_gateway(make_gateway)
    r = await gw.client.get("/v1/models", headers={"x-spanlab-provider": "local"})
    assert r.status_code == 200
    assert r.json() == openai_list(LISTS["local.test"])  # the upstream's answer as it is
    assert [req.url.host for req in gw.upstream.requests] == ["local.test"]


async def test_a_slow_provider_is_left_out_after_models_timeout(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await merged_gateway(make_gateway, Upstreams(slow_host="local.test"), models_timeout=0.3)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gateway.proxy.providers.model_list"):
        r = await gw.client.get("/v1/models")
    elapsed = time.monotonic() - started
    assert r.status_code == 200
    assert elapsed < 2.0  # the providers are asked at once, each within the timeout
    ids = [m["id"] for m in r.json()["data"]]
    assert "gpt-4o" in ids and "claude-3-opus-20240229" in ids
    assert not any(i.startswith("local/") for i in ids)
    messages = [rec.getMessage() for rec in caplog.records]
    assert "model list: provider 'local' left out: no answer within models_timeout (0.3s)" in (
        messages
    )


async def test_a_provider_that_breaks_the_gateway_is_left_out_too(
    make_gateway: GatewayFactory,
) -> None:
    upstreams = Upstreams()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "local.test":
            raise RuntimeError("a bug on the way to this provider")
        return upstreams(request)

    gw = await make_gateway(FakeUpstream(handler=handler), providers=PROVIDERS)
    r = await gw.client.get("/v1/models")
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]][:2] == ["gpt-4o", "shared-model"]
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["attributes"]["spanlab.model_list"]["local"] == {
        "error": "internal error (RuntimeError)"
    }


async def test_when_every_provider_fails_the_home_providers_answer_is_returned(
    make_gateway: GatewayFactory,
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        key = request.url.host.split(".")[0]
        return httpx.Response(401, json={"error": {"message": f"no key for {key}"}})

    gw = await make_gateway(FakeUpstream(handler=refuse), providers=PROVIDERS)
    r = await gw.client.get("/v1/models")
    assert r.status_code == 401
    assert r.json() == {"error": {"message": "no key for upstream"}}  # openai's: the default
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert (span["status"], span["http_status"]) == ("error", 401)

    gw = await make_gateway(FakeUpstream(handler=refuse), providers=PROVIDERS, default_provider="")
    r = await gw.client.get("/v1/models")
    assert r.status_code == 401  # no home provider: the first in order
    assert r.json() == {"error": {"message": "no key for upstream"}}

    def silent(request: httpx.Request) -> httpx.Response:
        return stream_response([b"{}"], delay=5.0)

    gw = await make_gateway(FakeUpstream(handler=silent), providers=PROVIDERS, models_timeout=0.2)
    r = await gw.client.get("/v1/models")
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert "'local': no answer within models_timeout (0.2s)" in r.json()["error"]["message"]


async def test_anthropic_sdk_requests_get_the_anthropic_providers_in_anthropic_shape(
    make_gateway: GatewayFactory,
) -> None:
    # The Anthropic provider without a key of its own: the client's goes to it.
    gw = await merged_gateway(make_gateway, providers={**PROVIDERS, "anthropic": ANTHROPIC})
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-client"}
    r = await gw.client.get("/v1/models", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "data": CLAUDE_MODELS,
        "has_more": False,
        "first_id": CLAUDE_MODELS[0]["id"],
        "last_id": CLAUDE_MODELS[-1]["id"],
    }
    # Only the Anthropic provider was asked, with the client's key (its home).
    assert [req.url.host for req in gw.upstream.requests] == ["anthropic.test"]
    assert gw.upstream.last.headers["x-api-key"] == "sk-ant-client"
    # Paged the way the Anthropic API pages.
    first = (await gw.client.get("/v1/models?limit=2", headers=headers)).json()
    assert [m["id"] for m in first["data"]] == [m["id"] for m in CLAUDE_MODELS[:2]]
    assert first["has_more"] is True and first["last_id"] == CLAUDE_MODELS[1]["id"]
    rest = (
        await gw.client.get(f"/v1/models?limit=2&after_id={first['last_id']}", headers=headers)
    ).json()
    assert [m["id"] for m in rest["data"]] == [CLAUDE_MODELS[2]["id"]]
    assert rest["has_more"] is False
    before = (
        await gw.client.get(
            f"/v1/models?limit=1&before_id={CLAUDE_MODELS[2]['id']}", headers=headers
        )
    ).json()
    assert [m["id"] for m in before["data"]] == [CLAUDE_MODELS[1]["id"]]
    assert before["has_more"] is True
    bad = await gw.client.get("/v1/models?limit=0", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"


async def test_an_anthropic_list_that_pages_upstream_is_followed(
    make_gateway: GatewayFactory,
) -> None:
    def one_per_page(request: httpx.Request) -> httpx.Response:
        ids = [m["id"] for m in CLAUDE_MODELS]
        after = request.url.params.get("after_id")
        start = ids.index(after) + 1 if after else 0
        page = CLAUDE_MODELS[start : start + 1]
        more = start + 1 < len(ids)
        body = {"data": page, "has_more": more, "first_id": None, "last_id": page[0]["id"]}
        return httpx.Response(200, json=body)

    gw = await make_gateway(
        FakeUpstream(handler=one_per_page),
        providers={"anthropic": ANTHROPIC},
    )
    r = await gw.client.get("/v1/models", headers={"anthropic-version": "2023-06-01"})
    assert [m["id"] for m in r.json()["data"]] == [m["id"] for m in CLAUDE_MODELS]
    assert len(gw.upstream.requests) == 3


async def test_the_uis_model_list_is_the_merged_list(make_gateway: GatewayFactory) -> None:
    gw = await merged_gateway(make_gateway, default_provider="")
    r = await gw.client.get("/models")
    assert r.status_code == 200
    assert "local/llama3" in [m["id"] for m in r.json()["data"]]
    await gw.flush()
    assert (await gw.client.get("/spans")).json()["data"] == []  # the UI's own call


# --- one model's details --------------------------------------------------------------


async def test_a_models_details_come_from_the_provider_its_id_routes_to(
    make_gateway: GatewayFactory,
) -> None:
    gw = await merged_gateway(make_gateway)
    # The SDKs escape the "/" of a prefixed id; both forms arrive the same.
    for path in ("/v1/models/local%2Fllama3", "/v1/models/local/llama3"):
        r = await gw.client.get(path, headers={"authorization": "Bearer sk-client"})
        assert r.status_code == 200, r.text
        assert r.json() == {"id": "llama3", "object": "model"}  # as the provider says
        assert str(gw.upstream.last.url) == "http://local.test/v1/models/llama3"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert (span["operation"], span["provider"], span["request_model"]) == (
        "models",
        "local",
        "local/llama3",
    )
    assert span["path"] == "/v1/models/local/llama3"
    # A bare id goes to the default provider; a "/" left in the upstream id is escaped.
    r = await gw.client.get("/v1/models/gpt-4o")
    assert str(gw.upstream.last.url) == "http://upstream.test/v1/models/gpt-4o"
    r = await gw.client.get("/v1/models/local%2Forg%2Ftuned")
    assert r.status_code == 200
    assert gw.upstream.last.url.raw_path == b"/v1/models/org%2Ftuned"
    # An Anthropic model with the client's Anthropic headers.
    claude = CLAUDE_MODELS[1]["id"]
    r = await gw.client.get(
        f"/v1/models/{claude}", headers={"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}
    )
    assert r.status_code == 200
    assert r.json() == CLAUDE_MODELS[1]


async def test_a_models_details_for_an_id_that_routes_nowhere(
    make_gateway: GatewayFactory,
) -> None:
    gw = await merged_gateway(make_gateway, default_provider="")
    r = await gw.client.get("/v1/models/gpt-4o")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"
    r = await gw.client.get("/v1/models/")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "missing_model"
    assert gw.upstream.requests == []


# --- count_tokens ---------------------------------------------------------------------


async def test_count_tokens_goes_to_the_anthropic_provider_as_its_own_operation(
    make_gateway: GatewayFactory,
) -> None:
    upstreams = Upstreams()
    gw = await merged_gateway(make_gateway, upstreams)
    body = {
        "model": "anthropic/claude-3-5-haiku-latest",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "How many tokens is this?"}],
    }
    headers = {"x-api-key": "sk-ant-client", "anthropic-version": "2023-06-01"}
    r = await gw.client.post("/v1/messages/count_tokens", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"input_tokens": 7}
    sent = upstreams.claude.last
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.body["model"] == "claude-3-5-haiku-latest"  # the prefix removed
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert (span["operation"], span["provider"], span["status"]) == (
        "count_tokens",
        "anthropic",
        "ok",
    )
    # Counting is not generating: no token usage, no cost.
    assert span["usage"] is None or span["usage"]["prompt_tokens"] is None
    assert span["cost_usd"] is None
    assert span["otel_attributes"]["gen_ai.operation.name"] == "count_tokens"


async def test_count_tokens_needs_an_anthropic_provider(make_gateway: GatewayFactory) -> None:
    gw = await merged_gateway(make_gateway)
    r = await gw.client.post(
        "/v1/messages/count_tokens",
        json={"model": "local/llama3", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 400
    assert "/v1/messages/count_tokens" in r.json()["error"]["message"]
    r = await gw.client.post("/v1/messages/count_tokens", json={"messages": []})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "missing_model"
    assert gw.upstream.requests == []
