"""Helpers shared by the feedback, scores and metric definitions tests: a finished
seed-1 run, and a finished 2 x 2 matrix."""

from __future__ import annotations

from typing import Any

from tests.conftest import Gateway
from tests.experiments_helpers import CHAT, capture, create, run
from tests.test_matrix import add_inputs, add_variant, cells, finish, start


async def a_run(gw: Gateway) -> dict[str, Any]:
    """A finished seed-1 run (with its result span), in project ``proj-1``."""
    original = await capture(gw, CHAT, **{"x-project-id": "proj-1"})
    exp = await create(gw, original_span_id=original["span_id"])
    done = await run(gw, exp["id"])
    assert done["status"] == "completed" and done["result_span_id"]
    return done


async def matrix_cells(gw: Gateway) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A 2-variant x 2-input matrix experiment, run: the experiment and its cells."""
    exp = await create(gw, name="grid", description="2x2")
    for n in (1, 2):
        await add_variant(gw, exp["id"], name=f"v{n}", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], [{"key": f"k{i}", "content": f"question {i}"} for i in (1, 2)])
    await start(gw, exp["id"])
    await finish(gw, exp["id"])
    return exp, await cells(gw, exp["id"])
