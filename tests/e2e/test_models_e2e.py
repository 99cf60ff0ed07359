"""End to end: model lists, one model's details and count_tokens with the official
`openai` and `anthropic` SDKs against a real `spanlab serve`, with several providers
and no default_provider (where ``models.list()`` used to answer 404): the mock OpenAI
upstream, the mock Anthropic API, and a provider where nothing listens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.anthropic_support import MODELS as CLAUDE_MODELS
from tests.e2e.anthropic_support import MockAnthropic, MockAnthropicServer
from tests.e2e.conftest import (
    CLIENT_KEY,
    PROVIDER_KEY,
    PROVIDER_KEY_ENV,
    GatewayProcess,
    StartGateway,
    sdk,
)
from tests.e2e.mock_upstream import MODELS, MockUpstream

pytestmark = pytest.mark.e2e

CLAUDE_KEY_ENV = "E2E_CLAUDE_KEY"
CLAUDE_KEY = "sk-ant-provider-models-e2e-0123456789"
CLAUDE_IDS = [m["id"] for m in CLAUDE_MODELS]


@pytest.fixture(scope="module")
def claude_upstream() -> Iterator[MockAnthropicServer]:
    with MockAnthropicServer(MockAnthropic(api_key=CLAUDE_KEY)) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    start_gateway: StartGateway,
    mock_upstream: MockUpstream,
    claude_upstream: MockAnthropicServer,
    dead_port: int,
) -> GatewayProcess:
    providers: dict[str, Any] = {
        "mock": {
            "kind": "openai",
            "base_url": mock_upstream.base_url,
            "api_key_env": PROVIDER_KEY_ENV,
        },
        "claude": {
            "kind": "anthropic",
            "base_url": claude_upstream.base_url,
            "api_key_env": CLAUDE_KEY_ENV,
        },
        "dead": {"kind": "openai", "base_url": f"http://127.0.0.1:{dead_port}/v1"},
    }
    return start_gateway(env={CLAUDE_KEY_ENV: CLAUDE_KEY}, default_provider="", providers=providers)


def claude_sdk(gateway: GatewayProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0)


def test_openai_sdk_lists_every_providers_models(gateway: GatewayProcess) -> None:
    raw = sdk(gateway).models.with_raw_response.list()
    ids = [model.id for model in raw.parse()]
    # No default provider: the OpenAI upstream's models under their provider prefix;
    # Claude models bare (rule 3 routes them); 'dead' left out.
    assert ids == [f"mock/{m}" for m in MODELS] + CLAUDE_IDS
    span = gateway.span(raw.headers["x-spanlab-span-id"])
    assert (span["operation"], span["status"]) == ("models", "ok")
    report = span["attributes"]["spanlab.model_list"]
    assert report["mock"] == {"models": len(MODELS)}
    assert report["claude"] == {"models": len(CLAUDE_MODELS)}
    assert report["dead"] == {"error": "HTTP 502 (upstream_unreachable)"}
    log = gateway.log()
    assert "model list: provider 'dead' left out: HTTP 502 (upstream_unreachable)" in log
    for secret in (CLIENT_KEY, PROVIDER_KEY, CLAUDE_KEY):
        assert secret not in log


def test_each_listed_id_can_be_called(gateway: GatewayProcess) -> None:
    client = sdk(gateway)
    for model in client.models.list():
        if model.id.startswith("claude-"):
            continue  # chat with Claude models: tests/e2e/test_anthropic_e2e.py
        reply = client.chat.completions.create(
            model=model.id, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content


def test_the_provider_header_narrows_the_list(gateway: GatewayProcess) -> None:
    page = sdk(gateway).models.list(extra_headers={"x-spanlab-provider": "mock"})
    assert [model.id for model in page] == MODELS  # the upstream's own list


def test_anthropic_sdk_lists_the_anthropic_models_page_by_page(gateway: GatewayProcess) -> None:
    client = claude_sdk(gateway)
    first = client.models.list(limit=2)
    assert [m.id for m in first.data] == CLAUDE_IDS[:2]
    assert first.has_more is True
    assert [m.id for m in client.models.list(limit=2)] == CLAUDE_IDS  # the SDK pages on
    sonnet = first.data[0]
    assert (sonnet.type, sonnet.display_name) == ("model", "Claude Sonnet 4.5")
    assert sonnet.created_at.year == 2025


def test_openai_sdk_retrieves_a_prefixed_model(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    client = sdk(gateway)
    raw = client.models.with_raw_response.retrieve(
        "mock/org/mock-tuned", extra_headers={"x-test-id": test_id}
    )
    assert raw.parse().id == "org/mock-tuned"  # the provider's answer, as it is
    # The prefix removed, the "/" left in the provider's id escaped as the SDK does.
    assert mock_upstream.find(test_id).target == "/v1/models/org%2Fmock-tuned"
    span = gateway.span(raw.headers["x-spanlab-span-id"])
    assert (span["operation"], span["provider"], span["request_model"]) == (
        "models",
        "mock",
        "mock/org/mock-tuned",
    )
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("mock/no-such-model")
    with pytest.raises(openai.NotFoundError) as routed_nowhere:
        client.models.retrieve("gpt-4o")  # no default provider: routes nowhere
    assert routed_nowhere.value.code == "model_not_found"


def test_anthropic_sdk_retrieves_a_model_and_counts_tokens(
    gateway: GatewayProcess, claude_upstream: MockAnthropicServer
) -> None:
    client = claude_sdk(gateway)
    model = client.models.retrieve(CLAUDE_IDS[2])
    assert (model.id, model.display_name) == (CLAUDE_IDS[2], "Claude Opus 3")

    raw = client.messages.with_raw_response.count_tokens(
        model="claude/claude-3-5-haiku-20241022",
        system="Be brief.",
        messages=[{"role": "user", "content": "How many tokens is this?"}],
    )
    assert raw.parse().input_tokens == 7
    sent = claude_upstream.mock.last
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.body["model"] == "claude-3-5-haiku-20241022"
    assert sent.headers["x-api-key"] == CLAUDE_KEY
    span = gateway.span(raw.headers["x-spanlab-span-id"])
    assert (span["operation"], span["provider"], span["status"]) == (
        "count_tokens",
        "claude",
        "ok",
    )
    assert span["response"] == {"input_tokens": 7}
    assert span["cost_usd"] is None
