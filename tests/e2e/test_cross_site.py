"""Cross-site requests against a real `spanlab serve`: what a web page can send to the
gateway without a CORS preflight (a text/plain, form or typeless body; ``Origin: null``
from a sandboxed iframe) is refused before any upstream call or span."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.e2e.conftest import CLIENT_KEY, GatewayProcess
from tests.e2e.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e

CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def test_simple_cross_site_posts_never_reach_the_upstream(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    url = f"{gateway.base_url}/v1/chat/completions"
    base = {"authorization": f"Bearer {CLIENT_KEY}", "x-test-id": test_id, "x-thread-id": test_id}
    attempts = [
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "text/plain;charset=UTF-8", "origin": "null"}, 403),
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({}, 415),  # a Blob body: no type
        ({"content-type": "application/json", "origin": "null"}, 403),
        ({"content-type": "application/json", "origin": "https://evil.example"}, 403),
    ]
    for headers, status in attempts:
        response = gateway.client.post(url, content=CHAT, headers={**base, **headers})
        assert response.status_code == status, (headers, response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "code", "param"}
        assert error["code"] in ("unsupported_media_type", "origin_not_allowed")
    # The same call as an SDK sends it does go through: the check above can see one.
    response = gateway.client.post(
        url, content=CHAT, headers={**base, "content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    mock_upstream.find(test_id)
    time.sleep(0.2)  # anything still on its way upstream would have arrived
    assert mock_upstream.count(test_id) == 1
    assert len(gateway.wait_spans(1, thread=test_id)) == 1
