"""The ``spanlab`` command line.

Commands that read captured data open the SQLite database directly (as ``llm``
does), so they work whether or not a server is running.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from pathlib import Path

import click
import orjson
from rich.table import Table

from gateway import __version__
from gateway.access.audit import AuditLog, record_cli_action, retention_cutoff, sql_database
from gateway.access.store import AccessStore
from gateway.api.settings import shown_settings
from gateway.capture.redaction import redact_url
from gateway.cli import (
    access,
    audit,
    database,
    datasets,
    experiments,
    matrix,
    playground,
    scores,
)
from gateway.cli.common import (
    CONFIG_OPTION,
    DB_OPTION,
    format_cost,
    load_settings,
    parse_duration,
    print_json,
    run_with_store,
    short_time,
    terminal,
)
from gateway.config import example_toml
from gateway.http.guard import is_loopback
from gateway.store.postgres import is_postgres_url, redacted_url
from gateway.store.spans import SpanFilter
from gateway.store.stores import Stores, stores_for


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spanlab")
def cli() -> None:
    """Spanlab: an OpenAI-compatible gateway that records every LLM call as a span."""


def binds_loopback_only(host: str) -> bool:
    """Whether binding ``host`` listens on loopback addresses only. A name counts when
    every address it resolves to is loopback; "" (every interface) and a name that does
    not resolve do not."""
    if not host:
        return False
    if is_loopback(host):
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(is_loopback(str(address)) for address in addresses)


@cli.command()
@CONFIG_OPTION
@click.option("--host", help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8080).")
@DB_OPTION
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    default=None,
    help="Bind a non-loopback address with no key configured (open to anyone).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Gateway processes sharing the port (default 1; setting: workers).",
)
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    db: str | None,
    log_level: str | None,
    insecure_no_auth: bool | None,
    workers: int | None,
) -> None:
    """Run the gateway."""
    from gateway.app import create_app
    from gateway.cli.server import GatewayServer, gateway_config, tune_gc

    settings = load_settings(
        config_path,
        host=host,
        port=port,
        db=db,
        log_level=log_level,
        insecure_no_auth=insecure_no_auth,
        workers=workers,
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logger = logging.getLogger("gateway")
    providers = ", ".join(
        f"{p.name} ({redact_url(p.base_url)})" for p in settings.providers.values()
    )
    logger.info(
        "spanlab %s: database %s; providers: %s",
        __version__,
        redacted_url(settings.database),
        providers,
    )
    if not binds_loopback_only(settings.host):
        refusal, warning = access.public_bind_policy(settings)
        if refusal is not None:
            logger.error("%s", refusal)
            raise click.ClickException(refusal)
        if warning is not None:
            logger.warning("%s", warning)
            click.echo(f"WARNING: {warning}", err=True)
    if settings.workers > 1:
        from gateway.cli.workers import run_workers

        click.echo(
            f"Spanlab listening on http://{settings.host}:{settings.port} with"
            f" {settings.workers} workers"
            f"  (OPENAI_BASE_URL=http://{settings.host}:{settings.port}/v1)",
            err=True,
        )
        try:
            sys.exit(run_workers(settings, settings.workers))
        except (ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
    background = None
    if settings.background_process and settings.database != ":memory:":
        from gateway.background.process import BackgroundProcess

        background = BackgroundProcess.beside_one_gateway(settings)
    config = gateway_config(settings, create_app(settings, background=background))
    server = GatewayServer(config)  # ends /events streams as shutdown begins
    click.echo(
        f"Spanlab listening on http://{settings.host}:{settings.port}"
        f"  (OPENAI_BASE_URL=http://{settings.host}:{settings.port}/v1)",
        err=True,
    )
    tune_gc()
    server.run()
    if not server.started:
        sys.exit(1)


@cli.command()
@CONFIG_OPTION
@DB_OPTION
def migrate(config_path: Path | None, db: str | None) -> None:
    """Create the database or bring it up to date."""
    settings = load_settings(config_path, db=db)

    async def main() -> tuple[list[str], list[str]]:
        database = stores_for(settings.database, settings.database_pool_size).database
        await database.open()  # applies what is pending
        try:
            return await database.migrate(), await database.applied_migrations()
        finally:
            await database.close()

    _, applied = asyncio.run(main())
    where = redacted_url(settings.database)
    click.echo(f"{where}: schema at {applied[-1] if applied else 'none'}")
    for name in applied:
        click.echo(f"  {name}")


@cli.group()
def spans() -> None:
    """Captured calls."""


@spans.command("list")
@CONFIG_OPTION
@DB_OPTION
@click.option("--thread", help="Only this thread id.")
@click.option("--model", help="Only this model (requested or responded).")
@click.option("--status", type=click.Choice(["ok", "error", "client_aborted", "interrupted"]))
@click.option("--provider", help="Only this provider.")
@click.option("-q", "--search", "text", help="Text search in requests and responses.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def spans_list(
    config_path: Path | None,
    db: str | None,
    thread: str | None,
    model: str | None,
    status: str | None,
    provider: str | None,
    text: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List captured calls, newest first."""
    settings = load_settings(config_path, db=db)
    filters = SpanFilter(thread=thread, model=model, status=status, provider=provider, text=text)
    page = run_with_store(settings, lambda stores: stores.spans.list_spans(filters, limit=limit))
    if as_json:
        print_json(page.items)
        return
    if not page.items:
        click.echo("No spans.")
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("span", no_wrap=True, min_width=16)
    for column in ("time", "model", "status", "ms", "tokens", "cost $"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    table.add_column("input", no_wrap=True, overflow="ellipsis", min_width=16, ratio=1)
    for item in page.items:
        usage = item["usage"]
        table.add_row(
            item["span_id"],
            short_time(item["start_time"]),
            item.get("request_model") or "-",
            item["status"],
            f"{item['duration_ms']:.0f}" if item.get("duration_ms") is not None else "-",
            str(usage["total_tokens"]) if usage["total_tokens"] is not None else "-",
            format_cost(item.get("cost_usd")),
            (item.get("input_preview") or "").replace("\n", " ")[:60],
        )
    terminal().print(table)


@spans.command("show")
@click.argument("span_id")
@CONFIG_OPTION
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def spans_show(config_path: Path | None, db: str | None, span_id: str, as_json: bool) -> None:
    """Show one captured call."""
    settings = load_settings(config_path, db=db)
    span = run_with_store(settings, lambda stores: stores.spans.get_span(span_id))
    if span is None:
        raise click.ClickException(f"No span with id {span_id!r}.")
    if as_json:
        print_json(span)
        return
    console = terminal()
    usage = span["usage"]
    rows = [
        ("span", span["span_id"]),
        ("trace", span["trace_id"]),
        ("time", span["start_time"]),
        ("provider", span.get("provider")),
        ("model", f"{span.get('request_model')} -> {span.get('response_model')}"),
        ("status", f"{span['status']} (HTTP {span.get('http_status')})"),
        ("latency", f"{span.get('duration_ms')} ms, TTFT {span.get('ttft_ms')} ms"),
        ("tokens", f"{usage['prompt_tokens']} in, {usage['completion_tokens']} out"),
        ("cost", f"${span['cost_usd']:.6f}" if span.get("cost_usd") is not None else "unknown"),
        ("thread", span.get("thread_id")),
    ]
    for key, value in rows:
        console.print(f"[bold]{key:>9}[/bold]  {value if value is not None else '-'}", markup=True)
    request = span.get("request") or {}
    for message in request.get("messages") or []:
        content = message.get("content")
        console.print(f"\n[bold]{message.get('role')}[/bold]", markup=True)
        console.print(
            content if isinstance(content, str) else orjson.dumps(content).decode(),
            markup=False,
            highlight=False,
        )
    if span.get("output_text") is not None:
        console.print("\n[bold]output[/bold]", markup=True)
        console.print(span["output_text"], markup=False, highlight=False)
    if span.get("error"):
        console.print("\n[bold red]error[/bold red]", markup=True)
        console.print(orjson.dumps(span["error"]).decode(), markup=False, highlight=False)


@cli.command()
@click.option("--older-than", "older_than", required=True, help="Age, e.g. 30d, 12h, 2w.")
@CONFIG_OPTION
@DB_OPTION
@click.option("--dry-run", is_flag=True, help="Count what would go, delete nothing.")
@click.option("--vacuum", is_flag=True, help="Give the freed space back to the disk.")
def prune(
    older_than: str, config_path: Path | None, db: str | None, dry_run: bool, vacuum: bool
) -> None:
    """Delete spans older than an age (and audit entries past audit_retention_days)."""
    seconds = parse_duration(older_than)
    settings = load_settings(config_path, db=db)
    cutoff_us = int((time.time() - seconds) * 1_000_000)
    audit_cutoff = retention_cutoff(settings.audit_retention_days)
    audited = 0

    async def work(stores: Stores) -> int:
        nonlocal audited
        if dry_run:
            return await stores.spans.count_spans(SpanFilter(until_us=cutoff_us))
        deleted = await stores.spans.delete_spans_before(cutoff_us)
        audit_db = sql_database(stores.database)
        if audit_cutoff is not None and audit_db is not None:
            audited = await AuditLog(audit_db).delete_before(audit_cutoff)
        if vacuum:
            await stores.database.compact()
        return deleted

    count = run_with_store(settings, work)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {count} span(s) older than {older_than}")
    if audit_cutoff is not None and not dry_run:
        click.echo(
            f"deleted {audited} audit entr{'y' if audited == 1 else 'ies'} older than"
            f" {settings.audit_retention_days:g} day(s) (audit_retention_days)"
        )


@cli.group()
def config() -> None:
    """Configuration."""


@config.command("example")
def config_example() -> None:
    """Print a configuration file with every setting and its default."""
    click.echo(example_toml(), nl=False)


@config.command("show")
@CONFIG_OPTION
def config_show(config_path: Path | None) -> None:
    """Print the settings in effect (defaults, file and SPANLAB_* environment), secrets
    masked; audited (settings.shown, actor cli) in the database, if there is one."""
    settings = load_settings(config_path)
    print_json(shown_settings(settings))
    if is_postgres_url(settings.database):
        pass  # the server database exists: the entry goes there
    elif settings.database == ":memory:" or not Path(settings.database).exists():
        return  # no database to hold the entry (and none is created for it)

    async def record(stores: Stores) -> None:
        database = sql_database(stores.database)
        if database is not None:
            await record_cli_action(AccessStore(database), "GET /settings", {}, {})

    try:
        run_with_store(settings, record)
    except Exception as exc:  # the settings are shown; a log failure must not hide them
        where = redacted_url(settings.database)
        click.echo(
            f"warning: could not audit config show in {where}: {redacted_url(str(exc))}", err=True
        )


experiments.register(cli)
matrix.register(cli)  # after experiments: it extends that group
datasets.register(cli)
playground.register(cli)
scores.register(cli)
access.register(cli)
audit.register(cli)
database.register(cli)


def main() -> None:
    cli()
