"""Shared by the project-key tests: a gateway with keys on, two projects (``proj-a``,
``proj-b``) holding one of everything each, made with each project's own keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.access_helpers import ADMIN_KEY, create_key
from tests.conftest import Gateway, GatewayFactory

PROJECTS = ("proj-a", "proj-b")
ADMIN = {"x-spanlab-key": ADMIN_KEY}


def marker(project: str) -> str:
    """A text only ``project``'s data holds."""
    return f"MARK-{project}-7f3a"


@dataclass
class Seeded:
    """One project's keys and objects."""

    project: str
    keys: dict[str, str]  # "proxy", "write" -> key
    ids: dict[str, str] = field(default_factory=dict)  # param name -> an object's id

    def headers(self, who: str = "write") -> dict[str, str]:
        return {"x-spanlab-key": self.keys[who]}


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def seed_project(gw: Gateway, project: str) -> Seeded:
    if project != "default":
        await ok(await gw.client.post("/projects", json={"id": project}, headers=ADMIN), 201)
    keys = {
        "proxy": (await create_key(gw, f"{project}-proxy", ["proxy"], project_id=project))["key"],
        "write": (await create_key(gw, f"{project}-rw", ["read", "write"], project_id=project))[
            "key"
        ],
    }
    seeded = Seeded(project, keys)
    mark = marker(project)
    client, ids = gw.client, seeded.ids
    call = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hi {mark}"}]},
        headers={
            **seeded.headers("proxy"),
            "x-thread-id": f"thread-{mark}",
            "x-label": f"label-{mark}",
        },
    )
    assert call.status_code == 200, call.text
    await gw.flush()
    ids["span_id"] = call.headers["x-spanlab-span-id"]
    span = await ok(await client.get(f"/spans/{ids['span_id']}", headers=seeded.headers()))
    assert span["project_id"] == (None if project == "default" else project)
    ids["trace_id"] = span["trace_id"]
    w = seeded.headers()
    experiment = await ok(
        await client.post(
            "/experiments",
            json={"original_span_id": ids["span_id"], "name": f"exp {mark}"},
            headers=w,
        ),
        201,
    )
    ids["experiment_id"] = experiment["id"]
    run = await ok(await client.post(f"/experiments/{experiment['id']}/run", headers=w))
    ids["run_id"] = run["id"]
    dataset = await ok(
        await client.post(
            "/datasets",
            json={
                "name": f"ds {mark}",
                "items": [{"variables": {"q": mark}, "expected_output": mark}],
            },
            headers=w,
        ),
        201,
    )
    ids["dataset_id"] = dataset["id"]
    items = await ok(await client.get(f"/datasets/{dataset['id']}/items", headers=w))
    ids["item_id"] = items["data"][0]["id"]
    played = await ok(
        await client.post(
            "/playground/complete",
            json={"model": "gpt-4o-mini", "prompt": f"play {mark}"},
            headers=w,
        )
    )
    ids["session_id"] = played.get("session_id") or played["sessionId"]
    score = await ok(
        await client.post(
            f"/spans/{ids['span_id']}/scores",
            json={"metric_key": "quality", "value": 1, "note": mark},
            headers=w,
        ),
        201,
    )
    ids["score_id"] = score["score"]["id"]
    await ok(
        await client.post(
            f"/spans/{ids['span_id']}/feedback", json={"thumbs_up": True, "note": mark}, headers=w
        )
    )
    metric_key = f"metric_{project.replace('-', '_')}"
    await ok(
        await client.post(
            "/metric-definitions",
            json={"key": metric_key, "description": mark, "kind": "numeric"},
            headers=w,
        ),
        201,
    )
    ids["key"] = metric_key
    await gw.flush()  # the run's and the playground's spans
    return seeded


async def two_projects(make_gateway: GatewayFactory) -> tuple[Gateway, Seeded, Seeded]:
    gw = await make_gateway(admin_key=ADMIN_KEY)
    a, b = [await seed_project(gw, p) for p in PROJECTS]
    return gw, a, b
