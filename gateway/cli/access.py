"""``spanlab keys`` and ``spanlab projects``: gateway keys and projects.

They work on the database directly, like the other admin commands (no admin key
needed: whoever can open the database file is already past any key). A running
gateway picks the change up within `ACCESS_REFRESH_S` seconds; a revocation through
the API (``DELETE /keys/{id}``) takes effect at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from gateway.access.audit import record_cli_action, sql_database
from gateway.access.policy import ACCESS_REFRESH_S
from gateway.access.store import AccessStore, expiry_from, now_iso
from gateway.cli.common import (
    CONFIG_OPTION,
    DB_OPTION,
    JSON_OPTION,
    load_settings,
    print_json,
    terminal,
)
from gateway.config import Settings
from gateway.errors import SpanlabError
from gateway.quotas.ledger import KEY, PROJECT
from gateway.quotas.limits import LIMIT_NAMES, Limits, limit_value
from gateway.quotas.store import QuotaStore
from gateway.store.stores import Stores, stores_for


def _access(stores: Stores) -> AccessStore:
    database = sql_database(stores.database)
    assert database is not None
    return AccessStore(database)


def _run(config_path: Path | None, db: str | None, work: Any) -> Any:
    settings = load_settings(config_path, db=db)

    async def main() -> Any:
        # A SQLite file is created if new (a key may come first); or a PostgreSQL URL.
        stores = stores_for(settings.database, settings.database_pool_size)
        await stores.open()
        try:
            return await work(_access(stores))
        finally:
            await stores.close()

    try:
        return asyncio.run(main())
    except SpanlabError as exc:
        raise click.ClickException(exc.message) from None


F = Callable[..., Any]


def limit_options(command: F) -> F:
    """``--rpm``, ``--tokens-per-day``, ``--usd-per-day``, ``--usd-per-month`` (0 or
    ``none`` removes a limit; a limit not given is left as it is)."""
    helps = {
        "rpm": "Requests per minute.",
        "tokens_per_day": "Tokens per UTC day.",
        "usd_per_day": "Cost in USD per UTC day (from the price table).",
        "usd_per_month": "Cost in USD per UTC month.",
    }
    for name in reversed(LIMIT_NAMES):
        flag = "--" + name.replace("_", "-")
        command = click.option(flag, name, help=helps[name] + " 0 or none: no limit.")(command)
    return command


def _limit_changes(values: dict[str, str | None]) -> dict[str, int | float | None]:
    return {n: limit_value(n, v) for n, v in values.items() if n in LIMIT_NAMES and v is not None}


async def _apply_limits(
    store: AccessStore, kind: str, subject_id: str, changes: dict[str, int | float | None]
) -> Limits:
    quotas = QuotaStore(store.db)
    limits = await quotas.limits_of(kind, subject_id)
    if changes:
        limits = limits.merged(changes)
        await quotas.set_limits(kind, subject_id, limits)
    return limits


def _limits_text(limits: Limits) -> str:
    parts = [
        f"{value:g} {label}"
        for value, label in (
            (limits.rpm, "rpm"),
            (limits.tokens_per_day, "tokens/day"),
            (limits.usd_per_day, "USD/day"),
            (limits.usd_per_month, "USD/month"),
        )
        if value is not None
    ]
    return ", ".join(parts) or "-"


@click.group()
def keys() -> None:
    """Gateway keys (shown once, stored hashed)."""


@keys.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["proxy", "read", "write", "admin"]),
    help="A scope the key has (repeat for several).",
)
@click.option("--project", "project_id", help="Bind the key to this project (proxy scope only).")
@click.option("--expires-in-days", type=float, help="The key stops working after this.")
@limit_options
@JSON_OPTION
@DB_OPTION
@CONFIG_OPTION
def keys_create(
    name: str,
    scopes: tuple[str, ...],
    project_id: str | None,
    expires_in_days: float | None,
    as_json: bool,
    db: str | None,
    config_path: Path | None,
    **limits: str | None,
) -> None:
    """Create a key; it is printed once and cannot be shown again."""

    async def work(store: AccessStore) -> tuple[Any, str, Limits]:
        changes = _limit_changes(limits)  # checked before anything is written
        record, key = await store.create_key(
            name, scopes, project_id=project_id, expires_at=expiry_from(expires_in_days)
        )
        applied = await _apply_limits(store, KEY, record.id, changes)
        await record_cli_action(store, "POST /keys", record.as_dict(), {})
        return record, key, applied

    record, key, applied = _run(config_path, db, work)
    if as_json:
        print_json({**record.as_dict(), "limits": applied.as_dict(), "key": key})
        return
    click.echo(key)
    click.echo(
        f"Created key {record.prefix} ({name}; {', '.join(record.scopes)}). Copy it now:"
        " it is stored hashed and cannot be shown again.",
        err=True,
    )


@keys.command("update")
@click.argument("key_ref")
@limit_options
@JSON_OPTION
@DB_OPTION
@CONFIG_OPTION
def keys_update(
    key_ref: str, as_json: bool, db: str | None, config_path: Path | None, **limits: str | None
) -> None:
    """Change a key's limits (by id or prefix, slk_<id>)."""

    async def work(store: AccessStore) -> tuple[Any, Limits]:
        changes = _limit_changes(limits)
        if not changes:
            raise click.UsageError("Name a limit: --rpm, --tokens-per-day, --usd-per-day...")
        record = await store.get_key(key_ref)
        applied = await _apply_limits(store, KEY, record.id, changes)
        params = {"key_id": record.id}
        await record_cli_action(store, "PATCH /keys/{key_id}", record.as_dict(), params)
        return record, applied

    record, applied = _run(config_path, db, work)
    if as_json:
        print_json({**record.as_dict(), "limits": applied.as_dict()})
        return
    click.echo(
        f"limits of {record.prefix} ({record.name}): {_limits_text(applied)}; a running"
        f" gateway applies them within {ACCESS_REFRESH_S:g} s"
    )


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@JSON_OPTION
@DB_OPTION
@CONFIG_OPTION
def keys_list(
    include_revoked: bool, as_json: bool, db: str | None, config_path: Path | None
) -> None:
    """The keys (never the keys themselves: their prefixes)."""

    async def work(store: AccessStore) -> Any:
        found = await store.list_keys(include_revoked=include_revoked)
        quotas = QuotaStore(store.db)
        return [(r, await quotas.limits_of(KEY, r.id)) for r in found]

    rows = _run(config_path, db, work)
    if as_json:
        print_json([{**r.as_dict(), "limits": limits.as_dict()} for r, limits in rows])
        return
    table = Table(
        "prefix", "name", "scopes", "project", "created", "expires", "last used", "state", "limits"
    )
    for r, limits in rows:
        state = "revoked" if r.revoked_at else ("active" if r.active() else "expired")
        table.add_row(
            r.prefix,
            r.name,
            ",".join(r.scopes),
            r.project_id or "-",
            r.created_at[:19],
            (r.expires_at or "-")[:19],
            (r.last_used_at or "-")[:19],
            state,
            _limits_text(limits),
        )
    terminal().print(table)


