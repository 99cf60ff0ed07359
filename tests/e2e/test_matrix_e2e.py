"""The matrix end to end: a real ``spanlab serve`` process and the scripted upstream of
``tests/experiments_upstream.py`` on loopback; 3 variants x 10 inputs x 2 repetitions,
a 429 storm, and a kill -9 mid-run, restart and resume."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.experiments_support import Served, spanlab_serve
from tests.experiments_upstream import ScriptedUpstream, serve_in_thread
from tests.upstream.server import Reply

pytestmark = pytest.mark.e2e

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1")


class Storm(ScriptedUpstream):
    """Every third request answers 429 with Retry-After: 0 (a rate-limit storm)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.limited = 0

    def __call__(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        self.count += 1
        if self.count % 3 == 0:
            self.limited += 1
            body = orjson.dumps({"error": {"message": "Rate limit", "type": "rate_limit"}})
            return Reply(429, "application/json", [body], headers=[("retry-after", "0")])
        return super().__call__(method, target, headers, raw)


def post(http: httpx.Client, path: str, body: Any, status: int) -> Any:
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    return r.json()


def build(http: httpx.Client, *, stream: bool = False) -> str:
    experiment = post(http, "/experiments", {"name": "three models"}, 201)
    eid: str = experiment["id"]
    for n, model in enumerate(MODELS, start=1):
        config: dict[str, Any] = {"model": model, "temperature": 0.5}
        if stream:
            config["stream"] = True
        post(
            http,
            f"/experiments/{eid}/variants",
            {"name": model, "systemPrompt": f"System prompt {n}.", "config": config},
            201,
        )
    inputs = [{"key": f"case_{i:02d}", "content": f"question number {i}"} for i in range(10)]
    post(http, f"/experiments/{eid}/inputs", {"inputs": inputs}, 201)
    return eid


def wait_done(http: httpx.Client, eid: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        progress: dict[str, Any] = http.get(f"/experiments/{eid}/progress").json()
        if progress["status"] != "running":
            return progress
        assert time.monotonic() < deadline, progress
        time.sleep(0.05)


def system_and_user(body: dict[str, Any]) -> tuple[str, str]:
    messages = body["messages"]
    system = next(m["content"] for m in messages if m["role"] == "system")
    user = next(m["content"] for m in messages if m["role"] == "user")
    return system, user


EXPECTED = Counter(
    {(f"System prompt {n}.", f"question number {i}"): 2 for n in (1, 2, 3) for i in range(10)}
)


def test_sixty_cells_sixty_spans_through_a_real_gateway(tmp_path: Path) -> None:
    upstream = ScriptedUpstream()
    with (
        serve_in_thread(upstream) as url,
        spanlab_serve(tmp_path, url) as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
    ):
        eid = build(http)
        started = post(http, f"/experiments/{eid}/run", {"repetitions": 2, "concurrency": 8}, 202)
        assert started["cells"] == 60
        progress = wait_done(http, eid)
        assert (progress["done"], progress["failed"], progress["total"]) == (60, 0, 60)
        bodies = [r["body"] for r in upstream.requests]
        assert Counter(system_and_user(b) for b in bodies) == EXPECTED
        spans = served.wait_spans(60, label="experiment")
        runs = http.get(f"/experiments/{eid}").json()["runs"]
        assert len(runs) == 60
        assert {r["result_span_id"] for r in runs} == {s["span_id"] for s in spans}
        assert all(r["output_text"].startswith("Answer: question number") for r in runs)


def test_a_429_storm_is_retried_and_never_fails_a_cell(tmp_path: Path) -> None:
    upstream = Storm()
    with (
        serve_in_thread(upstream) as url,
        spanlab_serve(tmp_path, url) as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
    ):
        eid = build(http)
        post(http, f"/experiments/{eid}/run", {"concurrency": 4}, 202)
        progress = wait_done(http, eid)
        assert (progress["done"], progress["failed"]) == (30, 0)
        assert upstream.limited > 0 and progress["retries"] == upstream.limited
        assert len(upstream.requests) == 30  # the scripted answers: one per cell


@pytest.mark.slow
def test_kill_9_mid_run_then_restart_and_resume_completes_each_cell_once(
    tmp_path: Path,
) -> None:
    upstream = ScriptedUpstream(chunk_delay=0.03)  # streamed cells: ~0.3 s each
    with (
        serve_in_thread(upstream) as url,
        spanlab_serve(tmp_path, url) as served,
    ):
        http = httpx.Client(base_url=served.url, timeout=30)
        eid = build(http, stream=True)
        post(http, f"/experiments/{eid}/run", {"repetitions": 2, "concurrency": 4}, 202)
        deadline = time.monotonic() + 20
        while http.get(f"/experiments/{eid}/progress").json()["completed"] < 12:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert served.proc is not None
        served.proc.send_signal(signal.SIGKILL)
        served.proc.wait()
        served.proc = None
        http.close()
        completed_before = cells(served, "completed")
        assert 12 <= len(completed_before) < 60
        served.start()  # the same database
        http = httpx.Client(base_url=served.url, timeout=30)
        progress = http.get(f"/experiments/{eid}/progress").json()
        assert progress["running"] == 0 and progress["status"] == "interrupted"
        assert progress["interrupted"] >= 1
        sent_before = len(upstream.requests)
        resumed = post(http, f"/experiments/{eid}/run", {"resume": True}, 202)
        assert resumed["cells"] == 60 - len(completed_before)
        progress = wait_done(http, eid)
        assert (progress["done"], progress["total"]) == (60, 60)
        # None ran twice: a completed cell kept its span; the resume sent only the rest.
        assert len(upstream.requests) - sent_before == 60 - len(completed_before)
        after = cells(served, "completed")
        assert all(after[cell] == span for cell, span in completed_before.items())
        with sqlite3.connect(served.db) as conn:  # streamed cells: each has its TTFT
            [[no_ttft]] = conn.execute(
                "SELECT COUNT(*) FROM experiment_runs"
                " WHERE matrix_run_id IS NOT NULL AND ttft_ms IS NULL"
            ).fetchall()
        assert no_ttft == 0
        http.close()


def cells(served: Served, status: str) -> dict[str, str]:
    with sqlite3.connect(served.db) as conn:
        rows = conn.execute(
            "SELECT id, result_span_id FROM experiment_runs"
            " WHERE matrix_run_id IS NOT NULL AND status = ?",
            (status,),
        ).fetchall()
    return {row[0]: row[1] for row in rows}
