"""``spanlab experiments run`` for the matrix (variants x inputs x repetitions), and
``spanlab experiments variants|inputs add|list|remove``.

`register` adds these to the ``experiments`` group of `gateway.cli.experiments`; its
``run`` becomes a dispatcher: a replay (seed-1) experiment run without matrix options
runs exactly as before (`run_and_compare`, `report_run`), anything else runs the
matrix: the call count and (when the gateway has ``POST /experiments/{id}/estimate``)
the cost estimate, a confirmation above a threshold, then a live progress bar fed by
the progress stream (``GET /experiments/{id}/progress?stream=true``). Ctrl-C cancels
the run (``POST /experiments/{id}/cancel``) and exits 130; failed cells exit 1.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.cli import gating
from gateway.cli.client import APIError, call, run_async, send
from gateway.cli.common import api_options, format_cost, load_settings, print_json, terminal
from gateway.cli.evaluators import PythonEvaluator, evaluators_option, run_python_evaluators
from gateway.cli.experiments import API_KEY_OPTION, parse_pairs, report_run, run_and_compare
from gateway.http.sse import SSESplitter, parse_event

EXIT_FAILED_CELLS = 1
EXIT_INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C
ENDED = ("completed", "failed", "cancelled", "interrupted")

# Progress updates, from the progress stream (or a poll): the dict is the progress.
OnProgress = Callable[[dict[str, Any]], None]


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    ids = [v.strip() for v in value.split(",") if v.strip()]
    if not ids:
        raise click.BadParameter("expected comma-separated ids")
    return ids


def run_body(
    variants: list[str] | None,
    inputs: list[str] | None,
    repeat: int | None,
    concurrency: int | None,
    resume: bool,
) -> dict[str, Any]:
    if resume and (variants or inputs or repeat):
        raise click.UsageError(
            "--resume runs the last run's own cells: no --variants/--inputs/--repeat."
        )
    body: dict[str, Any] = {}
    if variants is not None:
        body["variantIds"] = variants
    if inputs is not None:
        body["inputIds"] = inputs
    if repeat is not None:
        body["repetitions"] = repeat
    if concurrency is not None:
        body["concurrency"] = concurrency
    if resume:
        body["resume"] = True
    return body


def planned_calls(experiment: dict[str, Any], body: dict[str, Any]) -> int | None:
    """Cells the run will call: chosen (or all) variants x inputs x repetitions; for a
    resume, the last run's unfinished cells (None when there is no run to resume)."""
    if body.get("resume"):
        runs = experiment.get("matrix_runs") or []
        if not runs:
            return None
        latest = runs[0]["id"]
        cells = [r for r in experiment.get("runs") or [] if r.get("matrix_run_id") == latest]
        unfinished = sum(1 for c in cells if c.get("status") != "completed")
        return unfinished + max(0, int(runs[0].get("cells") or 0) - len(cells))
    variants = body.get("variantIds") or [v["id"] for v in experiment.get("variants") or []]
    inputs = body.get("inputIds") or [i["id"] for i in experiment.get("inputs") or []]
    return len(variants) * len(inputs) * int(body.get("repetitions") or 1)


