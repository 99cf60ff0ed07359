"""``spanlab playground "prompt" --model A --model B``: the playground from a terminal.

It speaks ``POST /playground/complete`` (`gateway.api.playground`). With ``--url`` (or
``SPANLAB_URL``) it talks to a running gateway, which uses its own provider keys;
without it, the gateway runs in process on ``--db``/``--config``. The answers are
printed side by side (one column per model), or one after another when the terminal
is too narrow for the columns, each with its latency, tokens, cost and span id.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gateway.cli.client import APIError, call, run_async
from gateway.cli.common import (
    CONFIG_OPTION,
    DB_OPTION,
    format_cost,
    load_settings,
    print_json,
    terminal,
)
from gateway.http.sse import SSESplitter, parse_event

# The narrowest column an answer gets side by side; narrower terminals stack them.
MIN_COLUMN = 36
PATH = "/playground/complete"


def figures(output: dict[str, Any]) -> str:
    usage = output.get("usage") or {}
    latency = output.get("latency_ms")
    parts = [
        f"latency {latency:,.0f} ms" if latency is not None else "latency -",
        f"ttft {output['ttft_ms']:,.0f} ms" if output.get("ttft_ms") is not None else None,
        f"tokens {usage.get('prompt_tokens') or 0}+{usage.get('completion_tokens') or 0}"
        if usage.get("total_tokens") is not None
        else None,
        f"cost ${format_cost(output['cost_usd'])}"
        if output.get("cost_usd") is not None
        else "cost -",
        f"span {output.get('span_id')}",
    ]
    return " · ".join(p for p in parts if p)


def answer_text(output: dict[str, Any]) -> Text:
    error = output.get("error")
    if error:
        return Text(f"error: {error.get('message')}", style="red")
    return Text(output.get("output") or "")


def print_outputs(console: Console, result: dict[str, Any]) -> None:
    outputs: list[dict[str, Any]] = result["outputs"]
    if len(outputs) > 1 and console.width >= MIN_COLUMN * len(outputs):
        table = Table(show_lines=True, expand=True)
        for output in outputs:
            table.add_column(output["model"], ratio=1, overflow="fold")
        table.add_row(*(answer_text(o) for o in outputs))
        table.add_row(*(Text(figures(o), style="dim") for o in outputs))
        console.print(table)
    else:
        for output in outputs:
            console.print(
                Panel(
                    Group(answer_text(output), Text(figures(output), style="dim")),
                    title=output["model"],
                    title_align="left",
                )
            )
    console.print(Text(f"session {result['session_id']}", style="dim"))


async def stream_completion(
    client: httpx.AsyncClient, body: dict[str, Any], echo: bool
) -> dict[str, Any]:
    """Stream a completion; with ``echo`` (one model) its text is written as it arrives,
    else a line as each model finishes. Returns the final answer."""
    async with client.stream("POST", PATH, json=body) as response:
        if response.status_code >= 400:
            raise APIError(response.status_code, await response.aread())
        splitter = SSESplitter()
        async for chunk in response.aiter_bytes():
            for raw in splitter.feed(chunk):
                event = parse_event(raw)
                if not event.data:
                    continue
                data = orjson.loads(event.data)
                if event.event == "delta" and echo:
                    sys.stdout.write(data["content"])
                    sys.stdout.flush()
                elif event.event == "done" and not echo:
                    state = "error" if data.get("error") else "done"
                    click.echo(f"{data['model']}: {state} ({figures(data)})", err=True)
                elif event.event == "end":
                    if echo:
                        sys.stdout.write("\n")
                    return dict(data)
                elif event.event == "error":
                    raise click.ClickException(str(data.get("error", {}).get("message")))
    raise click.ClickException("The gateway ended the stream without a result.")


@click.command()
@click.argument("prompt")
@click.option(
    "--model",
    "models",
    multiple=True,
    required=True,
    help="A model to ask (provider/model works too); repeat for several side by side.",
)
@click.option("--provider", help="The provider for every --model (else routing decides).")
@click.option("--system", "system_prompt", help="A system prompt.")
@click.option("--temperature", type=float, help="0 to 2.")
@click.option("--top-p", "top_p", type=float, help="0 to 1.")
@click.option("--max-tokens", "max_tokens", type=int, help="1 to 32768.")
@click.option("--session", "session_id", help="Continue this playground session (multi-turn).")
@click.option("--project", help="The project the session belongs to.")
@click.option("--stream", is_flag=True, help="Stream the answers as they arrive.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer JSON.")
@click.option(
    "--url",
    envvar="SPANLAB_URL",
    help="A running gateway (e.g. http://127.0.0.1:8080). Without it the command runs"
    " the gateway in process on --db/--config.",
)
@CONFIG_OPTION
@DB_OPTION
def playground(
    prompt: str,
    models: Sequence[str],
    provider: str | None,
    system_prompt: str | None,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    session_id: str | None,
    project: str | None,
    stream: bool,
    as_json: bool,
    url: str | None,
    config_path: Path | None,
    db: str | None,
) -> None:
    """Ask one or several models PROMPT and print the answers side by side."""
    settings = load_settings(config_path, **({"db": db} if db else {}))
    body: dict[str, Any] = {"prompt": prompt, "models": list(models), "stream": stream}
    optional = {
        "provider": provider,
        "system_prompt": system_prompt,
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "session_id": session_id,
        "project_id": project,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    echo = stream and len(models) == 1 and not as_json

    async def work(client: httpx.AsyncClient) -> dict[str, Any]:
        if stream:
            return await stream_completion(client, body, echo)
        result: dict[str, Any] = await call(client, "POST", PATH, json=body)
        return result

    result = run_async(settings, url, work)
    if as_json:
        print_json(result)
    elif echo:
        output = result["outputs"][0]
        if output.get("error"):
            click.echo(f"error: {output['error'].get('message')}", err=True)
        click.echo(figures(output))
        click.echo(f"session {result['session_id']}")
    else:
        print_outputs(terminal(), result)
    if all(o.get("error") for o in result["outputs"]):
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(playground)
