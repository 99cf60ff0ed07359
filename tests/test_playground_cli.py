"""``spanlab playground`` through click's CliRunner, with the gateway in process (no
--url) on a database, against a real upstream on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import Result

from tests.experiments_upstream import ScriptedUpstream, serve_in_thread
from tests.test_experiments_cli import Setup


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    upstream = ScriptedUpstream(chunk_delay=0.0)
    with serve_in_thread(upstream) as url:
        s = Setup(tmp_path, upstream, url)
        s.capture()  # the database exists
        s.upstream.requests.clear()
        yield s


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def answer(model: str, prompt: str, lead: str = "Answer", temperature: Any = 1.0) -> str:
    return f"{lead}: {prompt} (model {model}, temperature {temperature})"


def test_two_models_side_by_side_with_their_figures(setup: Setup) -> None:
    out = ok(
        setup.invoke(
            "playground",
            "Why blue?",
            "--model",
            "m-one",
            "--model",
            "m-two",
            "--system",
            "Be terse",
            "--temperature",
            "0.5",
        )
    ).stdout
    lines = out.splitlines()
    # One table: both model names head columns on one line, answers side by side.
    assert any("m-one" in line and "m-two" in line for line in lines)
    assert any("Briefly: Why" in line and line.count("Briefly: Why") == 2 for line in lines)
    assert out.count("latency") == 2 and out.count("tokens") == 2 and "span " in out
    sent = [r["body"] for r in setup.upstream.requests]
    assert sorted(b["model"] for b in sent) == ["m-one", "m-two"]
    assert all(b["messages"][0] == {"role": "system", "content": "Be terse"} for b in sent)
    assert all(b["temperature"] == 0.5 for b in sent)


def test_json_and_a_session_continued(setup: Setup) -> None:
    first = orjson.loads(ok(setup.invoke("playground", "Hi", "--model", "m1", "--json")).stdout)
    [out] = first["outputs"]
    assert out["output"] == answer("m1", "Hi") and out["usage"]["total_tokens"] > 0
    sid = first["sessionId"]
    ok(setup.invoke("playground", "Again", "--model", "m1", "--session", sid, "--json"))
    assert setup.upstream.requests[-1]["body"]["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": answer("m1", "Hi")},
        {"role": "user", "content": "Again"},
    ]


def test_stream_one_model_writes_the_text_then_its_figures(setup: Setup) -> None:
    out = ok(setup.invoke("playground", "Stream me", "--model", "m1", "--stream")).stdout
    text, figures, session = out.rstrip("\n").split("\n")[-3:]
    assert text == answer("m1", "Stream me")
    assert figures.startswith("latency") and "ttft" in figures
    assert session.startswith("session pgs_")
    assert setup.upstream.requests[-1]["body"]["stream"] is True


def test_stream_two_models_then_the_table(setup: Setup) -> None:
    result = ok(setup.invoke("playground", "Both", "--model", "a1", "--model", "a2", "--stream"))
    assert "a1: done" in result.stderr and "a2: done" in result.stderr
    assert answer("a1", "Both")[:20] in result.stdout and "a2" in result.stdout


def test_a_narrow_terminal_stacks_the_answers(setup: Setup) -> None:
    models = [f"n{i}" for i in range(5)]  # 5 columns do not fit the 160 columns of a pipe
    args = [arg for m in models for arg in ("--model", m)]
    out = ok(setup.invoke("playground", "Stack", *args)).stdout
    lines = out.splitlines()
    assert not any(line.count("Answer: Stack") > 1 for line in lines)
    positions = [out.index(answer(m, "Stack")) for m in models]
    assert positions == sorted(positions)


def test_a_refused_request_is_a_clear_error(setup: Setup) -> None:
    result = setup.invoke("playground", "x", "--model", "m", "--provider", "nope")
    assert result.exit_code == 1
    assert "Unknown provider 'nope'" in result.output
    result = setup.invoke("playground", "x", "--model", "m", "--temperature", "3")
    assert result.exit_code == 1 and "temperature" in result.output
    assert setup.upstream.requests == []
