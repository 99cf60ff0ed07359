"""The matrix's progress stream and the CLI's matrix run against a real ``spanlab
serve`` and the scripted upstream on loopback: events arrive live, over HTTP, while
the cells run (not all at the end)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from tests.e2e.experiments_support import spanlab_serve
from tests.e2e.test_matrix_e2e import build, wait_done
from tests.experiments_upstream import ScriptedUpstream, serve_in_thread

pytestmark = pytest.mark.e2e


def test_progress_events_arrive_while_the_cells_run(tmp_path: Path) -> None:
    upstream = ScriptedUpstream(chunk_delay=0.02)  # streamed cells take a while
    with (
        serve_in_thread(upstream) as url,
        spanlab_serve(tmp_path, url) as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
    ):
        eid = build(http, stream=True)
        r = http.post(f"/experiments/{eid}/run", json={"concurrency": 2})
        assert r.status_code == 202, r.text
        seen: list[tuple[float, dict[str, Any]]] = []
        with http.stream("GET", f"/experiments/{eid}/progress", params={"stream": "true"}) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            for line in s.iter_lines():
                if line.startswith("data: "):
                    seen.append((time.monotonic(), orjson.loads(line[6:])))
        final = seen[-1][1]
        assert final["final"] is True and final["done"] == 30 and final["status"] == "completed"
        assert sum(1 for _, e in seen if e["final"]) == 1
        # Live: several events, spread over the run rather than bunched at its end.
        assert len(seen) >= 5
        assert seen[-1][0] - seen[0][0] > 0.1
        done = [int(e["done"]) for _, e in seen]
        assert done == sorted(done) and done[0] < 30
        assert wait_done(http, eid)["done"] == 30


def test_the_cli_runs_a_matrix_on_a_running_gateway(tmp_path: Path) -> None:
    upstream = ScriptedUpstream()
    with (
        serve_in_thread(upstream) as url,
        spanlab_serve(tmp_path, url) as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
    ):
        eid = build(http)
        result = CliRunner().invoke(
            cli,
            ["experiments", "run", eid, "--repeat", "2", "--yes", "--json", "--url", served.url],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        out = orjson.loads(result.stdout)
        assert out["progress"]["done"] == 60 and len(out["cells"]) == 60
        assert len(upstream.requests) == 60
