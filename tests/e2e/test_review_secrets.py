"""Review finding: a password in a provider's base_url must not reach the logs."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.conftest import StartGateway
from tests.e2e.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e


def test_base_url_credentials_are_not_logged(
    start_gateway: StartGateway, mock_upstream: MockUpstream, test_id: str
) -> None:
    """An upstream behind HTTP basic auth is configured as https://user:pass@host/v1
    (httpx sends the userinfo as credentials); `spanlab serve` logged each provider's
    base_url as is at start, password included."""
    password = "pw-" + uuid.uuid4().hex
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
    gateway.stop_gracefully()
    log = gateway.log()
    assert "basic (http://" in log  # the provider is still named at start
    assert password not in log
