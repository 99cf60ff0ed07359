"""Review finding: a password in a provider's base_url must not reach the logs."""

from __future__ import annotations

import base64
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
