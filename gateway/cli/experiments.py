"""``spanlab replay`` and ``spanlab experiments ...``: experiments from a terminal.

Every command speaks the HTTP API of `gateway.api.experiments` (see
`gateway.cli.client`). With ``--url`` (or ``SPANLAB_URL``) it talks to a running
gateway, which then uses its own provider keys; without it, the command runs the
gateway in process on ``--db``/``--config``, and upstream calls go out from this
process with the keys in its environment.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gateway.cli.client import call, run_async, run_experiment
from gateway.cli.common import (
    CONFIG_OPTION,
    DB_OPTION,
    JSON_OPTION,
    URL_OPTION,
    api_options,
    format_cost,
    load_settings,
    print_json,
    short_time,
    terminal,
)

API_KEY_OPTION = click.option(
    "--api-key",
    envvar="SPANLAB_REPLAY_API_KEY",
    help="Your provider key, sent with the run as Authorization: Bearer ... when the"
    " provider has no configured key. Never stored.",
)


# --- presenting -----------------------------------------------------------------------------


def _number(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "cost":
        return format_cost(value)
    if kind == "ms":
        return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"
    return f"{value:,}"


def _delta(metric: dict[str, Any], kind: str) -> Text:
    delta = metric["delta"]
    if delta is None:
        return Text("-")
    sign = "+" if delta > 0 else ""
    if kind == "cost":
        shown = sign + format_cost(delta) if delta >= 0 else "-" + format_cost(-delta)
    elif kind == "ms":
        shown = f"{sign}{delta:,.1f} ms"
    else:
        shown = f"{sign}{delta:,}"
    percent = metric["percent_change"]
    if percent is not None:
        shown += f" ({'+' if percent > 0 else ''}{percent:.1f}%)"
    style = "" if delta == 0 else ("green" if delta < 0 else "red")
    return Text(shown, style=style)


METRIC_ROWS = (
    ("prompt tokens", "prompt_tokens", "count"),
    ("completion tokens", "completion_tokens", "count"),
    ("total tokens", "total_tokens", "count"),
    ("cost $", "cost_usd", "cost"),
    ("latency", "latency_ms", "ms"),
    ("TTFT", "ttft_ms", "ms"),
)


def _call_text(call: dict[str, Any] | None) -> str:
    if call is None:
        return "-"
    arguments = call["arguments"]
    shown = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
    return f"{call['name']}({shown})"


def _diff_panel(console: Console, output: dict[str, Any]) -> Panel:
    """The word diff: coloured on a terminal, ``[-old-]{+new+}`` when plain text."""
    plain = console.color_system is None
    diff = Text()
    for piece in output["word_diff"]:
        op, text = piece["op"], piece["text"]
        if plain and op != "equal":
            diff.append(f"[-{text}-]" if op == "delete" else f"{{+{text}+}}")
        else:
            diff.append(
                text, style={"delete": "red strike", "insert": "green underline"}.get(op, "")
            )
    if output["identical"]:
        title = "output identical"
    else:
        title = f"word diff (similarity {output['similarity']:.0%})"
    parts: list[Any] = [diff]
    texts = (output["original"] or "") + (output["result"] or "")
    if output["unified_diff"] and "\n" in texts:
        unified = Text()
        for line in output["unified_diff"].splitlines():
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
            unified.append(line + "\n", style=style)
        parts += [Text(""), unified]
    return Panel(Group(*parts), title=title, title_align="left")


def show_comparison(console: Console, comparison: dict[str, Any], run: dict[str, Any]) -> None:
    original, result = comparison["original"], comparison["result"]
    model_a = original["response_model"] or original["request_model"]
    model_b = result["response_model"] or result["request_model"]
    side_by_side = Table(expand=True, show_lines=False)
    side_by_side.add_column(f"original · {model_a} · {original['span_id']}", ratio=1)
    side_by_side.add_column(f"replay · {model_b} · {result['span_id']}", ratio=1)
    side_by_side.add_row(
        Text(original["output_text"] or "(no text)"),
        Text(result["output_text"] or ("(no text)" if not result["error"] else "")),
    )
    if original["tool_calls"] or result["tool_calls"]:
        side_by_side.add_row(
            Text("\n".join(_call_text(c) for c in original["tool_calls"]) or "-", style="cyan"),
            Text("\n".join(_call_text(c) for c in result["tool_calls"]) or "-", style="cyan"),
        )
    console.print(side_by_side)

    output = comparison["output"]
    if output["original"] or output["result"]:
        console.print(_diff_panel(console, output))

    tools = comparison["tool_calls"]
    if tools["pairs"] and not tools["identical"]:
        table = Table(title="tool calls", title_justify="left")
        for column in ("#", "change", "original", "replay"):
            table.add_column(column)
        for pair in tools["pairs"]:
            table.add_row(
                str(pair["index"]),
                pair["op"],
                _call_text(pair["original"]),
                _call_text(pair["result"]),
            )
        console.print(table)

    metrics = Table(box=None, pad_edge=False)
    for column in ("", "original", "replay", "delta"):
        metrics.add_column(column, justify="left" if not column else "right")
    reason = comparison["finish_reason"]
    metrics.add_row(
        "finish reason",
        str(reason["original"] or "-"),
        str(reason["result"] or "-"),
        Text("changed", style="yellow") if reason["changed"] else Text("same"),
    )
    for label, key, kind in METRIC_ROWS:
        metric = comparison["metrics"][key]
        metrics.add_row(
            label,
            _number(metric["original"], kind),
            _number(metric["result"], kind),
            _delta(metric, kind),
        )
    console.print(metrics)
    if run.get("error"):
        console.print(
            Text(f"run failed: {run['error'].get('message')}", style="bold red"), markup=False
        )


async def run_and_compare(
    client: httpx.AsyncClient,
    experiment_id: str,
    *,
    stream: bool,
    api_key: str | None,
    console: Console | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Run, then compare; the console (not in --json mode) shows the stream live."""
    streamed = False

    def show(text: str) -> None:
        nonlocal streamed
        if console is not None:
            if not streamed:
                console.print(Text("streaming replay…", style="dim"))
            console.out(text, end="", highlight=False)
            console.file.flush()
        streamed = True

    run = await run_experiment(client, experiment_id, stream=stream, api_key=api_key, on_delta=show)
    if streamed and console is not None:
        console.out("")
    comparison = None
    if run.get("result_span_id"):
        comparison = await call(
            client, "GET", f"/experiments/{experiment_id}/compare", params={"run": run["id"]}
        )
    return run, comparison


