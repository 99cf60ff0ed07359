"""Review findings on the read API: each test pins a defect that was fixed."""

from __future__ import annotations

import pytest

from tests.conftest import Gateway


@pytest.mark.parametrize("value", ["inf", "-inf", "1e30"])
async def test_a_time_filter_out_of_range_is_a_400(gateway: Gateway, value: str) -> None:
    """`since`/`until` as Unix seconds went through int(float(x) * 1e6) unchecked: inf
    raised OverflowError, 1e30 an integer SQLite cannot bind; both answered 500."""
    for name in ("since", "until"):
        r = await gateway.client.get("/spans", params={name: value})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == name
