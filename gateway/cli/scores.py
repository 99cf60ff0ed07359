"""``spanlab scores ...`` and ``spanlab metrics ...``: scores and metric definitions
from a terminal.

Every command speaks the HTTP API of `gateway.api.scores` (see `gateway.cli.client`):
with ``--url`` (or ``SPANLAB_URL``) to a running gateway, otherwise to one run in
process on ``--db``/``--config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson
from rich.text import Text

from gateway.cli.client import call, run_async
from gateway.cli.common import (
    api_options,
    list_table,
    load_settings,
    print_json,
    short_time,
    terminal,
)


def _value(score: dict[str, Any]) -> str:
    if score.get("error"):
        return f"error: {score['error'].get('type') or '?'}"
    if score.get("label") is not None:
        return str(score["label"])
    value = score.get("value")
    return "-" if value is None else f"{value:g}"


@click.group()
def scores() -> None:
    """Scores on experiment runs and spans."""


@scores.command("list")
@click.argument("experiment_id")
@click.option("--metric", help="Only scores under this metric key.")
@click.option("--source", help="Only scores from this source (human, api, evaluator:NAME).")
@api_options
def scores_list(
    experiment_id: str,
    metric: str | None,
    source: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """List an experiment's scores, oldest first."""
    params = {k: v for k, v in {"metric": metric, "source": source}.items() if v}
    settings = load_settings(config_path, db=db)
    page = run_async(
        settings,
        url,
        lambda c: call(c, "GET", f"/experiments/{experiment_id}/scores", params=params),
    )
    columns = ("score", "created", "metric", "value", "source", "variant", "run")
    table = list_table(page["data"], as_json, "No scores.", columns, "note")
    if table is None:
        return
    for score in page["data"]:
        table.add_row(
            score["id"],
            short_time(score["created_at"]),
            Text(score["metric_key"]),
            Text(_value(score)),
            Text(score["source"]),
            score["variant_id"] or "-",
            score["run_id"] or "-",
            Text((score["note"] or "").replace("\n", " ")),
        )
    terminal().print(table)


@scores.command("add")
@click.option("--run", "run_id", help="On this experiment run.")
@click.option("--span", "span_id", help="On this span (its run's, if it is a run's result).")
@click.option("--metric", "metric_key", required=True, help="The metric's key.")
@click.option("--value", required=True, help="A number, true/false, or a category.")
@click.option("--note", help="Why.")
@api_options
def scores_add(
    run_id: str | None,
    span_id: str | None,
    metric_key: str,
    value: str,
    note: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Add a score on a run or a span (the metric is created on first use)."""
    if (run_id is None) == (span_id is None):
        raise click.UsageError("Give one of --run and --span.")
    path = f"/experiments/runs/{run_id}/scores" if run_id else f"/spans/{span_id}/scores"
    parsed: Any
    try:  # a number or a boolean as JSON; anything else is a category
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = value
    if not isinstance(parsed, bool | int | float):
        parsed = value
    body = {"metricKey": metric_key, "value": parsed, "source": "api"}
    if note is not None:
        body["note"] = note
    settings = load_settings(config_path, db=db)
    score = run_async(settings, url, lambda c: call(c, "POST", path, json=body))["score"]
    if as_json:
        print_json(score)
        return
    click.echo(f"Score {score['id']}: {score['metric_key']} = {_value(score)}")


@click.group()
def metrics() -> None:
    """Metric definitions: what a score under a key means, and which way is better."""


@metrics.command("list")
@click.option("--project", help="This project's metrics (default: the default project).")
@api_options
def metrics_list(
    project: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """List the metric definitions by key."""
    params = {"project": project} if project else {}
    settings = load_settings(config_path, db=db)
    page = run_async(settings, url, lambda c: call(c, "GET", "/metric-definitions", params=params))
    columns = ("key", "kind", "better", "range / categories")
    table = list_table(page["data"], as_json, "No metric definitions.", columns, "name")
    if table is None:
        return
    for metric in page["data"]:
        if metric["kind"] == "categorical":
            shape = ", ".join(metric["categories"] or [])
        elif metric["kind"] == "numeric":
            low, high = metric["min_value"], metric["max_value"]
            lower = "-inf" if low is None else f"{low:g}"
            shape = f"{lower} .. {'inf' if high is None else f'{high:g}'}"
        else:
            shape = "true / false"
        table.add_row(
            Text(metric["key"]),
            metric["kind"],
            metric["direction"],
            Text(shape),
            Text(metric["name"]),
        )
    terminal().print(table)


@metrics.command("create")
@click.argument("key")
@click.option("--name", help="A readable name (default: the key).")
@click.option("--description")
@click.option(
    "--kind",
    type=click.Choice(["numeric", "boolean", "categorical"]),
    default="numeric",
    show_default=True,
)
@click.option("--min", "min_value", type=float, help="numeric: the lowest value allowed.")
@click.option("--max", "max_value", type=float, help="numeric: the highest value allowed.")
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="categorical: a category (repeat, worst to best).",
)
@click.option("--lower-is-better", is_flag=True, help="Lower values are better.")
@click.option("--project")
@api_options
def metrics_create(
    key: str,
    name: str | None,
    description: str | None,
    kind: str,
    min_value: float | None,
    max_value: float | None,
    categories: tuple[str, ...],
    lower_is_better: bool,
    project: str | None,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Define a metric."""
    body: dict[str, Any] = {
        "key": key,
        "kind": kind,
        "direction": "lower" if lower_is_better else "higher",
    }
    optional = {
        "name": name,
        "description": description,
        "min_value": min_value,
        "max_value": max_value,
        "categories": list(categories) or None,
        "project": project,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    settings = load_settings(config_path, db=db)
    metric = run_async(settings, url, lambda c: call(c, "POST", "/metric-definitions", json=body))[
        "metric"
    ]
    if as_json:
        print_json(metric)
        return
    click.echo(f"Metric {metric['key']} ({metric['kind']}) defined.")


@metrics.command("delete")
@click.argument("key")
@click.option("--project")
@click.option("--force", is_flag=True, help="Also when it has scores (they are deleted).")
@api_options
def metrics_delete(
    key: str,
    project: str | None,
    force: bool,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Delete a metric definition (with its scores only with --force)."""
    params = {
        k: v for k, v in {"project": project, "force": "true" if force else None}.items() if v
    }
    settings = load_settings(config_path, db=db)
    result = run_async(
        settings, url, lambda c: call(c, "DELETE", f"/metric-definitions/{key}", params=params)
    )
    if as_json:
        print_json(result)
        return
    click.echo(f"Deleted metric {key} and {result['deleted_scores']} score(s).")


def register(cli: click.Group) -> None:
    cli.add_command(scores)
    cli.add_command(metrics)
