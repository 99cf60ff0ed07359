"""What `spanlab serve` holds per call in flight: the garbage collector's schedule
(gateway/cli/server.py `tune_gc`) and the size of a rewritten request body
(gateway/http/upstream.py `fitted`). Issue 16: the tail under many calls in flight,
and the memory of 1,000 streams."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc

import orjson

from gateway.http.upstream import fitted

# Run in a process of its own: tune_gc freezes everything alive, which the test
# process must not have done to it.
GC_PROBE = textwrap.dedent(
    """
    import gc, weakref
    from gateway.cli.server import tune_gc

    tune_gc()
    young = []
    gc.callbacks.append(lambda phase, info: phase == "start" and young.append(info))

    # The state of ~256 calls in flight: 50,000 live container objects. A young
    # collection would walk all of them and free nothing.
    in_flight = [{"call": i} for i in range(50_000)]
    print("collections while calls are in flight:", len(young))

    # Cyclic garbage (a failed call's traceback holds its frames) still goes, at a
    # young collection that comes without being asked for.
    class Node:
        pass

    node = Node()
    node.cycle = node
    gone = weakref.ref(node)
    del node
    more = [[i] for i in range(150_000)]
    print("cycle collected:", gone() is None, "after", len(young), "collections")
    """
)


def test_serve_collector_skips_the_calls_in_flight_and_still_frees_cycles() -> None:
    out = subprocess.run(
        [sys.executable, "-c", GC_PROBE], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "collections while calls are in flight: 0", out
    assert lines[1].startswith("cycle collected: True after "), out
    assert not lines[1].endswith(" 0 collections"), out


def _traced(make: object) -> tuple[bytes, int]:
    """What ``make()`` returns, and the bytes its allocations still hold."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        value = make()  # type: ignore[operator]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert isinstance(value, bytes)
    return value, held


def test_fitted_body_holds_its_own_length_only() -> None:
    payload = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    long_payload = {"messages": [{"role": "user", "content": "x" * 100_000}]}
    for value in (payload, long_payload):
        encoded, held_by_orjson = _traced(lambda v=value: orjson.dumps(v))
        body, held = _traced(lambda e=encoded: fitted(e))
        assert body == encoded
        # The premise: orjson's own result keeps a buffer well past its length.
        assert held_by_orjson > 2 * len(encoded) + 1024
        assert held < len(encoded) + 128
