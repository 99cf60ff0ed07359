"""Playground sessions on SQLite or PostgreSQL: `SqlPlaygroundStore`, one
implementation on any `SQLDatabase` (reads with its ``fetch``, writes in its
``transaction()``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from gateway.store.pagination import Page, SortKey, keyset_page
from gateway.store.playground import (
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    MessageRecord,
    PlaygroundStore,
    SessionRecord,
)
from gateway.store.sql import SQLDatabase, SQLRow
from gateway.store.sqlwhere import Where

SESSION_ORDER = (SortKey("created_at", "created_at", kind=str), SortKey("id", "id", kind=str))
_SELECT_SESSION = (
    f"SELECT {', '.join(SESSION_COLUMNS)}, (SELECT COUNT(*) FROM playground_messages m"
    " WHERE m.session_id = playground_sessions.id) AS message_count FROM playground_sessions"
)
_INSERT_MESSAGE = (
    f"INSERT INTO playground_messages ({', '.join(MESSAGE_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in MESSAGE_COLUMNS)})"
)


def session_from_row(row: SQLRow) -> SessionRecord:
    values = {column: row[column] for column in SESSION_COLUMNS}
    values["config"] = orjson.loads(values["config"]) if values["config"] else {}
    return SessionRecord(**values)


def message_from_row(row: SQLRow) -> MessageRecord:
    return MessageRecord(**{column: row[column] for column in MESSAGE_COLUMNS})


@dataclass(slots=True)
class SqlPlaygroundStore(PlaygroundStore):
    db: SQLDatabase

    async def save_turn(
        self, session: SessionRecord, messages: Sequence[MessageRecord], *, new: bool
    ) -> None:
        async with self.db.transaction() as conn:
            if new:
                await conn.execute(
                    f"INSERT INTO playground_sessions ({', '.join(SESSION_COLUMNS)})"
                    f" VALUES ({', '.join('?' for _ in SESSION_COLUMNS)})",
                    (
                        session.id,
                        session.project_id,
                        session.title,
                        session.system_prompt,
                        orjson.dumps(session.config).decode(),
                        session.created_at,
                        session.updated_at,
                    ),
                )
            else:
                # Also locks the session's row (PostgreSQL) until the commit: two turns
                # of one session at once number their messages one after the other.
                await conn.execute(
                    "UPDATE playground_sessions SET updated_at = ? WHERE id = ?",
                    (session.updated_at, session.id),
                )
            cursor = await conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM playground_messages WHERE session_id = ?",
                (session.id,),
            )
            row = await cursor.fetchone()
            seq = int(row[0]) if row else 0
            for message in messages:
                seq += 1
                message.seq = seq
                await conn.execute(
                    _INSERT_MESSAGE, tuple(getattr(message, column) for column in MESSAGE_COLUMNS)
                )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        rows = await self.db.fetch(
            f"SELECT {', '.join(SESSION_COLUMNS)} FROM playground_sessions WHERE id = ?",
            (session_id,),
        )
        return session_from_row(rows[0]) if rows else None

    async def list_messages(self, session_id: str) -> list[MessageRecord]:
        rows = await self.db.fetch(
            f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM playground_messages"
            " WHERE session_id = ? ORDER BY seq",
            (session_id,),
        )
        return [message_from_row(row) for row in rows]

    async def list_sessions(
        self, *, project: str | None, limit: int, cursor: str | None = None
    ) -> Page:
        clauses = Where()
        clauses.project("project_id", project or None)
        where, params = clauses.sql()

        def convert(row: SQLRow) -> dict[str, object]:
            out = session_from_row(row).as_dict()
            out["message_count"] = row["message_count"]
            return out

        return await keyset_page(
            self.db.fetch,
            _SELECT_SESSION,
            where,
            params,
            SESSION_ORDER,
            limit=limit,
            cursor=cursor,
            convert=convert,
        )

    async def delete_session(self, session_id: str) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM playground_sessions WHERE id = ?", (session_id,)
            )
            return bool(cursor.rowcount > 0)
