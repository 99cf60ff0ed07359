"""OTLP export to a receiver nobody here wrote: Arize Phoenix (``phoenix serve``), on
free loopback ports with its own working directory, fed by a real ``spanlab serve``
through calls of the official OpenAI SDK. The spans are read back from Phoenix's REST
API (``GET /v1/projects/{project}/spans``): model, tokens, the app's trace, and the
messages only when ``otlp_capture_content`` is on.

Phoenix is large (~850 MB with its dependencies), so it is not in the ``test`` extra:
`make test` installs it into its own virtualenv, ``.venv-phoenix`` (see the Makefile).
Without it these tests skip, but fail under CI. Phoenix takes 15 s (idle machine) to a
minute (loaded) to start, so it starts once for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import REPO_ROOT, StartGateway, free_port, sdk
from tests.upstream.server import COMPLETION_TOKENS, CONTENT, PROMPT_TOKENS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PHOENIX_START_TIMEOUT_S = 120.0
SPANS_TIMEOUT_S = 20.0
PROJECT_ATTRIBUTE = "openinference.project.name"  # how Phoenix files spans by project


def phoenix_command() -> list[str] | None:
    """``phoenix`` from $SPANLAB_TEST_PHOENIX, the repo's .venv-phoenix, or the PATH."""
    for candidate in (
        os.environ.get("SPANLAB_TEST_PHOENIX"),
        str(REPO_ROOT / ".venv-phoenix" / "bin" / "phoenix"),
        shutil.which("phoenix"),
    ):
        if candidate and Path(candidate).is_file():
            return [candidate, "serve"]
    return None


class Phoenix:
    def __init__(self, workdir: Path) -> None:
        command = phoenix_command()
        if command is None:
            message = "Phoenix is not installed (make test installs it into .venv-phoenix)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.port = free_port()
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": str(workdir),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(free_port()),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        self.log = workdir / "phoenix.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10.0)

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"  # OTLP/HTTP on its main port: /v1/traces

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + PHOENIX_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"phoenix serve exited: {self.log.read_text()[-2000:]}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        pytest.fail(f"phoenix serve not healthy in {PHOENIX_START_TIMEOUT_S:g} s")

    def spans(self, project: str, count: int) -> list[dict[str, Any]]:
        """The project's spans, once there are ``count`` (or the timeout passed)."""
        deadline = time.monotonic() + SPANS_TIMEOUT_S
        spans: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            r = self.client.get(f"/v1/projects/{project}/spans", params={"limit": 100})
            if r.status_code == 200:
                spans = r.json()["data"]
                if len(spans) >= count:
                    return spans
            time.sleep(0.25)
        return spans

    def stop(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    server = Phoenix(tmp_path_factory.mktemp("phoenix"))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def exporting_gateway(start_gateway: StartGateway, phoenix: Phoenix, content: bool) -> Any:
    project = "spanlab-" + uuid.uuid4().hex[:10]
    gateway = start_gateway(
        env={"OTEL_RESOURCE_ATTRIBUTES": f"{PROJECT_ATTRIBUTE}={project}"},
        otlp_endpoint=phoenix.otlp_endpoint,
        otlp_capture_content=content,
    )
    return gateway, project


def test_spans_reach_phoenix_with_model_tokens_trace_and_messages(
    start_gateway: StartGateway, phoenix: Phoenix
) -> None:
    gateway, project = exporting_gateway(start_gateway, phoenix, content=True)
    client = sdk(gateway)
    trace, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    prompt = "Which receiver is this? " + uuid.uuid4().hex
    client.chat.completions.create(
        model="mock-gpt-small",
        messages=[{"role": "user", "content": prompt}],
        temperature=0.25,
        max_tokens=40,
        extra_headers={"traceparent": f"00-{trace}-{parent}-01"},
    )
    stream = client.chat.completions.create(
        model="mock-gpt-large",
        messages=[{"role": "user", "content": prompt + " (streamed)"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == CONTENT

    spans = {s["attributes"]["gen_ai.request.model"]: s for s in phoenix.spans(project, 2)}
    assert set(spans) == {"mock-gpt-small", "mock-gpt-large"}
    plain, streamed = spans["mock-gpt-small"], spans["mock-gpt-large"]
    assert plain["name"] == "chat mock-gpt-small"
    assert plain["context"]["trace_id"] == trace  # joins the app's own trace
    assert plain["parent_id"] == parent
    for span in (plain, streamed):
        a = span["attributes"]
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.response.model"].startswith(a["gen_ai.request.model"])
        assert a["gen_ai.usage.input_tokens"] == PROMPT_TOKENS
        assert a["gen_ai.usage.output_tokens"] == COMPLETION_TOKENS
        assert a["gen_ai.response.finish_reasons"] == ["stop"]
        assert CONTENT in a["gen_ai.output.messages"]
    assert plain["attributes"]["gen_ai.request.temperature"] == 0.25
    assert plain["attributes"]["gen_ai.request.max_tokens"] == 40
    assert streamed["attributes"]["spanlab.stream"] is True
    inputs = json.loads(plain["attributes"]["gen_ai.input.messages"])
    assert inputs == [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]


def test_with_content_off_no_message_text_reaches_phoenix(
    start_gateway: StartGateway, phoenix: Phoenix
) -> None:
    gateway, project = exporting_gateway(start_gateway, phoenix, content=False)
    prompt = "A private question " + uuid.uuid4().hex
    sdk(gateway).chat.completions.create(
        model="mock-gpt-small", messages=[{"role": "user", "content": prompt}]
    )
    [span] = phoenix.spans(project, 1)
    a = span["attributes"]
    assert a["gen_ai.request.model"] == "mock-gpt-small"
    assert a["gen_ai.usage.input_tokens"] == PROMPT_TOKENS
    everything = json.dumps(span)
    assert prompt not in everything
    assert CONTENT not in everything
