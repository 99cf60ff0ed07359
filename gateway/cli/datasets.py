"""``spanlab datasets ...``: datasets from a terminal.

Every command speaks the HTTP API of `gateway.api.datasets` (see `gateway.cli.client`):
with ``--url`` (or ``SPANLAB_URL``) to a running gateway, otherwise to one run in
process on ``--db``/``--config``. A dataset is named by its id or by its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from rich.table import Table
from rich.text import Text

from gateway.cli.client import APIError, call, run_async, send
from gateway.cli.common import (
    api_options,
    list_table,
    load_settings,
    print_json,
    short_time,
    terminal,
)

SPAN_FILTERS = (
    "project",
    "thread",
    "run",
    "trace",
    "model",
    "provider",
    "status",
    "label",
    "operation",
    "since",
    "until",
)


async def resolve(client: httpx.AsyncClient, ref: str) -> dict[str, Any]:
    """The dataset ``ref`` names: its id, else its name (in any project, if just one)."""
    try:
        found: dict[str, Any] = await call(client, "GET", f"/datasets/{ref}")
        return found
    except APIError as exc:
        if exc.status != 404:
            raise
    page = await call(client, "GET", "/datasets", params={"q": ref, "limit": "1000"})
    named = [d for d in page["data"] if d["name"] == ref]
    if len(named) == 1:
        return dict(named[0])
    if named:
        raise click.ClickException(
            f"{len(named)} datasets are named {ref!r} (in different projects); use an id:"
            f" {', '.join(d['id'] for d in named)}"
        )
    raise click.ClickException(f"No dataset with id or name {ref!r}.")


async def fetch_bytes(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> tuple[bytes, httpx.Headers]:
    response = await send(client, "GET", path, params=params)
    return response.content, response.headers


def _summary(result: dict[str, Any]) -> str:
    parts = [f"{result['added']} added"]
    if result.get("updated"):
        parts.append(f"{result['updated']} updated")
    if result.get("skipped"):
        parts.append(f"{len(result['skipped'])} skipped")
    dataset = result["dataset"]
    return (
        f"{', '.join(parts)}: dataset {dataset['id']} ({dataset['name']}) is at version"
        f" {dataset['version']}, {dataset['item_count']} items"
    )


def _preview(item: dict[str, Any]) -> str:
    if item.get("variables") is not None:
        text = orjson.dumps(item["variables"]).decode()
    else:
        messages = (item.get("request") or {}).get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        content = last.get("content")
        text = content if isinstance(content, str) else orjson.dumps(item.get("request")).decode()
    return text.replace("\n", " ")[:100]


def _expected(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value.replace("\n", " ")[:60]
    calls = value.get("tool_calls") if isinstance(value, dict) else None
    if calls:
        return ", ".join(f"{c.get('function', {}).get('name')}(…)" for c in calls)[:60]
    return orjson.dumps(value).decode()[:60]


@click.group()
def datasets() -> None:
    """Datasets: named, versioned sets of inputs for experiments."""


@datasets.command("list")
@click.option("--project", help="Only this project.")
@click.option("-q", "--search", "text", help="Text in names and descriptions.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@api_options
def datasets_list(
    project: str | None,
    text: str | None,
    limit: int,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """List datasets, newest first, with their item counts."""
    params = {k: v for k, v in {"project": project, "q": text, "limit": str(limit)}.items() if v}
    settings = load_settings(config_path, db=db)
    page = run_async(settings, url, lambda c: call(c, "GET", "/datasets", params=params))
    columns = ("dataset", "created", "items", "version", "project")
    table = list_table(page["data"], as_json, "No datasets.", columns, "name")
    if table is None:
        return
    for item in page["data"]:
        table.add_row(
            item["id"],
            short_time(item["created_at"]),
            str(item["item_count"]),
            str(item["version"]),
            item["project_id"] or "-",
            Text(item["name"]),
        )
    terminal().print(table)


@datasets.command("show")
@click.argument("dataset")
@click.option("--version", type=click.IntRange(1), help="This version (default: current).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@api_options
def datasets_show(
    dataset: str,
    version: int | None,
    limit: int,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Show a dataset and its first items."""
    settings = load_settings(config_path, db=db)
    params = {"limit": str(limit), **({"version": str(version)} if version else {})}

    async def work(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
        found = await resolve(client, dataset)
        items = await call(client, "GET", f"/datasets/{found['id']}/items", params=params)
        return found, items

    found, items = run_async(settings, url, work)
    if as_json:
        print_json({**found, "items": items["data"], "items_version": items["version"]})
        return
    console = terminal()
    for key, value in (
        ("dataset", found["id"]),
        ("name", found["name"]),
        ("description", found["description"] or "-"),
        ("project", found["project_id"] or "-"),
        ("version", f"{found['version']} ({found['item_count']} items)"),
        ("updated", found["updated_at"]),
    ):
        console.print(Text.assemble((f"{key:>11}  ", "bold"), str(value)))
    table = Table(
        title=f"items of version {items['version']}", title_justify="left", box=None, pad_edge=False
    )
    for column in ("key", "input", "expected", "span"):
        table.add_column(
            column, overflow="ellipsis", no_wrap=True, ratio=2 if column == "input" else 1
        )
    for item in items["data"]:
        table.add_row(
            Text(item["key"]),
            Text(_preview(item)),
            Text(_expected(item["expected_output"])),
            item["source_span_id"] or "-",
        )
    console.print(table)
    if items["next_cursor"]:
        console.print(Text(f"(first {limit} items; --limit for more, --json for all fields)"))


@datasets.command("create")
@click.argument("name")
@click.option("--description", help="What the dataset is for.")
@click.option("--project", help="Its project.")
@api_options
def datasets_create(
    name: str,
    description: str | None,
    project: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Create an empty dataset."""
    body = {"name": name, "description": description, "project_id": project}
    settings = load_settings(config_path, db=db)
    created = run_async(
        settings,
        url,
        lambda c: call(c, "POST", "/datasets", json={k: v for k, v in body.items() if v}),
    )
    if as_json:
        print_json(created)
    else:
        click.echo(f"{created['id']}  {created['name']}")


# The content type a file is sent with, by format (what the import route reads).
RAW_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


@datasets.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--into", "into", help="Add to this dataset (id or name).")
@click.option("--name", help="Create a dataset of this name (default: the file's name).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="Default: by suffix.")
@click.option("--expected", help="CSV: the column holding the expected output.")
@click.option("--key", "key_column", help="CSV: the column holding the item keys.")
@click.option(
    "--on-conflict",
    type=click.Choice(["error", "skip", "update"]),
    default="error",
    show_default=True,
    help="An item whose key the dataset has: fail (nothing imported), leave it out, or"
    " replace the dataset's item.",
)
@api_options
def datasets_import(
    file: Any,
    into: str | None,
    name: str | None,
    fmt: str | None,
    expected: str | None,
    key_column: str | None,
    on_conflict: str,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Import items from a JSONL or CSV FILE (- for standard input), all or nothing."""
    if into and name:
        raise click.UsageError("Give --into (an existing dataset) or --name (a new one).")
    filename = Path(file.name).name
    content = file.read()
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file.name} is not UTF-8 text.") from None
    suffix = filename.lower().rsplit(".", 1)[-1]
    fmt = fmt or {"jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv"}.get(suffix)
    if fmt is None:
        raise click.UsageError("Say --format jsonl or --format csv (the file name does not).")
    # The file goes as is (a raw body: no JSON escaping to grow it past max_body_bytes),
    # its options in the query string.
    options = {"on_conflict": on_conflict}
    if expected:
        options["expected_column"] = expected
    if key_column:
        options["key_column"] = key_column
    headers = {"content-type": RAW_TYPES[fmt]}
    settings = load_settings(config_path, db=db)

    async def upload(client: httpx.AsyncClient, dataset_id: str) -> dict[str, Any]:
        path = f"/datasets/{dataset_id}/import"
        result: dict[str, Any] = await call(
            client, "POST", path, content=content, params=options, headers=headers
        )
        return result

    async def work(client: httpx.AsyncClient) -> dict[str, Any]:
        if into:
            return await upload(client, (await resolve(client, into))["id"])
        stem = name or Path(filename).stem or "imported"
        target = await call(client, "POST", "/datasets", json={"name": stem})
        try:
            result = await upload(client, target["id"])
        except click.ClickException:
            # Leave nothing half-made behind: the new dataset goes with its import.
            await call(client, "DELETE", f"/datasets/{target['id']}")
            raise
        return result

    result = run_async(settings, url, work)
    if as_json:
        print_json(result)
    else:
        click.echo(_summary(result))


@datasets.command("export")
@click.argument("dataset")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--version", type=click.IntRange(1), help="This version (default: current).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (default: standard output).",
)
@api_options
def datasets_export(
    dataset: str,
    fmt: str,
    version: int | None,
    output: Path | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Export a dataset's items (of one version) as JSONL or CSV."""
    settings = load_settings(config_path, db=db)
    params = {"format": fmt, **({"version": str(version)} if version else {})}

    async def work(client: httpx.AsyncClient) -> tuple[bytes, httpx.Headers]:
        found = await resolve(client, dataset)
        return await fetch_bytes(client, f"/datasets/{found['id']}/export", params)

    content, headers = run_async(settings, url, work)
    if output is None:
        click.echo(content.decode(), nl=False)
        return
    output.write_bytes(content)
    shown = headers.get("x-spanlab-dataset-version")
    if as_json:
        print_json({"file": str(output), "version": int(shown) if shown else None})
    else:
        click.echo(f"Exported version {shown} to {output}", err=True)


@datasets.command("from-spans")
@click.argument("dataset")
@click.option("--project", help="Spans of this project.")
@click.option("--thread", help="Spans of this thread.")
@click.option("--run", help="Spans of this run (x-run-id).")
@click.option("--trace", help="Spans of this trace.")
@click.option("--model", help="Spans of this model (requested or answered).")
@click.option("--provider", help="Spans of this provider.")
@click.option("--status", help="Spans of this status (ok, error...).")
@click.option("--label", help="Spans with this label.")
@click.option("--operation", help="Spans of this operation (chat, messages...).")
@click.option("--since", help="Spans from this time (ISO 8601 or Unix seconds).")
@click.option("--until", help="Spans before this time.")
@click.option("-q", "--search", "text", help="Text in the spans' requests and responses.")
@click.option("--span", "span_ids", multiple=True, help="This span (repeatable; no filters).")
@click.option("--sample", type=click.IntRange(1), help="A random sample of this many spans.")
@click.option("--seed", help="Seed of the sample (the same seed, the same sample).")
@api_options
def datasets_from_spans(
    dataset: str,
    text: str | None,
    span_ids: tuple[str, ...],
    sample: int | None,
    seed: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
    **filters: str | None,
) -> None:
    """Add captured calls to a dataset: each span's request (tools and all) becomes an
    item, its answer the expected output."""
    params = {k: v for k, v in filters.items() if k in SPAN_FILTERS and v}
    if text:
        params["q"] = text
    body: dict[str, Any] = {}
    if span_ids:
        body["span_ids"] = list(span_ids)
    if sample is not None:
        body["sample"] = sample
    if seed is not None:
        body["seed"] = int(seed) if seed.lstrip("-").isdigit() else seed
    settings = load_settings(config_path, db=db)

    async def work(client: httpx.AsyncClient) -> dict[str, Any]:
        found = await resolve(client, dataset)
        result: dict[str, Any] = await call(
            client,
            "POST",
            f"/datasets/{found['id']}/items/from-spans",
            params=params,
            json=body,
        )
        return result

    result = run_async(settings, url, work)
    if as_json:
        print_json(result)
        return
    click.echo(f"{result['matched']} spans matched; " + _summary(result))
    for skipped in result["skipped"]:
        click.echo(f"  skipped {skipped['span_id']}: {skipped['reason']}", err=True)


@datasets.command("delete")
@click.argument("dataset_refs", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@api_options
def datasets_delete(
    dataset_refs: tuple[str, ...],
    yes: bool,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Delete datasets, with every version of their items."""
    if not yes:
        click.confirm(f"Delete {len(dataset_refs)} dataset(s)?", abort=True, err=True)
    settings = load_settings(config_path, db=db)

    async def work(client: httpx.AsyncClient) -> list[str]:
        found = [await resolve(client, ref) for ref in dataset_refs]  # all exist, or none go
        for item in found:
            await call(client, "DELETE", f"/datasets/{item['id']}")
        return [item["id"] for item in found]

    deleted = run_async(settings, url, work)
    if as_json:
        print_json({"deleted": deleted})
    else:
        for dataset_id in deleted:
            click.echo(f"Deleted {dataset_id}")


def register(cli: click.Group) -> None:
    cli.add_command(datasets)
