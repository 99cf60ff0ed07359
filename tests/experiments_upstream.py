"""A real OpenAI-compatible upstream on loopback for experiment tests (CLI and e2e).

Its answers are a deterministic function of the request, so a replay with a changed
temperature, system prompt or model gives a different, predictable output:

* text: ``"<Answer|Briefly>: <last user message> (model M, temperature T)"``; with
  ``max_tokens`` below the word count it is cut there and finishes with ``length``;
* with ``tools``: one call of the first tool, arguments ``{"query": <last user
  message>, "precise": temperature < 1}``, finish ``tool_calls``;
* usage: prompt tokens = words in all messages, completion tokens = words produced;
* ``stream: true`` sends one chunk per word (and the usage chunk when asked for).

With ``key`` set it answers 401 unless ``Authorization: Bearer <key>`` comes along.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


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
    if tools and body.get("tool_choice") != "none":
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
    def __init__(self, key: str | None = None, chunk_delay: float = 0.002) -> None:
        self.key = key
        self.chunk_delay = chunk_delay
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append({"headers": dict(request.headers), "body": body})
        if self.key is not None and request.headers.get("authorization") != f"Bearer {self.key}":
            return JSONResponse(
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                        "param": None,
                    }
                },
                status_code=401,
            )
        answer = compose(body)
        model = f"{body.get('model')}-2025-01-01"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": answer["content"]}
            if answer["tool_calls"]:
                message["tool_calls"] = answer["tool_calls"]
            return JSONResponse(
                {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": answer["finish_reason"]}
                    ],
                    "usage": answer["usage"],
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            self._stream(answer, model, include_usage), media_type="text/event-stream"
        )

    async def _stream(
        self, answer: dict[str, Any], model: str, include_usage: bool
    ) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1}
        base["model"] = model

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
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
                await asyncio.sleep(self.chunk_delay)
                yield event([{"index": 0, "delta": {"tool_calls": [piece]}}])
        else:
            words = answer["content"].split(" ")
            for i, word in enumerate(words):
                await asyncio.sleep(self.chunk_delay)
                text = word if i == 0 else " " + word
                yield event([{"index": 0, "delta": {"content": text}}])
        yield event([{"index": 0, "delta": {}, "finish_reason": answer["finish_reason"]}])
        if include_usage:
            yield event([], usage=answer["usage"])
        yield b"data: [DONE]\n\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(upstream: ScriptedUpstream) -> Iterator[str]:
    """Serve ``upstream`` on a loopback port; yields its ``/v1`` base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(upstream.app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the scripted upstream did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def config_toml(base_url: str, *, api_key_env: str | None = None, **settings: Any) -> str:
    """A spanlab config with one OpenAI-kind provider ``openai`` at ``base_url``."""
    lines = [f"{k} = {orjson.dumps(v).decode()}" for k, v in settings.items()]
    lines += ["[providers.openai]", 'kind = "openai"', f'base_url = "{base_url}"']
    if api_key_env:
        lines.append(f'api_key_env = "{api_key_env}"')
    return "\n".join(lines) + "\n"
