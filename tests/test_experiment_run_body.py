"""`POST /experiments/{id}/run` takes no body: one it would not use is refused (400,
the management API's error shape) rather than silently ignored, and nothing runs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Gateway
from tests.experiments_helpers import capture, create, error_of


async def experiment(gateway: Gateway) -> str:
    original = await capture(gateway)
    exp: dict[str, Any] = await create(gateway, original_span_id=original["span_id"])
    return str(exp["id"])


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"stream": true}', "'stream'"),
        (b'{"api_key": "sk-x", "model": "gpt-4o"}', "'api_key', 'model'"),
        (b"[1, 2]", "a JSON array"),
        (b'"go"', "a JSON string"),
        (b"null", "a JSON null"),
    ],
)
async def test_a_run_with_a_body_it_does_not_understand_is_a_400_naming_it(
    gateway: Gateway, body: bytes, named: str
) -> None:
    exp_id = await experiment(gateway)
    calls = len(gateway.upstream.requests)
    for query in ("", "?stream=true"):
        r = await gateway.client.post(
            f"/experiments/{exp_id}/run{query}",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400, r.text
        error = error_of(r)
        assert error["code"] == "unexpected_body"
        assert error["param"] == "body"
        assert named in error["message"]
    # Refused before anything was sent or recorded.
    assert len(gateway.upstream.requests) == calls
    runs = await gateway.client.get(f"/experiments/{exp_id}/runs")
    assert runs.json()["data"] == []


async def test_a_run_with_no_body_or_an_empty_object_runs(gateway: Gateway) -> None:
    exp_id = await experiment(gateway)
    for body in (b"", b"{}", b" {} \n"):
        r = await gateway.client.post(
            f"/experiments/{exp_id}/run",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "completed"


async def test_a_run_body_that_is_not_json_is_a_400_invalid_json(gateway: Gateway) -> None:
    exp_id = await experiment(gateway)
    r = await gateway.client.post(
        f"/experiments/{exp_id}/run",
        content=b"stream=true",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert error_of(r)["code"] == "invalid_json"
