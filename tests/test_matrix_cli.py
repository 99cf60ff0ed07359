"""``spanlab experiments run`` on a matrix, and ``spanlab experiments variants|inputs``,
through click's CliRunner with the gateway in process and a real loopback upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner, Result

from gateway.app import create_app
from gateway.cli import matrix as matrix_cli
from gateway.cli.main import cli
from gateway.config import Settings
from tests.experiments_upstream import ScriptedUpstream, config_toml, serve_in_thread
from tests.upstream.server import Reply


class Upstream(ScriptedUpstream):
    """The scripted upstream; model ``broken`` is refused (400) while ``refuse``, and
    with ``slow`` each answer takes that many seconds."""

    slow = 0.0
    refuse = True

    def __call__(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        if self.refuse and orjson.loads(raw).get("model") == "broken":
            self.requests.append({"headers": dict(headers), "body": orjson.loads(raw)})
            error = {"error": {"message": "no such model", "type": "invalid_request_error"}}
            return Reply(400, "application/json", [orjson.dumps(error)])
        if self.slow:  # the mock's own loop waits: one answer at a time, each this long
            time.sleep(self.slow)
        return super().__call__(method, target, headers, raw)


class Setup:
    def __init__(self, tmp_path: Path, upstream: Upstream, url: str) -> None:
        self.upstream = upstream
        self.tmp_path = tmp_path
        self.config = tmp_path / "spanlab.toml"
        self.db = tmp_path / "cli.db"
        self.config.write_text(config_toml(url), encoding="utf-8")

    @property
    def where(self) -> list[str]:
        return ["--config", str(self.config), "--db", str(self.db)]

    def api(self, method: str, path: str, json: Any = None) -> Any:
        """One management call through an in-process gateway on this database."""
        settings = Settings.load(self.config, overrides={"db": str(self.db)})

        async def main() -> Any:
            app = create_app(settings)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://localhost"
                ) as client,
            ):
                r = await client.request(method, path, json=json)
                assert r.status_code < 400, r.text
                return r.json() if r.content else None

        return asyncio.run(main())

    def matrix(self, variants: dict[str, str], inputs: list[str]) -> tuple[str, list[str]]:
        """A matrix experiment with these variants (name: model) and inputs."""
        exp = self.api("POST", "/experiments", {"name": "cli matrix"})["id"]
        ids = []
        for name, model in variants.items():
            body = {"name": name, "systemPrompt": f"You are {name}.", "config": {"model": model}}
            ids.append(self.api("POST", f"/experiments/{exp}/variants", body)["variant"]["id"])
        if inputs:
            self.api("POST", f"/experiments/{exp}/inputs", {"inputs": inputs})
        return exp, ids

    def invoke(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, [*args, *self.where], input=input, catch_exceptions=False)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    upstream = Upstream(chunk_delay=0.0)
    with serve_in_thread(upstream) as url:
        yield Setup(tmp_path, upstream, url)


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_variants_add_list_remove(setup: Setup) -> None:
    exp, _ = setup.matrix({}, [])
    r = setup.invoke(
        "experiments", "variants", "add", exp, "--name", "cool", "--model", "gpt-4o-mini",
        "--system", "Be brief.", "--param", "temperature=0.2", "--param", "max_tokens=50",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    variant_id = r.stdout.strip()
    [variant] = json_of(setup.invoke("experiments", "variants", "list", exp, "--json"))
    assert variant["id"] == variant_id and variant["system_prompt"] == "Be brief."
    assert variant["config"] == {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 50}
    table = setup.invoke("experiments", "variants", "list", exp)
    assert "cool" in table.stdout and "gpt-4o-mini" in table.stdout
    # A bad variant is the gateway's 4xx, shown as its message; nothing is added.
    bad = setup.invoke(
        "experiments",
        "variants",
        "add",
        exp,
        "--name",
        "x",
        "--model",
        "gpt-4o",
        "--param",
        "temperature=hot",
    )
    assert bad.exit_code == 1 and "temperature" in bad.output
    removed = setup.invoke("experiments", "variants", "remove", exp, variant_id)
    assert removed.exit_code == 0, removed.output
    assert json_of(setup.invoke("experiments", "variants", "list", exp, "--json")) == []
    missing = setup.invoke("experiments", "variants", "remove", exp, variant_id)
    assert missing.exit_code == 1 and "404" in missing.output


def test_inputs_add_from_a_file_or_a_dataset_list_remove(setup: Setup) -> None:
    exp, _ = setup.matrix({}, [])
    lines = setup.tmp_path / "inputs.txt"
    lines.write_text("first question\n\nsecond question\r\nthird\n", encoding="utf-8")
    r = setup.invoke("experiments", "inputs", "add", exp, str(lines))
    assert r.exit_code == 0 and "added 3 input(s)" in r.stdout, r.output
    listed = json_of(setup.invoke("experiments", "inputs", "list", exp, "--json"))
    assert [i["content"] for i in listed] == ["first question", "second question", "third"]
    dataset = setup.api("POST", "/datasets", {"name": "qs"})
    dataset_id = dataset.get("id") or dataset["dataset"]["id"]
    setup.api(
        "POST",
        f"/datasets/{dataset_id}/items",
        {"items": [{"key": "d1", "variables": {"content": "from the dataset"}}]},
    )
    r = setup.invoke("experiments", "inputs", "add", exp, "--dataset", dataset_id, "--json")
    [added] = json_of(r)
    assert added["dataset_id"] == dataset_id and added["content"] == "from the dataset"
    r = setup.invoke("experiments", "inputs", "remove", exp, listed[0]["id"], added["id"])
    assert r.exit_code == 0, r.output
    left = json_of(setup.invoke("experiments", "inputs", "list", exp, "--json"))
    assert [i["content"] for i in left] == ["second question", "third"]
    both = setup.invoke("experiments", "inputs", "add", exp, str(lines), "--dataset", dataset_id)
    assert both.exit_code == 2


def test_run_a_matrix_with_json_results(setup: Setup) -> None:
    exp, variants = setup.matrix({"a": "gpt-4o-mini", "b": "gpt-4o"}, ["one", "two", "three"])
    r = setup.invoke("experiments", "run", exp, "--repeat", "2", "--concurrency", "3", "--json")
    out = json_of(r)
    progress, cells = out["progress"], out["cells"]
    assert progress["status"] == "completed" and progress["done"] == 12 and progress["failed"] == 0
    assert progress["final"] is True and progress["eta_s"] == 0.0
    assert len(cells) == 12 and {c["variant_id"] for c in cells} == set(variants)
    assert len(setup.upstream.requests) == 12
    # The estimate (calls, cost, what was approximated) went to stderr, never into the JSON:
    # these inputs were typed, not captured, so their tokens are approximated.
    assert "12 call(s), estimated $" in r.stderr
    assert "3 input(s) without captured usage approximated" in r.stderr
    # --variants/--inputs choose the cells.
    one = setup.invoke("experiments", "run", exp, "--variants", variants[1], "--json")
    assert json_of(one)["progress"]["total"] == 3
    sent = [q["body"] for q in setup.upstream.requests[12:]]
    assert {b["model"] for b in sent} == {"gpt-4o"}
    assert {b["messages"][0]["content"] for b in sent} == {"You are b."}


def test_failed_cells_exit_non_zero_and_resume_retries_them(setup: Setup) -> None:
    exp, _ = setup.matrix({"good": "gpt-4o-mini", "bad": "broken"}, ["one", "two"])
    r = setup.invoke("experiments", "run", exp, "--yes")
    assert r.exit_code == 1
    assert "failed" in r.stdout and "no such model" in r.stdout
    setup.upstream.refuse = False  # the provider is fixed
    before = len(setup.upstream.requests)
    resumed = setup.invoke("experiments", "run", exp, "--resume", "--json")
    out = json_of(resumed)
    assert out["progress"]["done"] == 4 and out["progress"]["failed"] == 0
    # Only the two failed cells ran again.
    assert len(setup.upstream.requests) - before == 2


def test_a_large_run_asks_first(setup: Setup) -> None:
    exp, _ = setup.matrix({"a": "gpt-4o-mini"}, ["one", "two", "three"])
    no = setup.invoke("experiments", "run", exp, "--confirm-calls", "2", input="n\n")
    assert no.exit_code == 1 and "Run it?" in no.output
    assert setup.upstream.requests == []
    assert setup.api("GET", f"/experiments/{exp}")["matrix_runs"] == []
    yes = setup.invoke("experiments", "run", exp, "--confirm-calls", "2", input="y\n")
    assert yes.exit_code == 0, yes.output
    assert len(setup.upstream.requests) == 3
    # Under the threshold (the default, 100): no question.
    quiet = setup.invoke("experiments", "run", exp)
    assert quiet.exit_code == 0 and "Run it?" not in quiet.output


def test_ctrl_c_cancels_the_run_and_exits_130(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp, _ = setup.matrix({"a": "gpt-4o-mini"}, [f"q{i}" for i in range(6)])
    setup.upstream.slow = 0.5
    real_watch = matrix_cli.watch

    async def interrupted(client: httpx.AsyncClient, *args: Any) -> dict[str, Any]:
        def on_progress(progress: dict[str, Any]) -> None:
            if progress["running"]:  # a cell is in flight: Ctrl-C now
                raise KeyboardInterrupt

        return await real_watch(client, args[0], args[1], on_progress)

    monkeypatch.setattr(matrix_cli, "watch", interrupted)
    r = setup.invoke("experiments", "run", exp, "--concurrency", "1", "--json")
    assert r.exit_code == 130, r.output
    out = orjson.loads(r.stdout)
    assert out["progress"]["status"] == "cancelled"
    progress = out["progress"]
    assert progress["pending"] >= 4 and progress["running"] == 0
    assert progress["completed"] + progress["cancelled"] + progress["pending"] == 6
    [run] = setup.api("GET", f"/experiments/{exp}")["matrix_runs"]
    assert run["status"] == "cancelled"
    # Nothing was called after the cancel; pending cells stay pending (a resume runs them).
    assert len(setup.upstream.requests) <= progress["completed"] + progress["cancelled"] <= 2


def test_an_empty_matrix_is_the_gateways_refusal(setup: Setup) -> None:
    exp = setup.api("POST", "/experiments", {"name": "empty"})["id"]
    # A matrix option on an experiment with nothing to run is the gateway's 422.
    r = setup.invoke("experiments", "run", exp, "--repeat", "2", "--yes")
    assert r.exit_code == 1 and "empty" in r.output.lower()
