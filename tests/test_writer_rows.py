"""The rows the span writer stores, pinned: a representative set of spans
(tests/writer_rows_cases.py) against the rows `main` stored for them before the
writer's fast paths (tests/writer_rows.json), both as the rows are built and as the
writer process stores them in SQLite. A change to what is stored shows here; one meant
on purpose regenerates the file: ``SPANLAB_WRITE_ROWS=1 pytest tests/test_writer_rows.py``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.capture.pricing import PriceTable
from gateway.capture.span_table import SPAN_COLUMNS, span_rows
from gateway.metrics import Metrics
from gateway.store.database import SQLiteDatabase
from gateway.store.sqlite import SQLiteSpanStore
from gateway.writer.process import decode_spans, encode_spans, record_or_outline
from gateway.writer.span_writer import SpanWriter
from tests.writer_rows_cases import CASES

GOLDEN = Path(__file__).with_name("writer_rows.json")


def _comparable(value: Any) -> Any:
    """A stored value as the golden file keeps it (JSON has no NaN or infinities)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _rows_as_json(rows: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    return {
        name: {c: _comparable(v) for c, v in zip(SPAN_COLUMNS, row, strict=True)}
        for name, row in zip(CASES, rows, strict=True)
    }


def built_rows() -> dict[str, dict[str, Any]]:
    """The rows as the writer process builds them: across the pipe's encoding, then
    `record_or_outline`."""
    prices = PriceTable()
    frame = encode_spans(1, [make() for make in CASES.values()])
    _, spans = decode_spans(frame[4], frame[5:])
    return _rows_as_json(span_rows([record_or_outline(span, prices) for span in spans]))


def golden() -> dict[str, dict[str, Any]]:
    if os.environ.get("SPANLAB_WRITE_ROWS"):
        GOLDEN.write_text(json.dumps(built_rows(), indent=1, ensure_ascii=False) + "\n")
    loaded: dict[str, dict[str, Any]] = json.loads(GOLDEN.read_text())
    return loaded


@pytest.mark.parametrize("name", list(CASES))
def test_each_row_is_built_as_main_built_it(name: str) -> None:
    assert built_rows()[name] == golden()[name]


async def test_the_writer_process_stores_the_same_rows(tmp_path: Path) -> None:
    store = SQLiteSpanStore(SQLiteDatabase(str(tmp_path / "rows.db")))
    await store.db.open()
    try:
        writer = SpanWriter(
            store, PriceTable(), Metrics(), process_db=store.db.file_path, batch_size=7
        )
        writer.start()
        spans = [make() for make in CASES.values()]
        for span in spans:
            writer.submit(span)
        await asyncio.wait_for(writer.close(), 30)
    finally:
        await store.db.close()
    with sqlite3.connect(tmp_path / "rows.db") as conn:
        rows = [
            conn.execute(
                f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE span_id = ?",
                (span.context.span_id,),
            ).fetchone()
            for span in spans
        ]
    stored = _rows_as_json(rows)
    expected = golden()
    for name in CASES:
        assert stored[name] == expected[name], name
