"""The audit log: who did what, when, from where.

Audit entries are rows of the ``events`` table (migration 0007), beside the events
other rooms write there already (``experiment.feedback.updated``,
``experiment.score.created``, ``experiment.run.completed``, ``access.denied``...).
`AUDITED` says which management routes leave an entry and what it holds; the API
wraps those routes' handlers once (`gateway.api.audit.audited`), so no service has to
know about the log. An entry is written after a handler succeeded (2xx), once.

What an entry holds: its type, the time, the subject's id (a path parameter, or the
``id`` of what the handler answered), and a payload of the actor (a key's id and name;
with keys off the ``x-spanlab-user`` header, else ``"local"``), the client's address,
the method and path, and the few fields of the answer its rule names. Never a
request body, and never a field a rule does not name: a new key's answer carries the
key, and no rule names it (`tests/test_audit_log.py` has the canary).

Sign-in failures are the ``access.denied`` entries with reason ``bad_sign_in``
(written by `gateway.access.policy`, like every refused request).

Retention: ``audit_retention_days`` (0 keeps them all); `delete_before` is applied by
``spanlab prune``, where spans' retention is applied, and hourly by a running gateway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.types import Scope

from gateway.access.keys import Principal
from gateway.access.store import AccessStore, now_iso
from gateway.store.database import Database, SQLiteDatabase
from gateway.store.dialect import Dialect, dialect_for
from gateway.store.events import EVENT_COLUMNS, EventRecord
from gateway.store.pagination import Page, SortKey, keyset_page
from gateway.store.postgres import PostgresDatabase
from gateway.store.sql import SQLDatabase, SQLRow
from gateway.store.sqlite_events import event_from_row
from gateway.store.sqlwhere import Where

logger = logging.getLogger(__name__)

USER_HEADER = b"x-spanlab-user"
MAX_ACTOR = 200
LOCAL = "local"


@dataclass(frozen=True, slots=True)
class AuditRule:
    """What one route's success writes: the entry's ``type``; the subject, from the
    path parameter ``subject_param`` or else the answer's ``id``; the answer's
    ``fields`` copied into the payload (scalars and lists of scalars only);
    ``detail``, a fixed word saying which change it was (e.g. ``items.added``)."""

    type: str
    subject_param: str | None = None
    fields: tuple[str, ...] = ()
    detail: str | None = None


_EXP = "/experiments/{experiment_id}"
_DS = "/datasets/{dataset_id}"

AUDITED: dict[str, AuditRule] = {
    # Keys and projects (a new key's answer holds the key: only these fields are kept)
    "POST /keys": AuditRule("key.created", fields=("name", "project_id", "scopes", "expires_at")),
    "PATCH /keys/{key_id}": AuditRule(
        "key.updated", subject_param="key_id", fields=("name",), detail="limits"
    ),
    "DELETE /keys/{key_id}": AuditRule("key.revoked", fields=("name",)),
    "POST /projects": AuditRule("project.created", fields=("name",)),
    "PATCH /projects/{project_id}": AuditRule(
        "project.renamed", subject_param="project_id", fields=("name",)
    ),
    # The gateway's effective settings shown (secrets masked; the entry holds none)
    "GET /settings": AuditRule("settings.shown"),
    # The web UI's session (the subject is the key signed in with)
    "POST /session": AuditRule("session.signed_in"),
    "DELETE /session": AuditRule("session.signed_out"),
    # Experiments
    "POST /experiments": AuditRule("experiment.created", fields=("name",)),
    "POST /experiments/import": AuditRule("experiment.imported"),
    f"POST {_EXP}/duplicate": AuditRule("experiment.created", fields=("name",), detail="duplicate"),
    f"PUT {_EXP}": AuditRule("experiment.updated", subject_param="experiment_id"),
    f"PATCH {_EXP}": AuditRule("experiment.updated", subject_param="experiment_id"),
    f"POST {_EXP}/history/{{version}}/restore": AuditRule(
        "experiment.updated", subject_param="experiment_id", detail="restored"
    ),
    f"POST {_EXP}/variants": AuditRule(
        "experiment.updated", subject_param="experiment_id", detail="variant.added"
    ),
    f"PUT {_EXP}/variants/{{variant_id}}": AuditRule(
        "experiment.updated", subject_param="experiment_id", detail="variant.updated"
    ),
    f"PATCH {_EXP}/variants/{{variant_id}}": AuditRule(
        "experiment.updated", subject_param="experiment_id", detail="variant.updated"
    ),
    f"DELETE {_EXP}/variants/{{variant_id}}": AuditRule(
        "experiment.updated", subject_param="experiment_id", detail="variant.deleted"
    ),
    f"POST {_EXP}/inputs": AuditRule(
        "experiment.updated", subject_param="experiment_id", detail="inputs.added"
    ),
    f"DELETE {_EXP}/inputs/{{input_id}}": AuditRule(
        "experiment.updated", subject_param="experiment_id", detail="input.deleted"
    ),
    f"DELETE {_EXP}": AuditRule("experiment.deleted", subject_param="experiment_id"),
    f"POST {_EXP}/run": AuditRule(
        "experiment.run", subject_param="experiment_id", fields=("run_id", "status")
    ),
    # Datasets
    "POST /datasets": AuditRule("dataset.created", fields=("name",)),
    f"PUT {_DS}": AuditRule("dataset.changed", subject_param="dataset_id", detail="dataset"),
    f"PATCH {_DS}": AuditRule("dataset.changed", subject_param="dataset_id", detail="dataset"),
    f"POST {_DS}/items": AuditRule(
        "dataset.changed", subject_param="dataset_id", detail="items.added"
    ),
    f"POST {_DS}/items/from-spans": AuditRule(
        "dataset.changed", subject_param="dataset_id", detail="items.added"
    ),
    f"PUT {_DS}/items/{{item_id}}": AuditRule(
        "dataset.changed", subject_param="dataset_id", detail="item.updated"
    ),
    f"PATCH {_DS}/items/{{item_id}}": AuditRule(
        "dataset.changed", subject_param="dataset_id", detail="item.updated"
    ),
    f"DELETE {_DS}/items/{{item_id}}": AuditRule(
        "dataset.changed", subject_param="dataset_id", detail="item.deleted"
    ),
    f"POST {_DS}/import": AuditRule(
        "dataset.changed", subject_param="dataset_id", detail="imported"
    ),
    f"DELETE {_DS}": AuditRule("dataset.deleted", subject_param="dataset_id"),
}


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    name: str | None
    project_id: str | None


def actor_of(scope: Scope, principal: Principal | None) -> Actor:
    """Who acts: the request's key (``principal``), else the ``x-spanlab-user``
    header (as the evaluation routes say who), else "local"."""
    if principal is not None:
        return Actor(principal.key_id, principal.name, principal.project_id)
    for name, value in scope.get("headers", ()):
        if name == USER_HEADER:
            user = value.decode("latin-1").strip()[:MAX_ACTOR]
            if user:
                return Actor(user, None, None)
    return Actor(LOCAL, None, None)


def address_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


def _safe(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, list) and all(
        v is None or isinstance(v, bool | int | float | str) for v in value
    )


def audit_entry(
    rule: AuditRule,
    scope: Scope,
    actor: Actor,
    path_params: dict[str, Any],
    answer: Any,
) -> EventRecord:
    """The entry for a route's success (``answer``: its decoded JSON, or None)."""
    body = answer if isinstance(answer, dict) else {}
    if rule.subject_param is not None:
        subject = path_params.get(rule.subject_param)
    elif rule.type.startswith("session."):
        subject = actor.id if actor.id != LOCAL else None
    else:
        subject = body.get("id")
    payload: dict[str, Any] = {
        "actor": actor.id,
        "actor_name": actor.name,
        "address": address_of(scope),
        "method": scope.get("method"),
        "path": scope.get("path"),
    }
    if rule.detail is not None:
        payload["detail"] = rule.detail
    for name in rule.fields:
        if name in body and _safe(body[name]):
            payload[name] = body[name]
    return EventRecord(
        type=rule.type,
        at=now_iso(),
        project_id=actor.project_id,
        subject_id=str(subject) if subject is not None else None,
        payload=payload,
    )


