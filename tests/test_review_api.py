"""Review findings on the read API: each test pins a defect that was fixed."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.experiments_helpers import capture, create, error_of


@pytest.mark.parametrize("value", ["inf", "-inf", "1e30"])
async def test_a_time_filter_out_of_range_is_a_400(gateway: Gateway, value: str) -> None:
    """`since`/`until` as Unix seconds went through int(float(x) * 1e6) unchecked: inf
    raised OverflowError, 1e30 an integer SQLite cannot bind; both answered 500."""
    for name in ("since", "until"):
        r = await gateway.client.get("/spans", params={name: value})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == name


# --- issue 9 #8: inputs that answered 500 ---------------------------------------------

REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
IMPORTED = {"original_span_id": "s-1", "original_trace_id": "t-1", "original_request": REQUEST}
HISTORY = {"version": 1, "action": "created", "at": "2025-01-01T00:00:00Z", "snapshot": {}}
RUN = {"id": "run-1", "status": "completed", "request": REQUEST, "started_at": "2025-01-01"}


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


async def send_json(gateway: Gateway, method: str, path: str, text: str) -> httpx.Response:
    return await gateway.client.request(
        method, path, content=text.encode(), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize("path", ["/spans", "/experiments"])
@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of("[[1], [2]]"),  # a list where SQLite binds a value: ProgrammingError
        cursor_of('[{"a": 1}, "x"]'),
        cursor_of(f"[{2**63}, 1]"),  # past 64 bits: OverflowError
        cursor_of("[true, 1]"),
        cursor_of("[1, 2, 3]"),
        "5",
        "not base64 at all!",
    ],
)
async def test_a_cursor_of_the_wrong_type_is_a_400(
    gateway: Gateway, path: str, cursor: str
) -> None:
    await capture(gateway)
    r = await gateway.client.get(path, params={"cursor": cursor})
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == "cursor"


@pytest.mark.parametrize("path", ["/spans", "/stats", "/experiments", "/experiments/export"])
async def test_a_search_text_past_1000_characters_is_a_400(gateway: Gateway, path: str) -> None:
    """A 60k-character q made SQLite refuse the LIKE pattern ("too complex"): 500."""
    await capture(gateway)
    await create(gateway, original_span_id="s-1", original_trace_id="t-1", original_request=REQUEST)
    r = await gateway.client.get(path, params={"q": "a" * 60_000})
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == "q"
    assert (await gateway.client.get(path, params={"q": "%" * 1000})).status_code == 200


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({**IMPORTED, "runs": 5}, "runs"),  # TypeError: 'int' object is not iterable
        ({**IMPORTED, "history": 5}, "history"),
        ({**IMPORTED, "runs": {"id": "run-1"}}, "runs"),  # iterated over its keys
        ({**IMPORTED, "history": [{**HISTORY, "run_id": ["r"]}]}, "history.run_id"),
        ({**IMPORTED, "version": 2**63}, "version"),  # OverflowError binding it
        ({**IMPORTED, "history": [{**HISTORY, "version": 2**63}]}, "history.version"),
        ({**IMPORTED, "runs": [{**RUN, "duration_ms": 2**63}]}, "runs.duration_ms"),
        ({**IMPORTED, "history": [HISTORY, HISTORY]}, "history.version"),  # UNIQUE failed
        ({**IMPORTED, "runs": [RUN, RUN]}, "runs.id"),
    ],
)
async def test_an_import_of_the_wrong_shape_is_a_4xx_and_stores_nothing(
    gateway: Gateway, item: dict[str, Any], param: str
) -> None:
    r = await gateway.client.post(
        "/experiments/import",
        content=json.dumps(item).encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert error_of(r)["param"] == param
    assert (await gateway.client.get("/experiments")).json()["data"] == []


async def test_an_empty_project_id_names_no_project(gateway: Gateway) -> None:
    """project_id "" failed the projects foreign key: 500 on update and import, a
    wrong 409 ("already exists") on duplicate."""
    created = await create(gateway, **IMPORTED, project_id="")
    assert created["project_id"] is None
    exp_id = created["id"]
    r = await gateway.client.put(f"/experiments/{exp_id}", json={"project_id": "p-1"})
    assert r.json()["project_id"] == "p-1"
    r = await gateway.client.put(f"/experiments/{exp_id}", json={"project_id": ""})
    assert r.status_code == 200, r.text
    assert r.json()["project_id"] is None
    r = await gateway.client.post(f"/experiments/{exp_id}/duplicate", json={"project_id": ""})
    assert r.status_code == 201, r.text
    assert r.json()["project_id"] is None
    r = await gateway.client.post("/experiments/import", json={**IMPORTED, "project_id": ""})
    assert r.status_code == 201, r.text
    assert r.json()["data"][0]["project_id"] is None


@pytest.mark.parametrize("levels", [129, 300, 1000])
@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", "/experiments", json.dumps(IMPORTED).replace('"hi"}', '"hi", "x": %s}')),
        ("PUT", "/experiments/{id}", '{"prompt_variables": {"v": %s}}'),
        ("POST", "/experiments/{id}/duplicate", '{"name": %s}'),
        ("POST", "/experiments/import", json.dumps([IMPORTED]).replace('"hi"}', '"hi", "x": %s}')),
    ],
)
async def test_a_body_nested_too_deeply_is_a_400(
    gateway: Gateway, method: str, path: str, template: str, levels: int
) -> None:
    """Bodies nested 255-1,024 levels: orjson reads them but writes 254 levels at most,
    and redaction recursed into a RecursionError; both answered 500."""
    exp_id = (await create(gateway, **IMPORTED))["id"]
    r = await send_json(gateway, method, path.replace("{id}", exp_id), template % deep(levels))
    assert r.status_code == 400, r.text
    assert error_of(r)["code"] == "too_deeply_nested"


async def test_a_request_nested_too_deeply_is_a_400_however_it_comes(gateway: Gateway) -> None:
    """As JSON text in a field (parsed past the body's check), or from a captured span
    (which may nest 254 levels): refused before anything is stored."""
    text = json.dumps({**REQUEST, "metadata": "x"}).replace('"x"', deep(150))
    r = await gateway.client.post("/experiments", json={**IMPORTED, "modified_request": text})
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == "modified_request"
    r = await send_json(
        gateway,
        "POST",
        "/v1/chat/completions",
        json.dumps({**REQUEST, "metadata": "x"}).replace('"x"', deep(120)),
    )
    assert r.status_code == 200, r.text
    r = await gateway.client.post(
        "/experiments", json={"original_span_id": r.headers["x-spanlab-span-id"]}
    )
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == "original_request"
    assert (await gateway.client.get("/experiments")).json()["data"] == []


@pytest.mark.parametrize("value", ["terse\r\nx-injected: 1", "a\nb", "nul\x00", "euro €"])
async def test_a_header_that_renders_to_a_line_break_is_refused_before_the_run(
    gateway: Gateway, value: str
) -> None:
    """Saved header values are checked for line breaks, but not once the prompt
    variables are rendered into them: a variable could add header lines to the request
    the gateway's own HTTP client writes upstream."""
    created = await create(
        gateway, **IMPORTED, headers={"x-note": "be {{tone}}"}, prompt_variables={"tone": value}
    )
    r = await gateway.client.post(f"/experiments/{created['id']}/run")
    assert r.status_code == 422, r.text
    assert error_of(r)["param"] == "headers.x-note"
    assert gateway.upstream.requests == []
    assert (await gateway.client.get(f"/experiments/{created['id']}/runs")).json()["data"] == []
    r = await gateway.client.put(
        f"/experiments/{created['id']}", json={"headers": {"x-note": "nul\x00"}}
    )
    assert r.status_code == 422, r.text
