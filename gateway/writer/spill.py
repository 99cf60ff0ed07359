"""The spill file: spans a shutdown could not wait for, saved beside the database.

When the span writer's drain outlives ``shutdown_drain_s`` (a hung writer process, a
locked or full database) or a second SIGTERM/SIGINT cuts it short, the spans it has
not stored are written here (`write_spill`) as the rows the writer would have stored:
finalized and redacted, so no secret reaches the disk; only the file's owner may read
it. The next start stores them before anything else (`replay_spill`) and removes the
file. The format: a JSON header line naming the columns, then one JSON array a row.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from gateway.capture.pricing import PriceTable
from gateway.capture.span import Span
from gateway.capture.span_table import SPAN_COLUMNS, outline_row
from gateway.store.spans import SpanStore
from gateway.writer.process import record_or_outline

logger = logging.getLogger("gateway.writer.span_writer")

SPILL_SUFFIX = ".spill.jsonl"
SPILL_FORMAT = 1
REPLAY_CHUNK = 500


PG_SPILL_FILE = "spanlab" + SPILL_SUFFIX


def spill_path_for(db_path: str | None, dialect: str = "sqlite") -> str | None:
    """Where spans not stored at a shutdown go: beside the database file, if any; for a
    server database (PostgreSQL) in the working directory (the ``spill_file`` setting
    says elsewhere); none for an in-memory database."""
    if db_path is not None:
        return db_path + SPILL_SUFFIX
    return PG_SPILL_FILE if dialect == "postgresql" else None


def _spill_line(record: Mapping[str, Any]) -> bytes:
    row = [record.get(c) for c in SPAN_COLUMNS]
    try:
        return orjson.dumps(row) + b"\n"
    except TypeError:  # a value JSON cannot take (an integer past 64 bits): the outline
        outline = outline_row(record, "the call could not be saved whole at shutdown")
        return orjson.dumps(list(outline)) + b"\n"


def write_spill(path: str, spans: Iterable[Span], prices: PriceTable) -> int:
    """Append ``spans`` to the spill file at ``path`` as the rows the writer would store:
    finalized and redacted (`record_or_outline`), so no secret reaches the disk. Written
    whole to a temporary file and renamed over the old one, so a crash leaves either."""
    records = [record_or_outline(span, prices) for span in spans]
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        if target.exists():  # an earlier spill, not replayed yet
            out.write(target.read_bytes())
        else:
            out.write(orjson.dumps({"spanlab_spill": SPILL_FORMAT, "columns": SPAN_COLUMNS}))
            out.write(b"\n")
        for record in records:
            out.write(_spill_line(record))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
    return len(records)


def _spill_records(path: str) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as lines:
        header = orjson.loads(lines.readline())
        if not isinstance(header, dict) or header.get("spanlab_spill") != SPILL_FORMAT:
            raise ValueError(f"{path} is not a spill file this version reads")
        columns = header["columns"]
        for number, line in enumerate(lines, start=2):
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                row = None
            if not isinstance(row, list) or len(row) != len(columns):
                logger.error("%s line %d is not a whole row; skipped", path, number)
                continue
            yield dict(zip(columns, row, strict=True))


async def replay_spill(store: SpanStore, path: str | None) -> int:
    """Store the spans a shutdown saved at ``path`` and remove the file. A span already
    stored (a replay cut short, a batch the writer stored after all) is not stored
    twice; on failure the file stays, for the next start. Returns how many were read."""
    if path is None or not await asyncio.to_thread(os.path.exists, path):
        return 0
    count = 0
    try:
        chunk: list[dict[str, Any]] = []
        for record in _spill_records(path):
            chunk.append(record)
            if len(chunk) >= REPLAY_CHUNK:
                await store.insert_spans(chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            await store.insert_spans(chunk)
            count += len(chunk)
    except Exception:
        logger.exception("storing the spans saved in %s failed; the file is kept", path)
        return count
    os.remove(path)
    logger.warning("stored %d spans saved at the last shutdown (%s)", count, path)
    return count
