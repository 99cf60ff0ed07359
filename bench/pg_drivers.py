"""Which PostgreSQL driver for the span writer: asyncpg or psycopg 3, measured.

The writer's job in PostgreSQL terms: store batches of finished spans (the rows the
SQLite writer stores, `gateway.capture.span_table.span_rows` of real chat spans: ~2 KB
of JSON each) as fast as possible, one transaction per batch. Each driver is measured
the ways it offers for that, at batch sizes 1, 100 and 1,000:

* asyncpg ``executemany`` (a prepared INSERT, its rows pipelined) and
  ``copy_records_to_table`` (COPY, binary format);
* psycopg 3 (async, with its C extension ``psycopg[binary]``) ``executemany`` (pipeline
  mode) and ``cursor.copy`` (COPY, text format, row by row ``write_row``).

The server is a throwaway cluster (`bench.postgres.PostgresServer`) with
``synchronous_commit = off`` — the same promise as the SQLite store's ``synchronous =
NORMAL`` in WAL mode: a committed batch survives the gateway's crash, the last moments
may not survive the machine's — so the figures measure the drivers and the server's
work, not the disk's flush. The table is the spans table without its indexes but the
primary key (the choice between drivers does not depend on them).

Run: ``python -m bench.pg_drivers [--count 20000]``. The figures and the choice are in
``docs/postgres.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.postgres import PostgresServer
from bench.writer_bench import make_span
from gateway.capture.pricing import PriceTable
from gateway.capture.span import finalize, new_span_id, to_record
from gateway.capture.span_table import SPAN_COLUMNS, span_rows

INTEGER = {"stream", "http_status", "prompt_tokens", "completion_tokens", "total_tokens",
           "cached_tokens"}  # fmt: skip
BIGINT = {"start_us", "end_us"}
REAL = {"duration_ms", "ttft_ms", "cost_usd"}


def column_type(name: str) -> str:
    if name in INTEGER:
        return "integer"
    if name in BIGINT:
        return "bigint"
    if name in REAL:
        return "double precision"
    return "text"


DDL = (
    "DROP TABLE IF EXISTS spans; CREATE TABLE spans ("
    + ", ".join(
        f"{c} {column_type(c)}" + (" PRIMARY KEY" if c == "span_id" else "") for c in SPAN_COLUMNS
    )
    + ")"
)
INSERT_DOLLAR = (
    f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)})"
    f" VALUES ({', '.join(f'${i + 1}' for i in range(len(SPAN_COLUMNS)))})"
)
INSERT_PERCENT = (
    f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)})"
    f" VALUES ({', '.join('%s' for _ in SPAN_COLUMNS)})"
)


def rows(count: int) -> list[tuple[Any, ...]]:
    """``count`` rows as the writer would store them, each with its own span id."""
    prices = PriceTable()
    template = make_span()
    finalize(template, prices)
    record = to_record(template)
    out = []
    for _ in range(count):
        record = {**record, "span_id": new_span_id()}
        out.append(record)
    return span_rows(out)


Batch = list[tuple[Any, ...]]


async def asyncpg_ways(dsn: str) -> dict[str, Callable[[Batch], Awaitable[None]]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)

    async def executemany(batch: Batch) -> None:
        async with conn.transaction():
            await conn.executemany(INSERT_DOLLAR, batch)

    async def copy(batch: Batch) -> None:
        async with conn.transaction():
            await conn.copy_records_to_table("spans", records=batch, columns=SPAN_COLUMNS)

    return {"asyncpg executemany": executemany, "asyncpg COPY (binary)": copy}


async def psycopg_ways(dsn: str) -> dict[str, Callable[[Batch], Awaitable[None]]]:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(dsn)
    copy_sql = f"COPY spans ({', '.join(SPAN_COLUMNS)}) FROM STDIN"

    async def executemany(batch: Batch) -> None:
        async with conn.transaction(), conn.cursor() as cur:
            await cur.executemany(INSERT_PERCENT, batch)

    async def copy(batch: Batch) -> None:
        async with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as writer:
            for row in batch:
                await writer.write_row(row)

    return {"psycopg executemany": executemany, "psycopg COPY (text)": copy}


async def measure(
    dsn: str, name: str, way: Callable[[Batch], Awaitable[None]], batch_size: int, count: int
) -> float:
    import asyncpg

    admin = await asyncpg.connect(dsn)
    await admin.execute(DDL)
    await admin.close()
    data = rows(count)
    batches = [data[i : i + batch_size] for i in range(0, count, batch_size)]
    await way(rows(1))  # warm: prepared statements, catalog caches
    started = time.perf_counter()
    for batch in batches:
        await way(batch)
    elapsed = time.perf_counter() - started
    return count / elapsed


async def main(count: int, rounds: int) -> None:
    sizes = {1: max(1000, count // 10), 100: count, 1000: count}
    with PostgresServer({"synchronous_commit": "off"}) as pg:
        ways = {**await asyncpg_ways(pg.dsn), **await psycopg_ways(pg.dsn)}
        results: dict[str, dict[int, list[float]]] = {n: {} for n in ways}
        for _ in range(rounds):  # interleaved rounds, so drift hits every way alike
            for batch_size, n in sizes.items():
                for name, way in ways.items():
                    rate = await measure(pg.dsn, name, way, batch_size, n)
                    results[name].setdefault(batch_size, []).append(rate)
        print(f"spans/s (median of {rounds} rounds; rows of {len(SPAN_COLUMNS)} columns)")
        print(f"{'way':<26}" + "".join(f"{'batch ' + str(b):>14}" for b in sizes))
        for name, by_size in results.items():
            medians = [statistics.median(by_size[b]) for b in sizes]
            print(f"{name:<26}" + "".join(f"{m:>14.0f}" for m in medians))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20000, help="spans per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.rounds))
