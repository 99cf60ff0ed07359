"""Review finding: response headers through a real server (uvicorn adds its own)."""

from __future__ import annotations

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tests.e2e.conftest import CLIENT_KEY, GatewayProcess

pytestmark = pytest.mark.e2e


def test_one_date_header(gateway: GatewayProcess, httpserver: HTTPServer, test_id: str) -> None:
    """The upstream's Date was forwarded next to the one the server writes: two Date
    fields in one response, which RFC 9110 allows only once."""
    httpserver.expect_oneshot_request("/v1/models", method="GET").respond_with_json(
        {"object": "list", "data": []}
    )
    r = httpx.get(
        f"{gateway.base_url}/v1/models",
        headers={
            "authorization": f"Bearer {CLIENT_KEY}",
            "x-spanlab-provider": "werk",
            "x-thread-id": test_id,
        },
    )
    assert r.status_code == 200, r.text
    httpserver.check_assertions()
    assert len(r.headers.get_list("date")) == 1, r.headers.raw