@keys.command("revoke")
@click.argument("key_ref")
@DB_OPTION
@CONFIG_OPTION
def keys_revoke(key_ref: str, db: str | None, config_path: Path | None) -> None:
    """Revoke a key (by id or prefix, slk_<id>)."""

    async def work(store: AccessStore) -> Any:
        record = await store.revoke_key(key_ref)
        await record_cli_action(store, "DELETE /keys/{key_id}", record.as_dict(), {})
        return record

    record = _run(config_path, db, work)
    click.echo(
        f"revoked {record.prefix} ({record.name}); a running gateway refuses it within"
        f" {ACCESS_REFRESH_S:g} s"
    )


@click.group()
def projects() -> None:
    """Projects (a NULL project anywhere means the default project)."""


@projects.command("list")
@JSON_OPTION
@DB_OPTION
@CONFIG_OPTION
def projects_list(as_json: bool, db: str | None, config_path: Path | None) -> None:
    """The projects."""

    async def work(store: AccessStore) -> Any:
        quotas = QuotaStore(store.db)
        return [(r, await quotas.limits_of(PROJECT, r.id)) for r in await store.list_projects()]

    rows = _run(config_path, db, work)
    if as_json:
        print_json([{**r.as_dict(), "limits": limits.as_dict()} for r, limits in rows])
        return
    table = Table("id", "name", "created", "keys", "limits")
    for r, limits in rows:
        table.add_row(r.id, r.name, r.created_at[:19], str(r.keys), _limits_text(limits))
    terminal().print(table)