def report_run(
    console: Console,
    as_json: bool,
    experiment: dict[str, Any],
    run: dict[str, Any],
    comparison: dict[str, Any] | None,
) -> None:
    if as_json:
        print_json({"experiment": experiment, "run": run, "comparison": comparison})
    else:
        console.print(
            Text.assemble(
                ("experiment ", "dim"),
                (experiment["id"], "bold"),
                ("  run ", "dim"),
                (run["id"], ""),
                ("  ", ""),
                (run["status"], "green" if run["status"] == "completed" else "bold red"),
            )
        )
        if comparison is not None:
            show_comparison(console, comparison, run)
        elif run.get("error"):
            console.print(Text(f"run failed: {run['error'].get('message')}", style="bold red"))


def parse_pairs(pairs: tuple[str, ...], option: str, *, as_json: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        if as_json:
            try:
                out[key] = orjson.loads(value)
            except orjson.JSONDecodeError:
                out[key] = value  # a bare word is a string: --set user=alice
        else:
            out[key] = value
    return out


def with_system(request: dict[str, Any], text: str, operation: str) -> dict[str, Any]:
    """The request with its system prompt replaced (or added), in its dialect's place."""
    request = dict(request)
    if operation == "messages":
        request["system"] = text
    elif operation == "responses":
        request["instructions"] = text
    else:
        messages = [m for m in request.get("messages") or [] if m.get("role") != "system"]
        request["messages"] = [{"role": "system", "content": text}, *messages]
    return request


# --- commands ---------------------------------------------------------------------------------


@click.command()
@click.argument("span_id")
@click.option("--model", help="Replay on this model (provider/model works too).")
@click.option(
    "--set",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a request parameter (value parsed as JSON: 1.5, true, null removes it).",
)
@click.option("--system", help="Replace the system prompt (or add one).")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Mustache variable.")
@click.option("--header", "headers", multiple=True, metavar="NAME=VALUE", help="Extra header.")
@click.option("--name", help="Name of the experiment.")
@click.option("--tag", "tags", multiple=True, help="Tag the experiment.")
@click.option("--stream", is_flag=True, help="Stream the replay's output as it arrives.")
@URL_OPTION
@API_KEY_OPTION
@CONFIG_OPTION
@DB_OPTION
@JSON_OPTION
def replay(
    span_id: str,
    model: str | None,
    params: tuple[str, ...],
    system: str | None,
    variables: tuple[str, ...],
    headers: tuple[str, ...],
    name: str | None,
    tags: tuple[str, ...],
    stream: bool,
    url: str | None,
    api_key: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Replay a captured call with changes and compare the result with the original.

    Creates an experiment on SPAN_ID, runs it through the gateway and prints both
    outputs side by side, the diff, and the token, cost and latency deltas. Exits 1
    when the replay fails.
    """
    settings = load_settings(config_path, db=db)
    parameters = parse_pairs(params, "--set", as_json=True)
    if model:
        parameters["model"] = model
    body: dict[str, Any] = {"original_span_id": span_id}
    if name:
        body["name"] = name
    if tags:
        body["tags"] = list(tags)
    if parameters:
        body["model_parameters"] = parameters
    if variables:
        body["prompt_variables"] = parse_pairs(variables, "--var", as_json=False)
    if headers:
        body["headers"] = parse_pairs(headers, "--header", as_json=False)
    console = terminal()

    async def work(client: httpx.AsyncClient) -> str:
        experiment = await call(client, "POST", "/experiments", json=body)
        if system is not None:
            modified = with_system(experiment["modified_request"], system, experiment["operation"])
            try:
                experiment = await call(
                    client,
                    "PUT",
                    f"/experiments/{experiment['id']}",
                    json={"modified_request": modified},
                )
            except click.ClickException:
                # Leave nothing half-made behind.
                await call(client, "DELETE", f"/experiments/{experiment['id']}")
                raise
        run, comparison = await run_and_compare(
            client,
            experiment["id"],
            stream=stream,
            api_key=api_key,
            console=None if as_json else console,
        )
        report_run(console, as_json, experiment, run, comparison)
        return str(run["status"])

    if run_async(settings, url, work) != "completed":
        sys.exit(1)


@click.group()
def experiments() -> None:
    """Experiments: captured calls replayed with changes."""


@experiments.command("list")
@click.option("--project", help="Only this project.")
@click.option("--status", type=click.Choice(["draft", "running", "completed", "failed"]))
@click.option("--tag", help="Only experiments with this tag.")
@click.option("--favorite", "favorite", is_flag=True, default=None, help="Only favourites.")
@click.option("-q", "--search", "text", help="Text search in names, descriptions, requests.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@api_options
def experiments_list(
    project: str | None,
    status: str | None,
    tag: str | None,
    favorite: bool | None,
    text: str | None,
    limit: int,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """List experiments, newest first."""
    params = {
        k: v
        for k, v in {
            "project": project,
            "status": status,
            "tag": tag,
            "favorite": "true" if favorite else None,
            "q": text,
            "limit": str(limit),
        }.items()
        if v is not None
    }
    settings = load_settings(config_path, db=db)
    page = run_async(settings, url, lambda c: call(c, "GET", "/experiments", params=params))
    items = page["data"]
    if as_json:
        print_json(items)
        return
    if not items:
        click.echo("No experiments.")
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("experiment", no_wrap=True)
    for column in ("created", "status", "model", "span"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    table.add_column("name", overflow="ellipsis", ratio=1)
    for item in items:
        star = "★ " if item["favorite"] else ""
        tags = f" [{', '.join(item['tags'])}]" if item["tags"] else ""
        table.add_row(
            item["id"],
            short_time(item["created_at"]),
            item["status"],
            str(
                (item["model_parameters"] or {}).get("model")
                or item["modified_request"].get("model")
            ),
            item["original_span_id"],
            Text(star + item["name"] + tags),
        )
    terminal().print(table)


@experiments.command("show")
@click.argument("experiment_id")
@api_options
def experiments_show(
    experiment_id: str, url: str | None, config_path: Path | None, db: str | None, as_json: bool
) -> None:
    """Show an experiment and its runs."""
    settings = load_settings(config_path, db=db)

    async def work(client: httpx.AsyncClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        experiment = await call(client, "GET", f"/experiments/{experiment_id}")
        runs = await call(client, "GET", f"/experiments/{experiment_id}/runs")
        return experiment, runs["data"]

    experiment, runs = run_async(settings, url, work)
    if as_json:
        print_json({**experiment, "runs": runs})
        return
    console = terminal()
    rows = [
        ("experiment", experiment["id"]),
        ("name", experiment["name"]),
        ("status", experiment["status"]),
        (
            "original",
            f"span {experiment['original_span_id']} trace {experiment['original_trace_id']}",
        ),
        ("result", f"span {experiment['result_span_id'] or '-'}"),
        ("model", experiment["modified_request"].get("model")),
        ("parameters", orjson.dumps(experiment["model_parameters"]).decode()),
        ("variables", orjson.dumps(experiment["prompt_variables"]).decode()),
        ("tags", ", ".join(experiment["tags"]) or "-"),
        ("favorite", "yes" if experiment["favorite"] else "no"),
        ("version", str(experiment["version"])),
        ("updated", experiment["updated_at"]),
    ]
    for key, value in rows:
        console.print(Text.assemble((f"{key:>10}  ", "bold"), str(value)))
    if experiment.get("error"):
        console.print(Text(f"     error  {experiment['error'].get('message')}", style="red"))
    if runs:
        table = Table(title="runs", title_justify="left", box=None, pad_edge=False)
        for column in ("run", "started", "status", "ms", "result span", "output"):
            table.add_column(column, no_wrap=column != "output", overflow="ellipsis")
        for run in runs:
            table.add_row(
                run["id"],
                short_time(run["started_at"]),
                run["status"],
                f"{run['duration_ms']:.0f}" if run["duration_ms"] is not None else "-",
                run["result_span_id"] or "-",
                (run["output_text"] or (run["error"] or {}).get("message") or "").replace(
                    "\n", " "
                )[:80],
            )
        console.print(table)


@experiments.command("run")
@click.argument("experiment_id")
@click.option("--stream", is_flag=True, help="Stream the output as it arrives.")
@API_KEY_OPTION
@api_options
def experiments_run(
    experiment_id: str,
    stream: bool,
    api_key: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Run an experiment and compare its result with the original. Exits 1 on failure."""
    settings = load_settings(config_path, db=db)
    console = terminal()

    async def work(client: httpx.AsyncClient) -> str:
        await call(client, "GET", f"/experiments/{experiment_id}")
        run, comparison = await run_and_compare(
            client,
            experiment_id,
            stream=stream,
            api_key=api_key,
            console=None if as_json else console,
        )
        experiment = await call(client, "GET", f"/experiments/{experiment_id}")
        report_run(console, as_json, experiment, run, comparison)
        return str(run["status"])

    if run_async(settings, url, work) != "completed":
        sys.exit(1)


@experiments.command("compare")
@click.argument("experiment_id")
@click.option("--run", "run_id", help="Compare this run (default: the latest result).")
@api_options
def experiments_compare(
    experiment_id: str,
    run_id: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Compare an experiment's result with the original, side by side."""
    settings = load_settings(config_path, db=db)
    params = {"run": run_id} if run_id else None

    async def work(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
        comparison = await call(
            client, "GET", f"/experiments/{experiment_id}/compare", params=params
        )
        run: dict[str, Any] = {}
        if comparison["run_id"]:
            run = await call(
                client, "GET", f"/experiments/{experiment_id}/runs/{comparison['run_id']}"
            )
        return comparison, run

    comparison, run = run_async(settings, url, work)
    if as_json:
        print_json(comparison)
        return
    show_comparison(terminal(), comparison, run)


@experiments.command("duplicate")
@click.argument("experiment_id")
@click.option("--name", help="Name of the copy (default: Copy of ...).")
@api_options
def experiments_duplicate(
    experiment_id: str,
    name: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Copy an experiment (as a new draft)."""
    settings = load_settings(config_path, db=db)
    body = {"name": name} if name else None
    copy = run_async(
        settings,
        url,
        lambda c: call(c, "POST", f"/experiments/{experiment_id}/duplicate", json=body),
    )
    if as_json:
        print_json(copy)
    else:
        click.echo(f"{copy['id']}  {copy['name']}")


@experiments.command("export")
@click.argument("experiment_ids", nargs=-1)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (default: standard output).",
)
@api_options
def experiments_export(
    experiment_ids: tuple[str, ...],
    output: Path | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Export experiments (all of them without ids) with their runs and history, as JSON."""
    settings = load_settings(config_path, db=db)
    params = {"ids": ",".join(experiment_ids)} if experiment_ids else None
    document = run_async(
        settings, url, lambda c: call(c, "GET", "/experiments/export", params=params)
    )
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    count = len(document["experiments"])
    if as_json:
        print_json({"file": str(output), "count": count})
    else:
        click.echo(f"Exported {count} experiment(s) to {output}", err=True)


@experiments.command("import")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--on-conflict",
    type=click.Choice(["error", "skip", "copy"]),
    default="error",
    show_default=True,
    help="When an experiment's id exists: fail (nothing imported), leave it out, or"
    " import a copy under a new id.",
)
@api_options
def experiments_import(
    file: Any,
    on_conflict: str,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Import experiments from an export (FILE, or - for standard input)."""
    try:
        document = orjson.loads(file.read())
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"{file.name} is not JSON: {exc}") from None
    settings = load_settings(config_path, db=db)
    result = run_async(
        settings,
        url,
        lambda c: call(
            c, "POST", "/experiments/import", json=document, params={"on_conflict": on_conflict}
        ),
    )
    if as_json:
        print_json(result["data"])
        return
    for item in result["data"]:
        click.echo(f"{item['id']}  {item['name']}")
    click.echo(f"Imported {len(result['data'])} experiment(s).", err=True)


@experiments.command("delete")
@click.argument("experiment_ids", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@api_options
def experiments_delete(
    experiment_ids: tuple[str, ...],
    yes: bool,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Delete experiments (with their runs and history; captured spans stay)."""
    if not yes:
        click.confirm(f"Delete {len(experiment_ids)} experiment(s)?", abort=True, err=True)
    settings = load_settings(config_path, db=db)

    async def work(client: httpx.AsyncClient) -> list[str]:
        for experiment_id in experiment_ids:  # all exist, or nothing is deleted
            await call(client, "GET", f"/experiments/{experiment_id}")
        for experiment_id in experiment_ids:
            await call(client, "DELETE", f"/experiments/{experiment_id}")
        return list(experiment_ids)

    deleted = run_async(settings, url, work)
    if as_json:
        print_json({"deleted": deleted})
    else:
        for experiment_id in deleted:
            click.echo(f"Deleted {experiment_id}")


def register(cli: click.Group) -> None:
    cli.add_command(replay)
    cli.add_command(experiments)
