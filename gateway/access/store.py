"""Keys and projects in the database (tables ``access_keys`` and ``projects``,
migration ``0013_access.sql``). The key itself is never stored: only its hash."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from gateway.access.keys import DEFAULT_PROJECT, hash_key, new_key, parse_scopes
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.store.events import EventRecord
from gateway.store.sql import SQLDatabase, SQLRow

KEY_COLUMNS = (
    "id",
    "prefix",
    "hash",
    "name",
    "project_id",
    "scopes",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
)
DEFAULT_PROJECT_NAME = "Default project"
PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_to_epoch(value: str | None) -> float | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def epoch_to_iso(value: float) -> str:
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key's row, without its hash (`hash` is kept apart: it never leaves the room)."""

    id: str
    prefix: str
    name: str
    project_id: str | None
    scopes: tuple[str, ...]
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "project_id": self.project_id,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
            "active": self.active(),
        }

    def active(self, now: float | None = None) -> bool:
        if self.revoked_at is not None:
            return False
        expires = iso_to_epoch(self.expires_at)
        return expires is None or expires > (now if now is not None else _now())


def _now() -> float:
    return datetime.now(UTC).timestamp()


@dataclass(frozen=True, slots=True)
class StoredKey:
    record: KeyRecord
    hash: str


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: str
    name: str
    created_at: str
    keys: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at, "keys": self.keys}


def _key_from_row(row: SQLRow) -> StoredKey:
    record = KeyRecord(
        id=row["id"],
        prefix=row["prefix"],
        name=row["name"],
        project_id=row["project_id"],
        scopes=tuple(row["scopes"].split()),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )
    return StoredKey(record, row["hash"])


def expiry_from(expires_in_days: float | None) -> str | None:
    if expires_in_days is None:
        return None
    if expires_in_days <= 0:
        raise InvalidRequest("expires_in_days must be above 0.", param="expires_in_days")
    return epoch_to_iso(_now() + timedelta(days=expires_in_days).total_seconds())


