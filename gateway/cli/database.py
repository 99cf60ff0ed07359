"""``spanlab copy-db SOURCE TARGET``: a whole database copied to another, a SQLite file
to PostgreSQL or back (`gateway.store.transfer`), with what was copied and checked
printed per table."""

from __future__ import annotations

import asyncio

import click
from rich.table import Table

from gateway.cli.common import print_json, terminal
from gateway.errors import SpanlabError
from gateway.store.postgres import is_postgres_url, redacted_url
from gateway.store.stores import stores_for
from gateway.store.transfer import TableCopy, copy_database


def _named(database: str) -> str:
    return redacted_url(database) if is_postgres_url(database) else database


@click.command("copy-db")
@click.argument("source")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def copy_db(source: str, target: str, as_json: bool) -> None:
    """Copy every span, experiment, dataset, score, key and event of SOURCE into TARGET
    (a SQLite file or a postgresql:// URL each), then check counts and a sample of rows.
    Run it with the gateway stopped; it can be run again after an interruption."""
    if source == target:
        raise click.ClickException("SOURCE and TARGET are the same database")

    def shown(result: TableCopy) -> None:
        if not as_json:
            click.echo(f"  {result.table}: {result.read} rows", err=True)

    async def main() -> list[TableCopy]:
        from_db, to_db = stores_for(source).database, stores_for(target).database
        await from_db.open()  # brings it to this version's schema first
        try:
            await to_db.open()
            try:
                return await copy_database(from_db, to_db, shown)
            finally:
                await to_db.close()
        finally:
            await from_db.close()

    click.echo(f"copying {_named(source)} -> {_named(target)}", err=True)
    try:
        results = asyncio.run(main())
    except SpanlabError as exc:
        raise click.ClickException(exc.message) from None
    if as_json:
        print_json(
            [
                {
                    "table": r.table,
                    "read": r.read,
                    "in_target": r.in_target,
                    "sampled": r.sampled,
                    "mismatches": r.mismatches,
                }
                for r in results
            ]
        )
    else:
        table = Table(box=None, pad_edge=False)
        for column in ("table", "rows read", "in target", "rows checked", "differences"):
            table.add_column(column, no_wrap=True)
        for r in results:
            table.add_row(
                r.table, str(r.read), str(r.in_target), str(r.sampled), str(len(r.mismatches))
            )
        terminal().print(table)
    bad = [r for r in results if not r.complete]
    for r in bad:
        for line in r.mismatches[:5]:
            click.echo(f"difference: {line}", err=True)
    if bad:
        raise click.ClickException(
            f"{len(bad)} table(s) differ after the copy: {', '.join(r.table for r in bad)}"
        )
    click.echo(f"copied {sum(r.read for r in results)} rows in {len(results)} tables", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(copy_db)
