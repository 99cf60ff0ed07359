"""A real OpenAI-compatible upstream on loopback for the browser tests.

It answers from the request, so a changed request gives a visibly changed answer:
``Reply at temperature T to: <last user message>``, streamed word by word when asked.
A user message containing ``XSS-PROBE`` gets a reply full of markup that must never run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tests.upstream.server import MockUpstream, Reply

MODELS = ["fake-small", "fake-large"]

HOSTILE_OUTPUT = (
    "<script>window.__pwned = 'script'</script>\n"
    '<img src="x" onerror="window.__pwned = \'img\'">\n'
    "[click me](javascript:window.__pwned='md-link')\n"
    '<a href="javascript:window.__pwned=\'a-link\'" id="evil-link">evil link</a>\n'
    "<iframe src=\"javascript:window.__pwned='iframe'\"></iframe>"
)


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and "text" in p
                )
    return ""


# A user message containing SLOW_PROBE is answered after SLOW_PROBE_S seconds (a run to
# catch in flight: cancel, resume).
SLOW_PROBE = "SLOW-PROBE"
SLOW_PROBE_S = 3.0


def reply_for(body: dict[str, Any]) -> str:
    user = _last_user_text(body.get("messages") or [])
    if "XSS-PROBE" in user:
        return HOSTILE_OUTPUT
    temperature = body.get("temperature")
    return f"Reply at temperature {temperature} to: {user}"


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _json(status: int, payload: Any) -> Reply:
    return Reply(status, "application/json", [json.dumps(payload).encode()])


class LoopbackUpstream(MockUpstream):
    """The browser tests' upstream: a script of the suite's loopback fake upstream."""

    def __init__(self) -> None:
        super().__init__(script=self.answer)
        self.seen: list[dict[str, Any]] = []

    def __enter__(self) -> LoopbackUpstream:
        self.start()
        return self

    def answer(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        path = urlsplit(target).path
        if method == "GET":
            if path.rstrip("/").endswith("/models"):
                data = [{"id": m, "object": "model", "owned_by": "test"} for m in MODELS]
                return _json(200, {"object": "list", "data": data})
            return _json(404, {"error": {"message": "not found"}})
        body = json.loads(raw or b"{}")
        if not path.endswith("/chat/completions"):
            return _json(404, {"error": {"message": "not found"}})
        self.seen.append({"body": body, "authorization": headers.get("authorization")})
        if SLOW_PROBE in _last_user_text(body.get("messages") or []):
            time.sleep(SLOW_PROBE_S)  # scripts run in a thread: the server stays free
        text = reply_for(body)
        model = body.get("model") or "fake-small"
        prompt_tokens = sum(
            _words(json.dumps(m.get("content"))) for m in body.get("messages") or []
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": _words(text),
            "total_tokens": prompt_tokens + _words(text),
        }
        if not body.get("stream"):
            return _json(
                200,
                {
                    "id": "chatcmpl-loopback",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
        base = {"id": "chatcmpl-loopback", "object": "chat.completion.chunk", "model": model}

        def event(chunk: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps({**base, **chunk}).encode() + b"\n\n"

        events = [event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            events.append(event({"choices": [{"index": 0, "delta": {"content": piece}}]}))
        events.append(event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(event({"choices": [], "usage": usage}))
        events.append(b"data: [DONE]\n\n")
        # Word by word, slowly enough that the UI shows the stream arriving.
        return Reply(200, "text/event-stream", events, 0.03)
