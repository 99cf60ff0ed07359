"""No module of the gateway grows past `MAX_LINES`: past that a module holds more than
one concern, and the next feature should find the seam and split it (as the proxy's
operations and sinks were split from the pipeline)."""

from __future__ import annotations

from pathlib import Path

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"
MAX_LINES = 800


def test_no_module_is_longer_than_the_limit() -> None:
    sizes = {
        path.relative_to(GATEWAY).as_posix(): len(path.read_text().splitlines())
        for path in sorted(GATEWAY.rglob("*.py"))
    }
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert not too_long, f"modules past {MAX_LINES} lines (split them at a real seam): {too_long}"
