"""``spanlab audit``: the audit log (``GET /audit``), newest first.

Like the other API commands it reads the database through a gateway in process, or a
running one with ``--url`` (and a key with the admin scope in ``SPANLAB_KEY``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import httpx

from gateway.access.audit import iso_from_us
from gateway.cli.client import call, run_async
from gateway.cli.common import (
    api_options,
    list_table,
    load_settings,
    parse_duration,
    short_time,
    terminal,
)

PAGE = 1000  # the most GET /audit answers at once


def _since(text: str) -> str:
    """A duration back from now (``24h``, ``7d``), else a time as given (ISO 8601)."""
    try:
        seconds = parse_duration(text)
    except click.BadParameter:
        return text
    return iso_from_us(int((time.time() - seconds) * 1_000_000))


def _what(entry: dict[str, Any]) -> str:
    payload = entry.get("payload") or {}
    skip = {"actor", "actor_name", "address", "method", "path"}
    parts = [f"{k}={v}" for k, v in payload.items() if k not in skip and v is not None]
    return " ".join(parts)


@click.command("audit")
@click.option("--type", "type_", help="An entry type, or a prefix ending in '.' or '*'.")
@click.option("--subject", help="Only entries about this id.")
@click.option("--actor", help="Only entries by this key id (or user, with keys off).")
@click.option("--since", help="A duration back from now (24h, 7d) or an ISO 8601 time.")
@click.option("--until", help="An ISO 8601 time.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1_000_000))
@api_options
def audit(
    type_: str | None,
    subject: str | None,
    actor: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Who did what, when, from where (the audit log), newest first."""
    params = {
        k: v
        for k, v in {
            "type": type_,
            "subject": subject,
            "actor": actor,
            "since": _since(since) if since else None,
            "until": until,
        }.items()
        if v
    }
    settings = load_settings(config_path, db=db)

    async def work(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(entries) < limit:
            query = {**params, "limit": str(min(PAGE, limit - len(entries)))}
            if cursor:
                query["cursor"] = cursor
            page = await call(client, "GET", "/audit", params=query)
            entries += page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return entries

    entries = run_async(settings, url, work)
    columns = ("when", "type", "actor", "from", "subject")
    table = list_table(entries, as_json, "No audit entries.", columns, "what")
    if table is None:
        return
    for entry in entries:
        payload = entry.get("payload") or {}
        table.add_row(
            short_time(entry.get("at")),
            entry["type"],
            str(payload.get("actor_name") or payload.get("actor") or "-"),
            str(payload.get("address") or "-"),
            entry.get("subject_id") or "-",
            _what(entry),
        )
    terminal().print(table)


def register(cli: click.Group) -> None:
    cli.add_command(audit)