CLI_ACTOR = Actor("cli", "command line", None)


async def record_cli_action(
    store: AccessStore, route: str, answer: dict[str, Any], path_params: dict[str, Any]
) -> None:
    """The entry of an action done with the CLI on the database (``spanlab keys
    create``...), as the route it stands for (``"POST /keys"``) would write it, by the
    actor ``cli`` (whoever can open the database file)."""
    scope: Scope = {"client": ("cli", 0), "method": None, "path": None}
    await store.append_events([audit_entry(AUDITED[route], scope, CLI_ACTOR, path_params, answer)])


@dataclass(frozen=True, slots=True)
class AuditFilter:
    type: str | None = None  # exact; ending in "." or "*": a prefix ("experiment.")
    subject_id: str | None = None
    actor: str | None = None
    since: str | None = None  # ISO 8601 UTC, inclusive
    until: str | None = None  # exclusive

    def where(self, dialect: Dialect) -> tuple[str, list[Any]]:
        where = Where()
        if self.type is not None:
            if self.type.endswith(("*", ".")):
                prefix = self.type.rstrip("*")
                # LIKE's own wildcards in a type are taken literally
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                where.add(f"type {dialect.like_nocase} ? ESCAPE '\\'", escaped + "%")
            else:
                where.equals("type", self.type)
        where.equals("subject_id", self.subject_id)
        if self.actor is not None:
            where.add(f"{dialect.json_text('payload', 'actor')} = ?", self.actor)
        if self.since is not None:
            where.add("at >= ?", self.since)
        if self.until is not None:
            where.add("at < ?", self.until)
        return where.sql()


def sql_database(database: Database) -> SQLDatabase | None:
    """``database`` as the keys, projects and the audit log use it: SQLite's or
    PostgreSQL's (None for another, such as a test's stand-in: then only the admin key
    works, and there is no audit log)."""
    if isinstance(database, SQLiteDatabase | PostgresDatabase):
        return database
    return None


def iso_from_us(value: int) -> str:
    """A time in microseconds as the events' ISO text (before 1970: 1970, which no
    entry precedes; past year 9999: its end)."""
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=max(value, 0))
    except OverflowError:
        return "9999-12-31T23:59:59.999999Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entry(row: SQLRow) -> dict[str, Any]:
    return event_from_row(row).as_dict()


class AuditLog:
    """Reading (and pruning) the log, on either dialect's database."""

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db

    async def list(
        self, filters: AuditFilter, *, limit: int = 100, cursor: str | None = None
    ) -> Page:
        where, params = filters.where(dialect_for(self.db.dialect))
        return await keyset_page(
            self.db.fetch,
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events",
            where,
            params,
            (SortKey("at", "at", kind=str), SortKey("id", "id", kind=str)),
            limit=limit,
            cursor=cursor,
            convert=_entry,
        )

    async def delete_before(self, cutoff: str) -> int:
        """Delete the entries older than ``cutoff`` (ISO 8601 UTC); how many went."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM events WHERE at < ?", (cutoff,))
            return int(cursor.rowcount)


def retention_cutoff(days: float, now: datetime | None = None) -> str | None:
    """The time before which entries go, for ``audit_retention_days`` (0: none go)."""
    if days <= 0:
        return None
    moment = (now or datetime.now(UTC)) - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
