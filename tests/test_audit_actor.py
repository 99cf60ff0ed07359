"""Feedback and score entries name who gave them as every audit entry does
(`gateway.access.audit.actor_of`): the key's id when keys are on, else the
``x-spanlab-user`` header, else "local"."""

from __future__ import annotations

from typing import Any

from tests.access_helpers import ADMIN_KEY, keyed_gateway
from tests.conftest import Gateway, GatewayFactory

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
SCORE = {"metric_key": "quality", "value": 1}
TYPES = ("experiment.feedback.updated", "experiment.score.created")


async def run_and_span(gw: Gateway, headers: dict[str, str]) -> tuple[str, str]:
    """A run of an experiment, and a span that is no run's (made with ``headers``)."""
    call = await gw.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert call.status_code == 200, call.text
    span_id = call.headers["x-spanlab-span-id"]
    await gw.flush()
    made = await gw.client.post("/experiments", json={"original_span_id": span_id}, headers=headers)
    assert made.status_code == 201, made.text
    run = await gw.client.post(f"/experiments/{made.json()['id']}/run", headers=headers)
    assert run.status_code == 200, run.text
    other = await gw.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    return run.json()["id"], other.headers["x-spanlab-span-id"]


async def give(gw: Gateway, run_id: str, span_id: str, headers: dict[str, str]) -> None:
    """Feedback and a score on the run, and on the span."""
    for base in (f"/experiments/runs/{run_id}", f"/spans/{span_id}"):
        r = await gw.client.post(f"{base}/feedback", json={"thumbs_up": True}, headers=headers)
        assert r.status_code == 200, r.text
        r = await gw.client.post(f"{base}/scores", json=SCORE, headers=headers)
        assert r.status_code == 201, r.text


async def entries(gw: Gateway, headers: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind in TYPES:
        r = await gw.client.get(f"/audit?type={kind}", headers=headers)
        assert r.status_code == 200, r.text
        out += r.json()["data"]
    return out


async def test_with_keys_on_the_actor_is_the_keys_id(make_gateway: GatewayFactory) -> None:
    keyed = await keyed_gateway(make_gateway)
    gw, admin = keyed.gw, {"x-spanlab-key": ADMIN_KEY}
    run_id, span_id = await run_and_span(gw, admin)
    await give(gw, run_id, span_id, keyed.headers("write"))
    keys = (await gw.client.get("/keys", headers=admin)).json()["data"]
    write_id = next(k["id"] for k in keys if k["name"] == "write")
    found = await entries(gw, admin)
    # One entry each: run feedback, span feedback, run score, span score.
    assert sorted(e["type"] for e in found) == sorted(TYPES * 2)
    for entry in found:
        payload = entry["payload"]
        assert payload["actor"] == write_id, entry
        assert payload["actor_name"] == "write" and payload["address"] == "127.0.0.1"
        assert payload["method"] == "POST" and payload["path"].startswith(("/spans", "/exp"))
    # The feedback and the score records say so too.
    feedback = (await gw.client.get(f"/spans/{span_id}/feedback", headers=admin)).json()
    assert feedback["feedback"]["updated_by"] == write_id
    # And the audit log finds them by that actor.
    by_actor = (await gw.client.get(f"/audit?actor={write_id}", headers=admin)).json()["data"]
    assert {e["type"] for e in by_actor} == set(TYPES)


async def test_with_keys_off_the_actor_is_the_user_header_or_local(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    run_id, span_id = await run_and_span(gw, {})
    await give(gw, run_id, span_id, {"x-spanlab-user": "ana"})
    named = await entries(gw, {})
    assert len(named) == 4 and {e["payload"]["actor"] for e in named} == {"ana"}
    run2, span2 = await run_and_span(gw, {})
    await give(gw, run2, span2, {})
    found = await entries(gw, {})
    assert len(found) == 8
    assert sorted(e["payload"]["actor"] for e in found) == ["ana"] * 4 + ["local"] * 4
