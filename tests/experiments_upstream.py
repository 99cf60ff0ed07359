"""A real OpenAI-compatible upstream on loopback for experiment tests (CLI and e2e).

Its answers are a deterministic function of the request, so a replay with a changed
temperature, system prompt or model gives a different, predictable output:

* text: ``"<Answer|Briefly>: <last user message> (model M, temperature T)"``; with
  ``max_tokens`` below the word count it is cut there and finishes with ``length``;
* with ``tools``: one call of the first tool, arguments ``{"query": <last user
  message>, "precise": temperature < 1}``, finish ``tool_calls``; unless
  ``tool_choice`` is ``"none"`` or the last message is a tool's result (then text, as
  a model answers once it has what it asked for);
* usage: prompt tokens = words in all messages, completion tokens = words produced;
* ``stream: true`` sends one chunk per word (and the usage chunk when asked for).

With ``key`` set it answers 401 unless ``Authorization: Bearer <key>`` comes along.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson

from tests.upstream.server import MockUpstream, Reply


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def compose(body: dict[str, Any]) -> dict[str, Any]:
    """What the upstream answers to ``body``: text or tool call, finish, usage."""
    messages = body.get("messages") or []
    user = next(
        (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    system = next((_text(m.get("content")) for m in messages if m.get("role") == "system"), "")
    temperature = body.get("temperature", 1.0)
    prompt_tokens = sum(len(_text(m.get("content")).split()) for m in messages)
    tools = body.get("tools") or []
    after_tool = bool(messages) and messages[-1].get("role") == "tool"
    if tools and body.get("tool_choice") != "none" and not after_tool:
        name = tools[0]["function"]["name"]
        arguments = orjson.dumps({"query": user, "precise": temperature < 1}).decode()
        return {
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
            "finish_reason": "tool_calls",
            "usage": _usage(prompt_tokens, 7),
        }
    lead = "Briefly" if "terse" in system.lower() else "Answer"
    words = f"{lead}: {user} (model {body.get('model')}, temperature {temperature})".split()
    finish = "stop"
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    if isinstance(limit, int) and limit < len(words):
        words, finish = words[:limit], "length"
    return {
        "content": " ".join(words),
        "tool_calls": None,
        "finish_reason": finish,
        "usage": _usage(prompt_tokens, len(words)),
    }


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class ScriptedUpstream:
    """The deterministic upstream as a script of the suite's fake upstream
    (`tests.upstream.server.MockUpstream` serves it on loopback)."""

    def __init__(self, key: str | None = None, chunk_delay: float = 0.002) -> None:
        self.key = key
        self.chunk_delay = chunk_delay
        self.requests: list[dict[str, Any]] = []

    def __call__(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        if method != "POST" or urlsplit(target).path != "/v1/chat/completions":
            return _json(404, {"error": {"message": "Not Found", "type": "not_found"}})
        body = orjson.loads(raw)
        self.requests.append({"headers": dict(headers), "body": body})
        if self.key is not None and headers.get("authorization") != f"Bearer {self.key}":
            return _json(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                        "param": None,
                    }
                },
            )
        answer = compose(body)
        model = f"{body.get('model')}-2025-01-01"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": answer["content"]}
            if answer["tool_calls"]:
                message["tool_calls"] = answer["tool_calls"]
            return _json(
                200,
                {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": answer["finish_reason"]}
                    ],
                    "usage": answer["usage"],
                },
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _stream(answer, model, include_usage)
        return Reply(200, "text/event-stream", events, self.chunk_delay)


def _json(status: int, payload: dict[str, Any]) -> Reply:
    return Reply(status, "application/json", [orjson.dumps(payload)])


def _stream(answer: dict[str, Any], model: str, include_usage: bool) -> list[bytes]:
    base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1}
    base["model"] = model

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

    events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    if answer["tool_calls"]:
        call = answer["tool_calls"][0]
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        first = {
            "index": 0,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": arguments[:half]},
        }
        second = {"index": 0, "function": {"arguments": arguments[half:]}}
        for piece in (first, second):
            events.append(event([{"index": 0, "delta": {"tool_calls": [piece]}}]))
    else:
        words = answer["content"].split(" ")
        for i, word in enumerate(words):
            text = word if i == 0 else " " + word
            events.append(event([{"index": 0, "delta": {"content": text}}]))
    events.append(event([{"index": 0, "delta": {}, "finish_reason": answer["finish_reason"]}]))
    if include_usage:
        events.append(event([], usage=answer["usage"]))
    events.append(b"data: [DONE]\n\n")
    return events


@contextmanager
def serve_in_thread(upstream: ScriptedUpstream) -> Iterator[str]:
    """Serve ``upstream`` on a loopback port; yields its ``/v1`` base URL."""
    with MockUpstream(script=upstream) as server:
        yield server.base_url


def config_toml(base_url: str, *, api_key_env: str | None = None, **settings: Any) -> str:
    """A spanlab config with one OpenAI-kind provider ``openai`` at ``base_url``."""
    lines = [f"{k} = {orjson.dumps(v).decode()}" for k, v in settings.items()]
    lines += ["[providers.openai]", 'kind = "openai"', f'base_url = "{base_url}"']
    if api_key_env:
        lines.append(f'api_key_env = "{api_key_env}"')
    return "\n".join(lines) + "\n"
