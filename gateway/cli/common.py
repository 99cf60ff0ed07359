"""What every command shares: the --config and --db options, loading settings, the
store for the read commands, and how numbers and JSON are printed."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.table import Table

from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.store.postgres import is_postgres_url
from gateway.store.stores import Stores, stores_for

T = TypeVar("T")

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SPANLAB_CONFIG",
    help="TOML configuration file (see config.example.toml).",
)
DB_OPTION = click.option(
    "--db", help="SQLite database file (default: spanlab.db), or a postgresql:// URL."
)
URL_OPTION = click.option(
    "--url",
    envvar="SPANLAB_URL",
    help="A running gateway (e.g. http://127.0.0.1:8080). Without it the command runs"
    " the gateway in process on --db/--config.",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def api_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a command that talks to the management API: --json, --db,
    --config and --url (a running gateway, else one in process)."""
    for option in (JSON_OPTION, DB_OPTION, CONFIG_OPTION, URL_OPTION):
        command = option(command)
    return command


def load_settings(config_path: Path | None, **overrides: Any) -> Settings:
    try:
        return Settings.load(config_path, overrides=overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def run_with_store(settings: Settings, work: Callable[[Stores], Awaitable[T]]) -> T:
    database = settings.database
    if not is_postgres_url(database) and database != ":memory:" and not Path(database).exists():
        raise click.ClickException(
            f"No database at {database}. Start `spanlab serve` (or pass --db) first."
        )

    async def main() -> T:
        stores = stores_for(database, settings.database_pool_size)
        await stores.open()
        try:
            return await work(stores)
        finally:
            await stores.close()

    return asyncio.run(main())


def terminal() -> Console:
    """A console as wide as the terminal, or wide enough when output is piped."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def format_cost(usd: float | None) -> str:
    if usd is None:
        return "-"
    return f"{usd:.4f}" if usd >= 0.0001 or usd == 0 else f"{usd:.1e}"


def print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def list_table(
    items: Sequence[Any], as_json: bool, empty: str, columns: Sequence[str], wide: str
) -> Table | None:
    """The shape every list command shares: with ``--json`` the items printed as JSON,
    with none the ``empty`` message, and both times None; else a table to fill, with
    ``columns`` kept whole and the ``wide`` one last, cut to the terminal's width."""
    if as_json:
        print_json(list(items))
        return None
    if not items:
        click.echo(empty)
        return None
    table = Table(box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True)
    table.add_column(wide, overflow="ellipsis", ratio=1)
    return table


def short_time(iso: str | None) -> str:
    """``MM-DD HH:MM:SS`` of an ISO 8601 time, for a table."""
    return (iso or "")[5:19].replace("T", " ")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` -> seconds."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 30d, 12h, 90m, 2w")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
