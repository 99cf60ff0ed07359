"""The events log on SQLite or PostgreSQL: `SqlEventStore` (table ``events``, migration
0007), one implementation on any `SQLDatabase`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.store.events import EVENT_COLUMNS, EventRecord, EventStore
from gateway.store.sql import SQLDatabase, SQLRow
from gateway.store.sqlwhere import Where


def event_from_row(row: SQLRow) -> EventRecord:
    values: dict[str, Any] = {column: row[column] for column in EVENT_COLUMNS}
    values["related_ids"] = orjson.loads(values["related_ids"]) if values["related_ids"] else []
    values["payload"] = orjson.loads(values["payload"]) if values["payload"] else {}
    return EventRecord(**values)


@dataclass(slots=True)
class SqlEventStore(EventStore):
    db: SQLDatabase

    async def append(self, event: EventRecord) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})"
                f" VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})",
                (
                    event.id,
                    event.type,
                    event.at,
                    event.project_id,
                    event.subject_id,
                    orjson.dumps(event.related_ids).decode(),
                    orjson.dumps(event.payload, option=orjson.OPT_NON_STR_KEYS).decode(),
                ),
            )

    async def list_events(
        self, *, type: str | None = None, subject_id: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        where = Where()
        where.equals("type", type)
        where.equals("subject_id", subject_id)
        sql, params = where.sql()
        rows = await self.db.fetch(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE {sql}"
            " ORDER BY at DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return [event_from_row(row) for row in rows]
