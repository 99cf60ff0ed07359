"""What gateway/http/server.py relies on in uvicorn's private protocol class
`uvicorn.protocols.http.httptools_impl.HttpToolsProtocol`, which it subclasses: the
methods it overrides (and calls through ``super()``), the attributes it reads and sets,
the request cycle's flags, and ``STATUS_LINE``. pyproject.toml pins uvicorn to the
versions checked against this; a uvicorn that changes any of it fails here, naming
what changed, before the server misbehaves under load."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl
from uvicorn.server import ServerState

CLASS = "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol"
# Overridden by CoalescingHttpToolsProtocol / GuardedHttpToolsProtocol, each calling
# uvicorn's own through super(): name -> its parameters.
METHODS = {
    "connection_made": ["self", "transport"],
    "connection_lost": ["self", "exc"],
    "data_received": ["self", "data"],
    "on_message_begin": ["self"],
    "on_headers_complete": ["self"],
    "on_message_complete": ["self"],
    "on_response_complete": ["self"],
}
# Read from the protocol: the server's shared connection set, the current cycle, the
# loop and transport; ``app`` is replaced to refuse a request (503) past the limit.
ATTRIBUTES = ("app", "connections", "cycle", "loop", "transport")
# Read (and for a body timeout set) on the request cycle.
CYCLE_ATTRIBUTES = ("disconnected", "message_event", "response_complete", "response_started")


def test_the_pinned_range_is_the_one_checked_here() -> None:
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    pin = re.search(r'"uvicorn(>=[^"]+)"', pyproject)
    assert pin is not None, "uvicorn is not pinned in pyproject.toml"
    assert "<" in pin.group(1), f"uvicorn needs an upper bound (server.py subclasses {CLASS})"
    lower = re.search(r">=([0-9.]+)", pin.group(1))
    upper = re.search(r"<([0-9.]+)", pin.group(1))
    assert lower is not None and upper is not None

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", text)[:3])

    installed = version(uvicorn.__version__)
    assert version(lower.group(1)) <= installed < version(upper.group(1)), (
        f"uvicorn {uvicorn.__version__} is outside the pinned range {pin.group(1)}"
    )


def test_the_subclassed_methods_exist_with_the_parameters_relied_on() -> None:
    cls = getattr(httptools_impl, "HttpToolsProtocol", None)
    assert cls is not None, f"{CLASS} is gone: gateway/http/server.py subclasses it"
    changed = {}
    for name, params in METHODS.items():
        method = getattr(cls, name, None)
        if method is None:
            changed[name] = "missing"
            continue
        got = list(inspect.signature(method).parameters)
        if got != params:
            changed[name] = f"parameters {got}, expected {params}"
    assert not changed, f"{CLASS} changed what gateway/http/server.py overrides: {changed}"


def test_status_line_gives_a_status_line_per_code() -> None:
    status_line = getattr(httptools_impl, "STATUS_LINE", None)
    assert isinstance(status_line, dict), "httptools_impl.STATUS_LINE is gone (error_response)"
    assert status_line[503].startswith(b"HTTP/1.1 503 "), status_line[503]
    assert status_line[408].endswith(b"\r\n"), status_line[408]


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


async def never_used(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the protocol ran the app it was built with, not self.app")


async def test_a_connection_has_the_attributes_and_cycle_relied_on() -> None:
    config = Config(app=never_used, http="httptools", lifespan="off", log_level="critical")
    config.load()
    state = ServerState()
    protocol = httptools_impl.HttpToolsProtocol(config, state, {}, _loop=asyncio.get_running_loop())
    transport = Transport()
    protocol.connection_made(transport)
    missing = [a for a in ATTRIBUTES if not hasattr(protocol, a)]
    assert not missing, f"{CLASS} no longer has {missing} (read by GuardedHttpToolsProtocol)"
    assert protocol.transport is transport
    assert protocol in protocol.connections, "self.connections is not the server's set"

    seen: list[str] = []
    cycles: list[Any] = []

    async def replaced(scope: Any, receive: Any, send: Any) -> None:
        # What make_room does past the limit: the protocol must run self.app.
        seen.append(scope["path"])
        cycles.append(protocol.cycle)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    protocol.app = replaced
    protocol.data_received(b"GET /probe HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.wait_for(asyncio.gather(*state.tasks), 5)
    assert seen == ["/probe"], f"{CLASS} did not run self.app for the request"
    cycle = cycles[0]
    missing = [a for a in CYCLE_ATTRIBUTES if not hasattr(cycle, a)]
    assert not missing, f"{type(cycle).__qualname__} no longer has {missing}"
    assert isinstance(cycle.message_event, asyncio.Event)
    assert cycle.disconnected is False and cycle.response_started is True
    assert protocol.cycle.response_complete is True
    assert transport.data.startswith(b"HTTP/1.1 204 ")
    protocol.connection_lost(None)


def test_the_list_names_every_method_server_py_overrides() -> None:
    # The list above is what to check against a new uvicorn: it must name every method
    # of uvicorn's class that gateway/http/server.py overrides.
    from gateway.http.server import GuardedHttpToolsProtocol

    overridden = {
        name
        for klass in GuardedHttpToolsProtocol.__mro__
        if klass.__module__ == "gateway.http.server"
        for name in vars(klass)
        if callable(getattr(httptools_impl.HttpToolsProtocol, name, None))
    }
    assert overridden == set(METHODS)