@projects.command("create")
@click.argument("project_id")
@click.option("--name", help="A display name (default: the id).")
@limit_options
@DB_OPTION
@CONFIG_OPTION
def projects_create(
    project_id: str,
    name: str | None,
    db: str | None,
    config_path: Path | None,
    **limits: str | None,
) -> None:
    """Create a project (with limits over all its keys, if given)."""

    async def work(store: AccessStore) -> Any:
        changes = _limit_changes(limits)
        record = await store.create_project(project_id, name)
        await _apply_limits(store, PROJECT, record.id, changes)
        await record_cli_action(store, "POST /projects", record.as_dict(), {})
        return record

    record = _run(config_path, db, work)
    click.echo(f"created project {record.id} ({record.name})")


@projects.command("update")
@click.argument("project_id")
@click.option("--name", help="A new display name.")
@limit_options
@DB_OPTION
@CONFIG_OPTION
def projects_update(
    project_id: str,
    name: str | None,
    db: str | None,
    config_path: Path | None,
    **limits: str | None,
) -> None:
    """Change a project's name or limits (they hold over all its keys together)."""

    async def work(store: AccessStore) -> Any:
        changes = _limit_changes(limits)
        if not changes and name is None:
            raise click.UsageError("Name a change: --name, --rpm, --tokens-per-day...")
        record = (
            await store.rename_project(project_id, name)
            if name is not None
            else await store.get_project(project_id)
        )
        applied = await _apply_limits(store, PROJECT, record.id, changes)
        params = {"project_id": project_id}
        await record_cli_action(store, "PATCH /projects/{project_id}", record.as_dict(), params)
        return record, applied

    record, applied = _run(config_path, db, work)
    click.echo(f"project {record.id} ({record.name}): limits {_limits_text(applied)}")


@projects.command("rename")
@click.argument("project_id")
@click.argument("name")
@DB_OPTION
@CONFIG_OPTION
def projects_rename(project_id: str, name: str, db: str | None, config_path: Path | None) -> None:
    """Give a project a new display name."""

    async def work(store: AccessStore) -> Any:
        record = await store.rename_project(project_id, name)
        params = {"project_id": project_id}
        await record_cli_action(store, "PATCH /projects/{project_id}", record.as_dict(), params)
        return record

    record = _run(config_path, db, work)
    click.echo(f"project {record.id} is now named {record.name}")


def register(cli: click.Group) -> None:
    cli.add_command(keys)
    cli.add_command(projects)


def active_keys_in(db: str) -> int:
    """Active keys in the database at ``db`` (0 if there is none yet)."""
    if db == ":memory:" or not Path(db).exists():
        return 0
    conn = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT count(*) FROM access_keys WHERE revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (now_iso(),),
        ).fetchone()
    except sqlite3.OperationalError:  # not migrated to 0013 yet: no keys
        return 0
    finally:
        conn.close()
    return int(row[0])


def public_bind_policy(settings: Settings) -> tuple[str | None, str | None]:
    """(refusal, warning) for a gateway bound to a non-loopback address: refused with
    no key configured, unless ``insecure_no_auth``; else a warning if any is due."""
    if settings.admin_key or active_keys_in(settings.db):
        if settings.allowed_hosts.strip():
            return None, None
        return None, (
            "keys are on; the Origin check is on, but any Host header is accepted:"
            " set allowed_hosts to the names this gateway is reached by."
        )
    if settings.insecure_no_auth:
        return None, (
            f"--insecure-no-auth: listening on {settings.host or 'every interface'}, not only"
            " on loopback, with no authentication: every captured trace (prompts, answers,"
            " headers) is readable, and calls can be made with the configured provider keys,"
            " by anyone who can reach this address. Bind to 127.0.0.1 (--host 127.0.0.1),"
            " or configure keys (admin_key, `spanlab keys create`)."
        )
    return (
        f"Refusing to listen on {settings.host or 'every interface'} (not loopback) with no"
        " key configured: anyone reaching it could read every trace and spend the provider"
        " keys. Set SPANLAB_ADMIN_KEY (or admin_key), or create a key with `spanlab keys"
        " create NAME --scope admin`; or bind 127.0.0.1; or pass --insecure-no-auth"
        " to run open anyway."
    ), None
