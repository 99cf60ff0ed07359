"""A real OpenAI-compatible upstream on loopback for the browser tests.

It answers from the request, so a changed request gives a visibly changed answer:
``Reply at temperature T to: <last user message>``, streamed word by word when asked.
A user message containing ``XSS-PROBE`` gets a reply full of markup that must never run.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


def reply_for(body: dict[str, Any]) -> str:
    user = _last_user_text(body.get("messages") or [])
    if "XSS-PROBE" in user:
        return HOSTILE_OUTPUT
    temperature = body.get("temperature")
    return f"Reply at temperature {temperature} to: {user}"


def _words(text: str) -> int:
    return max(1, len(text.split()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]]  # set per server: each chat request's body and auth

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(
                200,
                {
                    "object": "list",
                    "data": [{"id": m, "object": "model", "owned_by": "test"} for m in MODELS],
                },
            )
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found"}})
            return
        self.seen.append({"body": body, "authorization": self.headers.get("authorization")})
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
            self._json(
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
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        base = {"id": "chatcmpl-loopback", "object": "chat.completion.chunk", "model": model}

        def send(chunk: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps({**base, **chunk}).encode() + b"\n\n")
            self.wfile.flush()

        send({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            send({"choices": [{"index": 0, "delta": {"content": piece}}]})
            time.sleep(0.03)
        send({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            send({"choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class LoopbackUpstream:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        handler = type("Handler", (_Handler,), {"seen": self.seen})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> LoopbackUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