@dataclass(slots=True)
class AccessStore:
    db: SQLDatabase

    # --- keys ---------------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        project_id: str | None = None,
        expires_at: str | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key: its record, and the key itself (shown once, never stored)."""
        name = name.strip()
        if not name:
            raise InvalidRequest("A key needs a name.", param="name")
        try:
            scope_list = parse_scopes(list(scopes))
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="scopes") from None
        if project_id is not None and "admin" in scope_list:
            # Reads and edits are fenced to the key's project (gateway.api.project_scope);
            # admin (keys, projects, settings, the audit log) is the whole gateway's.
            raise InvalidRequest(
                "A key bound to a project can have the proxy, read and write scopes, not"
                " admin (keys, projects, settings and the audit log are the gateway's).",
                param="scopes",
            )
        key_id, key, prefix = new_key()
        created = now_iso()
        async with self.db.transaction() as conn:
            if project_id == DEFAULT_PROJECT:
                await conn.execute(
                    "INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    (DEFAULT_PROJECT, DEFAULT_PROJECT_NAME, now_iso()),
                )
            if project_id is not None:
                rows = await conn.execute_fetchall(
                    "SELECT 1 FROM projects WHERE id = ?", (project_id,)
                )
                if not list(rows):
                    raise NotFound(f"No project {project_id!r}.", param="project_id")
            await conn.execute(
                f"INSERT INTO access_keys ({', '.join(KEY_COLUMNS)})"
                f" VALUES ({', '.join('?' for _ in KEY_COLUMNS)})",
                (
                    key_id,
                    prefix,
                    hash_key(key),
                    name,
                    project_id,
                    " ".join(scope_list),
                    created,
                    expires_at,
                    None,
                    None,
                ),
            )
        record = KeyRecord(
            key_id, prefix, name, project_id, scope_list, created, expires_at, None, None
        )
        return record, key

    async def list_keys(self, *, include_revoked: bool = True) -> list[KeyRecord]:
        return [stored.record for stored in await self.stored_keys(include_revoked=include_revoked)]

    async def stored_keys(self, *, include_revoked: bool = False) -> list[StoredKey]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        rows = await self.db.fetch(
            f"SELECT {', '.join(KEY_COLUMNS)} FROM access_keys{where}"
            " ORDER BY created_at DESC, id DESC"
        )
        return [_key_from_row(row) for row in rows]

    async def get_key(self, ref: str) -> KeyRecord:
        """A key by its id or its prefix (``slk_<id>``)."""
        key_id = ref[4:] if ref.startswith("slk_") else ref
        key_id = key_id.split("_", 1)[0]
        rows = await self.db.fetch(
            f"SELECT {', '.join(KEY_COLUMNS)} FROM access_keys WHERE id = ?", (key_id,)
        )
        if not rows:
            raise NotFound(f"No key {ref!r}.", code="key_not_found")
        return _key_from_row(rows[0]).record

    async def revoke_key(self, ref: str) -> KeyRecord:
        record = await self.get_key(ref)
        if record.revoked_at is not None:
            return record
        at = now_iso()
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE access_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, record.id),
            )
        return await self.get_key(record.id)

    async def touch_keys(self, last_used: dict[str, float]) -> None:
        """Write the last-used times gathered in memory (one transaction for all)."""
        if not last_used:
            return
        async with self.db.transaction() as conn:
            await conn.executemany(
                "UPDATE access_keys SET last_used_at = ? WHERE id = ?",
                [(epoch_to_iso(at), key_id) for key_id, at in last_used.items()],
            )

    async def append_events(self, events: list[EventRecord]) -> None:
        """Events in one transaction (the events store appends one at a time)."""
        if not events:
            return
        async with self.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO events (id, type, at, project_id, subject_id, related_ids, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.id,
                        e.type,
                        e.at,
                        e.project_id,
                        e.subject_id,
                        orjson.dumps(e.related_ids).decode(),
                        orjson.dumps(e.payload).decode(),
                    )
                    for e in events
                ],
            )

    # --- projects -----------------------------------------------------------------

    async def list_projects(self) -> list[ProjectRecord]:
        rows = await self.db.fetch(
            "SELECT p.id, p.name, p.created_at,"
            " (SELECT count(*) FROM access_keys k WHERE k.project_id = p.id"
            "  AND k.revoked_at IS NULL) AS keys"
            " FROM projects p ORDER BY p.id = ? DESC, p.created_at, p.id",
            (DEFAULT_PROJECT,),
        )
        projects = [ProjectRecord(r["id"], r["name"], r["created_at"], r["keys"]) for r in rows]
        if not projects or projects[0].id != DEFAULT_PROJECT:
            # Not a row until something names it; there all the same (NULL means it).
            projects.insert(0, ProjectRecord(DEFAULT_PROJECT, DEFAULT_PROJECT_NAME, "", 0))
        return projects

    async def create_project(self, project_id: str, name: str | None = None) -> ProjectRecord:
        if project_id == DEFAULT_PROJECT or not PROJECT_ID.match(project_id):
            raise InvalidRequest(
                "A project id is 1-64 letters, digits, '_', '.' or '-', starting with a"
                f" letter or digit, and not {DEFAULT_PROJECT!r}.",
                param="id",
            )
        async with self.db.transaction() as conn:
            # One statement, so two processes creating it at once cannot both succeed.
            cursor = await conn.execute(
                "INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                (project_id, (name or project_id).strip() or project_id, now_iso()),
            )
            if cursor.rowcount == 0:
                raise Conflict(f"Project {project_id!r} exists.", code="project_exists")
        return await self.get_project(project_id)

    async def get_project(self, project_id: str) -> ProjectRecord:
        for project in await self.list_projects():
            if project.id == project_id:
                return project
        raise NotFound(f"No project {project_id!r}.", code="project_not_found")

    async def rename_project(self, project_id: str, name: str) -> ProjectRecord:
        await self.get_project(project_id)
        if not name.strip():
            raise InvalidRequest("A project needs a name.", param="name")
        async with self.db.transaction() as conn:
            if project_id == DEFAULT_PROJECT:
                await conn.execute(
                    "INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    (DEFAULT_PROJECT, DEFAULT_PROJECT_NAME, now_iso()),
                )
            await conn.execute(
                "UPDATE projects SET name = ? WHERE id = ?", (name.strip(), project_id)
            )
        return await self.get_project(project_id)
