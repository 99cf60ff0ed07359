"""Shared by the span writer's fault tests: spans, a full disk, a hung writer process."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from gateway.capture.redaction import credential_values, redact_headers
from gateway.capture.span import Span, SpanContext, new_span_id, new_trace_id, now_us
from gateway.writer.span_writer import SpanWriter

# Secrets a span carries (a client key in its headers, a key field in its body): they
# must reach neither the database nor a spill file.
HEADER_SECRET = "sk-canary-header-5a1f0c93e7d24b68"
BODY_SECRET = "body-canary-7c2e91d04b3f5a86"

# A writer process started while this is set gets a database that cannot grow past the
# given number of pages (SQLITE_FULL, "database or disk is full", as on a full disk):
# `sqlite3.connect` is wrapped by a sitecustomize the child imports at start.
MAX_PAGES_ENV = "FAULT_SQLITE_MAX_PAGE_COUNT"
_SITECUSTOMIZE = f"""
import os
import sqlite3

_limit = os.environ.get({MAX_PAGES_ENV!r})
if _limit:
    _connect = sqlite3.connect

    def connect(*args, **kwargs):
        conn = _connect(*args, **kwargs)
        conn.execute("PRAGMA max_page_count = %d" % int(_limit))
        return conn

    sqlite3.connect = connect
"""


def make_span(i: int, *, body_bytes: int = 0, secrets: bool = False) -> Span:
    filler = "x" * body_bytes
    span = Span(
        context=SpanContext(trace_id=new_trace_id(), span_id=new_span_id()),
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        start_us=now_us() + i,
        provider="openai",
        request_model="gpt-4o-mini",
        request={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]},
        response_body=(
            b'{"model": "gpt-4o-mini", "choices": [{"message": {"content": "a%d%s"},'
            b' "finish_reason": "stop"}], "usage": {"prompt_tokens": 10,'
            b' "completion_tokens": 5, "total_tokens": 15}}' % (i, filler.encode())
        ),
        http_status=200,
    )
    if secrets:
        headers = [("authorization", f"Bearer {HEADER_SECRET}")]
        span.request_headers = redact_headers(headers)
        span.secrets = credential_values(headers)
        span.request = {"model": "gpt-4o-mini", "api_key": BODY_SECRET, "prompt": f"q{i}"}
    span.end_us = span.start_us + 1000
    return span


def fill(db: Path, megabytes: int) -> int:
    """Take ``megabytes`` of the database file with a filler table; its page count."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS filler (v BLOB)")
        for _ in range(megabytes):
            conn.execute("INSERT INTO filler VALUES (zeroblob(1024 * 1024))")
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


def make_room(db: Path) -> None:
    """Free the filler's pages: the database can take rows again without growing."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("DELETE FROM filler")
    finally:
        conn.close()


def disk_full_for_writer_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, max_pages: int
) -> None:
    """Writer processes started from now on cannot grow the database past ``max_pages``."""
    site = tmp_path / "fault-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(site), path) if p))
    monkeypatch.setenv(MAX_PAGES_ENV, str(max_pages))


async def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110  (state in another process)
            await asyncio.sleep(0.01)


async def writer_process_pid(writer: SpanWriter) -> int:
    await wait_for(lambda: writer._child is not None)
    assert writer._child is not None
    return writer._child.proc.pid


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The process stopped (SIGSTOP: a writer that hangs) until the block ends."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def folder_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())
