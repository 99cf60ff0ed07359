"""``spanlab replay`` and ``spanlab experiments``, through click's CliRunner, with the
gateway in process (no --url) and a real upstream on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner, Result

from gateway.app import create_app
from gateway.cli.main import cli
from gateway.config import Settings
from tests.experiments_upstream import ScriptedUpstream, config_toml, serve_in_thread

QUESTION = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "temperature": 0.5,
}


class Setup:
    def __init__(self, tmp_path: Path, upstream: ScriptedUpstream, url: str) -> None:
        self.upstream = upstream
        self.config = tmp_path / "spanlab.toml"
        self.db = tmp_path / "cli.db"
        self.write_config(url)

    def write_config(self, url: str, **kwargs: Any) -> None:
        self.config.write_text(config_toml(url, **kwargs), encoding="utf-8")

    @property
    def where(self) -> list[str]:
        return ["--config", str(self.config), "--db", str(self.db)]

    def capture(self, body: dict[str, Any] | None = None, **headers: str) -> str:
        """A call through an in-process gateway on this database; its span id."""
        settings = Settings.load(self.config, overrides={"db": str(self.db)})

        async def main() -> str:
            app = create_app(settings)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://localhost"
                ) as client,
            ):
                r = await client.post(
                    "/v1/chat/completions", json=body or QUESTION, headers=headers
                )
                assert r.status_code == 200, r.text
                return r.headers["x-spanlab-span-id"]

        return asyncio.run(main())

    def invoke(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, [*args, *self.where], input=input, catch_exceptions=False)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    upstream = ScriptedUpstream(chunk_delay=0.0)
    with serve_in_thread(upstream) as url:
        yield Setup(tmp_path, upstream, url)


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_replay_with_changes_prints_the_comparison_as_json(setup: Setup) -> None:
    span_id = setup.capture()
    result = setup.invoke(
        "replay",
        span_id,
        "--model",
        "gpt-4o",
        "--set",
        "temperature=1.5",
        "--set",
        "max_tokens=null",
        "--set",
        "user=alice",
        "--system",
        "Be terse about {{place}}.",
        "--var",
        "place=Paris",
        "--tag",
        "cli",
        "--json",
    )
    out = json_of(result)
    sent = setup.upstream.requests[-1]["body"]
    assert sent["model"] == "gpt-4o" and sent["temperature"] == 1.5 and sent["user"] == "alice"
    assert sent["messages"][0] == {"role": "system", "content": "Be terse about Paris."}
    assert sent["messages"][1] == QUESTION["messages"][1]
    assert out["run"]["status"] == "completed"
    assert out["experiment"]["tags"] == ["cli"]
    comparison = out["comparison"]
    assert comparison["original"]["span_id"] == span_id
    assert comparison["output"]["original"].startswith("Answer:")
    assert comparison["output"]["result"].startswith("Briefly:")
    assert comparison["model"]["changed"] is True
    # The scripted upstream counts words: "Be terse about Paris." has one more.
    assert comparison["metrics"]["prompt_tokens"]["delta"] == 1
    listed = json_of(setup.invoke("experiments", "list", "--json"))
    assert [e["id"] for e in listed] == [out["experiment"]["id"]]


def test_replay_output_for_a_terminal(setup: Setup) -> None:
    span_id = setup.capture()
    result = setup.invoke("replay", span_id, "--set", "temperature=1.9")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for expected in (
        "original ·",
        "replay ·",
        "word diff",
        "finish reason",
        "completion tokens",
        "latency",
        "temperature 0.5",
        "temperature 1.9",
        "completed",
    ):
        assert expected in text, expected
    streamed = setup.invoke("replay", span_id, "--stream", "--set", "temperature=0.1")
    assert streamed.exit_code == 0, streamed.output
    assert "streaming replay" in streamed.stdout
    assert "temperature 0.1)" in streamed.stdout


def test_replay_streamed_json_matches_the_upstream(setup: Setup) -> None:
    span_id = setup.capture({**QUESTION, "stream": True})
    out = json_of(setup.invoke("replay", span_id, "--stream", "--json"))
    assert out["run"]["stream"] is True
    assert out["comparison"]["result"]["ttft_ms"] is not None
    assert out["comparison"]["output"]["identical"] is True


def test_replay_failures_exit_non_zero(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    span_id = setup.capture()
    setup.upstream.key = "sk-upstream-key"
    setup.write_config(
        setup.config.read_text().split('base_url = "')[1].split('"')[0],
        api_key_env="SPANLAB_CLI_TEST_KEY",
    )
    monkeypatch.delenv("SPANLAB_CLI_TEST_KEY", raising=False)
    refused = setup.invoke("replay", span_id)
    assert refused.exit_code == 1
    assert "SPANLAB_CLI_TEST_KEY" in refused.output and "missing_credential" in refused.output

    wrong = setup.invoke("replay", span_id, "--api-key", "sk-wrong")
    assert wrong.exit_code == 1
    assert "Incorrect API key" in wrong.stdout
    wrong_json = setup.invoke("replay", span_id, "--api-key", "sk-wrong", "--json")
    assert wrong_json.exit_code == 1
    assert orjson.loads(wrong_json.stdout)["run"]["status"] == "failed"

    ok = setup.invoke("replay", span_id, "--api-key", "sk-upstream-key", "--json")
    assert ok.exit_code == 0, ok.output
    monkeypatch.setenv("SPANLAB_CLI_TEST_KEY", "sk-upstream-key")
    assert setup.invoke("replay", span_id, "--json").exit_code == 0

    unknown = setup.invoke("replay", "0000000000000000")
    assert unknown.exit_code == 1 and "No span" in unknown.output
    bad = setup.invoke("replay", span_id, "--set", "temperature")
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
    nodb = CliRunner().invoke(cli, ["experiments", "list", "--db", str(setup.db) + ".none"])
    assert nodb.exit_code == 1 and "No database" in nodb.output


def test_experiments_commands(setup: Setup, tmp_path: Path) -> None:
    span_id = setup.capture()
    made = json_of(setup.invoke("replay", span_id, "--set", "temperature=1.2", "--json"))
    exp_id = made["experiment"]["id"]

    shown = json_of(setup.invoke("experiments", "show", exp_id, "--json"))
    assert shown["id"] == exp_id and len(shown["runs"]) == 1
    text = setup.invoke("experiments", "show", exp_id)
    assert exp_id in text.stdout and "runs" in text.stdout

    again = json_of(setup.invoke("experiments", "run", exp_id, "--json"))
    assert again["run"]["status"] == "completed"
    assert again["experiment"]["result_span_id"] == again["run"]["result_span_id"]
    streamed = setup.invoke("experiments", "run", exp_id, "--stream")
    assert streamed.exit_code == 0 and "temperature 1.2)" in streamed.stdout

    compared = json_of(setup.invoke("experiments", "compare", exp_id, "--json"))
    first_run = made["run"]["id"]
    older = json_of(setup.invoke("experiments", "compare", exp_id, "--run", first_run, "--json"))
    assert older["run_id"] == first_run and compared["run_id"] != first_run
    assert "word diff" in setup.invoke("experiments", "compare", exp_id).stdout

    dup = json_of(setup.invoke("experiments", "duplicate", exp_id, "--name", "B", "--json"))
    assert dup["name"] == "B" and dup["status"] == "draft"
    listed = json_of(setup.invoke("experiments", "list", "--json"))
    assert [e["id"] for e in listed] == [dup["id"], exp_id]
    assert (
        json_of(setup.invoke("experiments", "list", "--status", "draft", "--json"))[0]["id"]
        == dup["id"]
    )
    table = setup.invoke("experiments", "list")
    assert exp_id in table.stdout and dup["id"] in table.stdout

    export_file = tmp_path / "out.json"
    info = json_of(setup.invoke("experiments", "export", exp_id, "-o", str(export_file), "--json"))
    assert info == {"file": str(export_file), "count": 1}
    document = orjson.loads(export_file.read_text())
    assert len(document["experiments"][0]["runs"]) == 3
    whole = json_of(setup.invoke("experiments", "export"))
    assert [e["id"] for e in whole["experiments"]] == [dup["id"], exp_id]

    conflict = setup.invoke("experiments", "import", str(export_file))
    assert conflict.exit_code == 1 and "already exists" in conflict.output
    imported = json_of(
        setup.invoke("experiments", "import", str(export_file), "--on-conflict", "copy", "--json")
    )
    assert len(imported) == 1 and imported[0]["id"] not in (exp_id, dup["id"])
    stdin = setup.invoke(
        "experiments",
        "import",
        "-",
        "--on-conflict",
        "skip",
        "--json",
        input=export_file.read_text(),
    )
    assert json_of(stdin) == []

    refused = setup.invoke("experiments", "delete", dup["id"], input="n\n")
    assert refused.exit_code == 1
    assert setup.invoke("experiments", "show", dup["id"], "--json").exit_code == 0
    missing = setup.invoke("experiments", "delete", dup["id"], "exp_nope", "--yes")
    assert missing.exit_code == 1 and "exp_nope" in missing.output
    assert setup.invoke("experiments", "show", dup["id"], "--json").exit_code == 0  # kept
    deleted = json_of(
        setup.invoke("experiments", "delete", dup["id"], imported[0]["id"], "--yes", "--json")
    )
    assert deleted == {"deleted": [dup["id"], imported[0]["id"]]}
    assert [e["id"] for e in json_of(setup.invoke("experiments", "list", "--json"))] == [exp_id]
    gone = setup.invoke("experiments", "show", dup["id"])
    assert gone.exit_code == 1 and "No experiment" in gone.output