async def estimate(
    client: httpx.AsyncClient, experiment_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """The gateway's estimate of the run (`gateway.experiments.estimate.Estimate`)."""
    found: dict[str, Any] = await call(
        client,
        "POST",
        f"/experiments/{experiment_id}/estimate",
        json={k: v for k, v in body.items() if k != "concurrency"},
    )
    return found


def estimate_line(found: dict[str, Any]) -> str:
    """The estimate in one line: calls, cost, and how much of it is approximated."""
    line = f"{found['calls']} call(s)"
    cost = found.get("cost_usd")
    line += f", estimated ${format_cost(cost)}" if cost is not None else ", cost unknown"
    approximated = len((found.get("basis") or {}).get("approximated") or [])
    notes = []
    if approximated:
        notes.append(f"{approximated} input(s) without captured usage approximated")
    if found.get("unpriced_calls"):
        notes.append(f"{found['unpriced_calls']} call(s) of unpriced models not counted")
    return line + (f" ({'; '.join(notes)})" if notes else "")


async def watch(
    client: httpx.AsyncClient, experiment_id: str, run_id: str, on_progress: OnProgress
) -> dict[str, Any]:
    """Follow the run on its progress stream until its final event; if the stream ends
    early (a proxy in between, a restart), poll until the run is no longer running."""
    path = f"/experiments/{experiment_id}/progress"
    params = {"stream": "true", "run": run_id}
    last: dict[str, Any] | None = None
    try:
        async with client.stream("GET", path, params=params) as response:
            if response.status_code >= 400:
                raise APIError(response.status_code, await response.aread())
            splitter = SSESplitter()
            async for chunk in response.aiter_bytes():
                for raw in splitter.feed(chunk):
                    event = parse_event(raw)
                    if event.event != "progress" or not event.data:
                        continue
                    last = orjson.loads(event.data)
                    on_progress(last)
                    if last.get("final"):
                        return last
    except httpx.TransportError:
        pass  # fall back to polling below
    while True:
        last = await call(client, "GET", path, params={"run": run_id})
        assert last is not None
        on_progress(last)
        if last.get("status") != "running":
            return last
        await asyncio.sleep(1.0)


class ProgressBar:
    """cells ended / total, errors, cost so far, ETA (rich.progress, on stderr so that
    --json's output stays clean)."""

    def __init__(self, console: Console, total: int) -> None:
        self.progress = Progress(
            TextColumn("[bold]cells"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "{task.fields[errors]} errors  ${task.fields[cost]}  eta {task.fields[eta]}"
            ),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("cells", total=total, errors=0, cost="0", eta="-")

    def update(self, progress: dict[str, Any]) -> None:
        ended = sum(int(progress.get(k) or 0) for k in ENDED)
        eta = progress.get("eta_s")
        self.progress.update(
            self.task,
            total=int(progress.get("total") or 0),
            completed=ended,
            errors=int(progress.get("failed") or 0),
            cost=format_cost(progress.get("cost_usd")),
            eta="-" if eta is None else f"{eta:.0f}s",
        )


def report_matrix(
    console: Console, as_json: bool, progress: dict[str, Any], cells: list[dict[str, Any]]
) -> None:
    if as_json:
        print_json({"progress": progress, "cells": cells})
        return
    table = Table(title=f"Run {progress['run_id']}: {progress['status']}")
    for column in ("variant", "completed", "failed", "other", "cost $", "mean latency ms"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        name = (cell.get("config") or {}).get("variant_name") or cell.get("variant_id") or "?"
        by_variant.setdefault(str(name), []).append(cell)
    for name, group in by_variant.items():
        done = [c for c in group if c["status"] == "completed"]
        failed = sum(1 for c in group if c["status"] == "failed")
        costs = [c["cost_usd"] for c in group if c.get("cost_usd") is not None]
        latencies = [c["duration_ms"] for c in done if c.get("duration_ms") is not None]
        table.add_row(
            name,
            str(len(done)),
            str(failed),
            str(len(group) - len(done) - failed),
            format_cost(sum(costs) if costs else None),
            f"{sum(latencies) / len(latencies):.0f}" if latencies else "-",
        )
    console.print(table)
    errors = [c for c in cells if c["status"] == "failed" and c.get("error")][:5]
    for cell in errors:
        console.print(f"[red]failed[/red] {cell['id']}: {cell['error'].get('message')}")


@click.command("run")
@click.argument("experiment_id")
@click.option("--stream", is_flag=True, help="Replay experiments: stream the output.")
@click.option("--variants", "variant_ids", help="Matrix: only these variant ids (a,b,...).")
@click.option("--inputs", "input_ids", help="Matrix: only these input ids (a,b,...).")
@click.option("--repeat", type=click.IntRange(1, 100), help="Matrix: repetitions of each cell.")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Matrix: cells at once.")
@click.option("--resume", is_flag=True, help="Matrix: run the last run's unfinished cells.")
@click.option("--yes", is_flag=True, help="Matrix: do not ask before a large run.")
@click.option(
    "--confirm-calls",
    type=click.IntRange(0),
    default=100,
    show_default=True,
    help="Matrix: ask first when the run makes more calls than this.",
)
@click.option(
    "--confirm-cost",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="Matrix: ask first when the estimate is above this many USD.",
)
@click.option(
    "--evaluator",
    "evaluators",
    multiple=True,
    callback=evaluators_option,
    help="Matrix: score the run's cells with this Python function (module:function), in"
    " this process; repeatable.",
)
@gating.options
@API_KEY_OPTION
@api_options
def experiments_run(
    experiment_id: str,
    stream: bool,
    variant_ids: str | None,
    input_ids: str | None,
    repeat: int | None,
    concurrency: int | None,
    resume: bool,
    yes: bool,
    confirm_calls: int,
    confirm_cost: float,
    evaluators: list[PythonEvaluator],
    api_key: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
    gate: gating.GateOptions,
) -> None:
    """Run an experiment. A replay experiment: one call, compared with the original
    (exits 1 on failure). A matrix (a matrix experiment, or any matrix option): every
    variant x input x repetition, with a live progress bar; Ctrl-C cancels the run
    (exit 130), failed cells exit 1; with --assert/--fail-on-regression/--junit the
    results are gated instead (exit 0/1/2, `gateway.cli.gating`)."""
    settings = load_settings(config_path, db=db)
    console = terminal()
    status_console = Console(stderr=True)
    body = run_body(_csv(variant_ids), _csv(input_ids), repeat, concurrency, resume)

    async def work(client: httpx.AsyncClient) -> int:
        experiment = await call(client, "GET", f"/experiments/{experiment_id}")
        if experiment.get("kind", "replay") != "matrix" and not body:
            run, comparison = await run_and_compare(
                client,
                experiment_id,
                stream=stream,
                api_key=api_key,
                console=None if as_json else console,
            )
            experiment = await call(client, "GET", f"/experiments/{experiment_id}")
            report_run(console, as_json, experiment, run, comparison)
            return 0 if run["status"] == "completed" else 1
        if stream:
            raise click.UsageError("--stream is for replay experiments; a matrix shows progress.")
        code = await matrix_run(
            client,
            experiment,
            body,
            yes,
            confirm_calls,
            confirm_cost,
            api_key,
            as_json and not gate.active,  # with gating, --json prints the gate's summary
            status_console if gate.active and as_json else console,
            status_console,
            evaluators,
        )
        return await gating.check(client, experiment_id, code, gate, as_json, console)

    code = run_async(settings, url, work)
    if code:
        sys.exit(code)


async def matrix_run(
    client: httpx.AsyncClient,
    experiment: dict[str, Any],
    body: dict[str, Any],
    yes: bool,
    confirm_calls: int,
    confirm_cost: float,
    api_key: str | None,
    as_json: bool,
    console: Console,
    status: Console,
    evaluators: Sequence[PythonEvaluator] = (),
) -> int:
    experiment_id = experiment["id"]
    calls: int | None
    cost: float | None = None
    if body.get("resume"):  # the estimate prices a new run; a resume runs what is left
        calls = planned_calls(experiment, body)
        status.print(f"{calls if calls is not None else '?'} unfinished cell(s) to run")
    else:
        found = await estimate(client, experiment_id, body)
        calls, cost = found["calls"], found.get("cost_usd")
        status.print(estimate_line(found))
    large = (calls or 0) > confirm_calls or (cost or 0.0) > confirm_cost
    if large and not yes:
        click.confirm("Run it?", abort=True, err=True)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else None
    started = await call(
        client, "POST", f"/experiments/{experiment_id}/run", json=body, headers=headers
    )
    run_id = str(started["run_id"])
    bar = ProgressBar(status, int(started.get("total") or started.get("cells") or 0))
    interrupted = False
    with bar.progress:
        try:
            final = await watch(client, experiment_id, run_id, bar.update)
        except (KeyboardInterrupt, asyncio.CancelledError):
            # Ctrl-C: asyncio.run cancels this task (or the interrupt lands here); the
            # run is cancelled on the gateway before the command exits.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            interrupted = True
            status.print("Cancelling the run...")
            try:
                final = await call(client, "POST", f"/experiments/{experiment_id}/cancel")
            except APIError as exc:
                if exc.status != 409:  # 409: it had ended already
                    raise
                final = await call(
                    client, "GET", f"/experiments/{experiment_id}/progress", params={"run": run_id}
                )
            bar.update(final)
    detail = await call(client, "GET", f"/experiments/{experiment_id}")
    cells = [r for r in detail.get("runs") or [] if r.get("matrix_run_id") == run_id]
    report_matrix(console, as_json, final, cells)
    if not interrupted:
        await run_python_evaluators(client, experiment_id, run_id, evaluators, status)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED_CELLS if final.get("failed") or final.get("status") != "completed" else 0


# --- variants and inputs ------------------------------------------------------------------


@click.group("variants")
def variants() -> None:
    """A matrix experiment's variants: add, list, remove."""


@variants.command("list")
@click.argument("experiment_id")
@api_options
def variants_list(
    experiment_id: str, url: str | None, config_path: Path | None, db: str | None, as_json: bool
) -> None:
    settings = load_settings(config_path, db=db)

    async def work(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = (
            await call(client, "GET", f"/experiments/{experiment_id}/variants")
        )["data"]
        return data

    found = run_async(settings, url, work)
    if as_json:
        print_json(found)
        return
    table = Table()
    for column in ("id", "name", "kind", "model", "system prompt"):
        table.add_column(column)
    for v in found:
        config = v.get("config") or {}
        system = v.get("system_prompt") or ""
        table.add_row(
            v["id"],
            v["name"],
            v.get("kind") or "",
            str(config.get("model") or ""),
            system[:60] + ("..." if len(system) > 60 else ""),
        )
    terminal().print(table)


@variants.command("add")
@click.argument("experiment_id")
@click.option("--name", required=True, help="Unique in the experiment.")
@click.option("--model", help="The variant's model (provider/model works too).")
@click.option("--provider", help="Route the variant's calls to this provider.")
@click.option("--system", "system_prompt", help="System prompt (Mustache for a template).")
@click.option(
    "--kind",
    type=click.Choice(["template", "override"]),
    default="template",
    show_default=True,
    help="template: messages from the input; override: the input's captured request, changed.",
)
@click.option("--description", help="What the variant tries.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A request field (JSON value): --param temperature=0.2 --param max_tokens=100.",
)
@click.option("--variant-config", "config_json", help="The variant's whole config, a JSON object.")
@api_options
def variants_add(
    experiment_id: str,
    name: str,
    model: str | None,
    provider: str | None,
    system_prompt: str | None,
    kind: str,
    description: str | None,
    params: tuple[str, ...],
    config_json: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Add a variant; prints its id."""
    settings = load_settings(config_path, db=db)
    config: dict[str, Any] = {}
    if config_json:
        try:
            config = orjson.loads(config_json)
        except orjson.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--variant-config") from None
        if not isinstance(config, dict):
            raise click.BadParameter("a JSON object is expected", param_hint="--variant-config")
    config.update(parse_pairs(params, "--param", as_json=True))
    if model:
        config["model"] = model
    if provider:
        config["provider"] = provider
    body: dict[str, Any] = {"name": name, "kind": kind, "config": config}
    if system_prompt is not None:
        body["systemPrompt"] = system_prompt
    if description is not None:
        body["description"] = description

    async def work(client: httpx.AsyncClient) -> dict[str, Any]:
        answer = await call(client, "POST", f"/experiments/{experiment_id}/variants", json=body)
        variant: dict[str, Any] = answer["variant"]
        return variant

    variant = run_async(settings, url, work)
    if as_json:
        print_json(variant)
    else:
        click.echo(variant["id"])


@variants.command("remove")
@click.argument("experiment_id")
@click.argument("variant_ids", nargs=-1, required=True)
@api_options
def variants_remove(
    experiment_id: str,
    variant_ids: tuple[str, ...],
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Remove variants (cells already run keep their config snapshot)."""
    settings = load_settings(config_path, db=db)
    removed = run_async(settings, url, _remover(experiment_id, "variants", variant_ids))
    print_json(removed) if as_json else click.echo(f"removed {len(removed)} variant(s)")


def _remover(
    experiment_id: str, what: str, ids: tuple[str, ...]
) -> Callable[[httpx.AsyncClient], Any]:
    async def work(client: httpx.AsyncClient) -> list[str]:
        removed = []
        for item in ids:
            await send(client, "DELETE", f"/experiments/{experiment_id}/{what}/{item}")
            removed.append(item)
        return removed

    return work


@click.group("inputs")
def inputs() -> None:
    """A matrix experiment's inputs: add, list, remove."""


@inputs.command("list")
@click.argument("experiment_id")
@api_options
def inputs_list(
    experiment_id: str, url: str | None, config_path: Path | None, db: str | None, as_json: bool
) -> None:
    settings = load_settings(config_path, db=db)

    async def work(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = (
            await call(client, "GET", f"/experiments/{experiment_id}/inputs")
        )["data"]
        return data

    found = run_async(settings, url, work)
    if as_json:
        print_json(found)
        return
    table = Table()
    for column in ("id", "key", "content", "from"):
        table.add_column(column)
    for i in found:
        content = i.get("content") or ("(request)" if i.get("request") else "")
        source = i.get("dataset_id") or i.get("source_span_id") or ""
        table.add_row(
            i["id"], i["key"], content[:60] + ("..." if len(content) > 60 else ""), source
        )
    terminal().print(table)


@inputs.command("add")
@click.argument("experiment_id")
@click.argument("file", type=click.File("r"), required=False)
@click.option("--dataset", "dataset_id", help="Take a dataset's items instead of a file.")
@click.option("--version", type=int, help="With --dataset: this version (default: current).")
@api_options
def inputs_add(
    experiment_id: str,
    file: Any,
    dataset_id: str | None,
    version: int | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Add inputs: one per line of FILE (``-``: stdin; blank lines skipped), or a
    dataset version's items (--dataset). All or nothing."""
    if (file is None) == (dataset_id is None):
        raise click.UsageError("Give a FILE (one input per line) or --dataset, not both.")
    if version is not None and dataset_id is None:
        raise click.UsageError("--version goes with --dataset.")
    if file is not None:
        lines = [line.rstrip("\r\n") for line in file]
        body: dict[str, Any] = {"inputs": [line for line in lines if line.strip()]}
        if not body["inputs"]:
            raise click.UsageError("The file has no inputs (every line is blank).")
    else:
        body = {"datasetId": dataset_id}
        if version is not None:
            body["version"] = version
    settings = load_settings(config_path, db=db)

    async def work(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        answer = await call(client, "POST", f"/experiments/{experiment_id}/inputs", json=body)
        added: list[dict[str, Any]] = answer["inputs"]
        return added

    added = run_async(settings, url, work)
    print_json(added) if as_json else click.echo(f"added {len(added)} input(s)")


@inputs.command("remove")
@click.argument("experiment_id")
@click.argument("input_ids", nargs=-1, required=True)
@api_options
def inputs_remove(
    experiment_id: str,
    input_ids: tuple[str, ...],
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    settings = load_settings(config_path, db=db)
    removed = run_async(settings, url, _remover(experiment_id, "inputs", input_ids))
    print_json(removed) if as_json else click.echo(f"removed {len(removed)} input(s)")


def register(cli: click.Group) -> None:
    """Into the ``experiments`` group: ``run`` (replacing the replay-only one, whose
    behaviour it keeps), ``variants``, ``inputs`` and ``results``."""
    group = cli.commands["experiments"]
    assert isinstance(group, click.Group)
    group.add_command(experiments_run)
    group.add_command(variants)
    group.add_command(inputs)
    group.add_command(gating.experiments_results)
