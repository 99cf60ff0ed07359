"""The README's client snippets, run as they stand in README.md against a real
`spanlab serve` (the mock OpenAI upstream as the default provider, the mock Anthropic
API as the `anthropic` one), each checked to have been captured as a span.

The snippets are read from README.md (each follows a ``<!-- client-snippet: NAME -->``
marker), so the README and this test cannot drift: the only change made before running
one is the gateway's address (``http://127.0.0.1:8080`` becomes the test gateway's).
Each runs twice: as written, and with its base URL removed and given through the
environment variable the README names for it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.anthropic_support import MockAnthropic, MockAnthropicServer
from tests.e2e.conftest import (
    CLIENT_KEY,
    PROVIDER_KEY_ENV,
    REPO_ROOT,
    GatewayProcess,
    StartGateway,
)
from tests.e2e.mock_upstream import CONTENT, MockUpstream

pytestmark = pytest.mark.e2e

README_URL = "http://127.0.0.1:8080"
SNIPPET = re.compile(
    r"<!-- client-snippet: (?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)\n```", re.S
)
# What each snippet's call is, as the span records it.
CALLS: dict[str, dict[str, Any]] = {
    "openai-python": {"operation": "chat", "request_model": "gpt-4o-mini"},
    "openai-node": {"operation": "chat", "request_model": "gpt-4o-mini"},
    "anthropic": {"operation": "messages", "request_model": "claude-3-5-haiku-latest"},
    "langchain": {"operation": "chat", "request_model": "gpt-4o-mini"},
    "curl": {"operation": "chat", "request_model": "gpt-4o-mini"},
}
# The base URL argument of each snippet, and the variable that replaces it.
BASE_URL_ARGUMENT = {
    "openai-python": ('base_url="http://127.0.0.1:8080/v1"', "OPENAI_BASE_URL", "/v1"),
    "openai-node": ('{ baseURL: "http://127.0.0.1:8080/v1" }', "OPENAI_BASE_URL", "/v1"),
    "anthropic": ('base_url="http://127.0.0.1:8080"', "ANTHROPIC_BASE_URL", ""),
    "langchain": (', base_url="http://127.0.0.1:8080/v1"', "OPENAI_BASE_URL", "/v1"),
}
NODE_MODULES = REPO_ROOT / "ui" / "node_modules"


def readme_snippets() -> dict[str, tuple[str, str]]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    found: dict[str, tuple[str, str]] = {}
    for match in SNIPPET.finditer(text):
        assert match["name"] not in found, f"two README snippets named {match['name']}"
        found[match["name"]] = (match["lang"], match["code"])
    return found


SNIPPETS = readme_snippets()


def test_every_readme_client_snippet_is_run_here() -> None:
    assert set(SNIPPETS) == set(CALLS)
    for name, (_, code) in SNIPPETS.items():
        assert README_URL in code, f"{name}: the snippet does not name the gateway"


@pytest.fixture(scope="module")
def claude_upstream() -> Iterator[MockAnthropicServer]:
    with MockAnthropicServer(MockAnthropic()) as server:  # takes the client's key
        yield server


@pytest.fixture(scope="module")
def gateway(
    start_gateway: StartGateway, mock_upstream: MockUpstream, claude_upstream: MockAnthropicServer
) -> GatewayProcess:
    providers = {
        "mock": {
            "kind": "openai",
            "base_url": mock_upstream.base_url,
            "api_key_env": PROVIDER_KEY_ENV,
        },
        "anthropic": {"kind": "anthropic", "base_url": claude_upstream.base_url},
    }
    return start_gateway(default_provider="mock", providers=providers)


def client_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell with the keys the snippets read; nothing that
    would point a client elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_", "SPANLAB_", "LANGCHAIN_", "LANGSMITH_"))
    }
    env.update(OPENAI_API_KEY=CLIENT_KEY, ANTHROPIC_API_KEY=CLIENT_KEY, **extra)
    return env


def command(lang: str, code: str) -> tuple[list[str], str | None, str | None]:
    """(argv, stdin, cwd) that runs ``code``."""
    if lang == "python":
        return [sys.executable, "-c", code], None, None
    if lang == "bash":
        return ["bash", "-c", "set -euo pipefail\n" + code], None, None
    if lang == "js":
        node = shutil.which("node")
        if node is None or not (NODE_MODULES / "openai").is_dir():
            why = "node is not installed" if node is None else "no ui/node_modules/openai"
            if os.environ.get("CI"):
                pytest.fail(f"the README's Node snippet cannot run under CI: {why}")
            pytest.skip(f"{why} (make ui-deps)")
        # From stdin an ES module resolves `import "openai"` from the working directory:
        # ui/, whose devDependencies carry the SDK.
        return [node, "--input-type=module"], code, str(REPO_ROOT / "ui")
    raise AssertionError(f"no way to run a {lang!r} snippet")


def run(lang: str, code: str, env: dict[str, str]) -> str:
    argv, stdin, cwd = command(lang, code)
    done = subprocess.run(
        argv, input=stdin, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def new_span(gateway: GatewayProcess, before: set[str], timeout: float = 10.0) -> dict[str, Any]:
    """The one span stored since ``before`` (the ids that were there)."""
    deadline = time.monotonic() + timeout
    while True:
        added = [s for s in gateway.spans() if s["span_id"] not in before]
        assert len(added) <= 1, [(s["operation"], s["path"]) for s in added]
        if added:
            return gateway.span(added[0]["span_id"])
        assert time.monotonic() < deadline, "the snippet's call was not captured"
        time.sleep(0.05)


def check_captured(name: str, span: dict[str, Any], output: str) -> None:
    expected = CALLS[name]
    assert span["operation"] == expected["operation"]
    assert span["request_model"] == expected["request_model"]
    assert (span["status"], span["http_status"]) == ("ok", 200)
    assert span["input_preview"] == "Hello"
    assert span["output_text"] and span["output_text"] in output
    if name == "openai-python":
        assert span["thread_id"] == "conversation-42"
    if name == "curl":
        assert f"x-spanlab-span-id: {span['span_id']}" in output.lower()
    if expected["operation"] == "chat":
        assert span["output_text"] == CONTENT
    else:
        assert span["output_text"] == "Echo: Hello"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_readme_snippet_is_captured(gateway: GatewayProcess, name: str) -> None:
    lang, code = SNIPPETS[name]
    before = {s["span_id"] for s in gateway.spans()}
    output = run(lang, code.replace(README_URL, gateway.base_url), client_env())
    check_captured(name, new_span(gateway, before), output)


@pytest.mark.parametrize("name", sorted(BASE_URL_ARGUMENT))
def test_readme_snippet_with_the_base_url_from_the_environment(
    gateway: GatewayProcess, name: str
) -> None:
    lang, code = SNIPPETS[name]
    argument, variable, suffix = BASE_URL_ARGUMENT[name]
    assert argument in code, f"{name}: the snippet no longer passes {argument}"
    bare = code.replace(argument, "{}" if lang == "js" else "")
    assert README_URL not in bare
    before = {s["span_id"] for s in gateway.spans()}
    output = run(lang, bare, client_env(**{variable: gateway.base_url + suffix}))
    check_captured(name, new_span(gateway, before), output)
