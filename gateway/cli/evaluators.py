"""Python evaluators for scripts and CI: ``spanlab experiments run ID --evaluator
mypkg.checks:is_polite`` (repeatable).

An evaluator is a function of one cell, `gateway.evaluation.cell.EvalCell` (input,
output text, tool calls, expected output, latency, cost, tokens, variant...), that
returns a score:

* ``True``/``False``: pass/fail (a boolean metric);
* a number: a numeric metric;
* `EvalResult` (or a dict with ``value`` and optionally ``note``, ``metric``): a value
  with a note saying why, under another metric than the function's name if given;
* raising an exception: an evaluator error for that cell (its message kept), never a
  low score. An ``async def`` evaluator is awaited.

It runs HERE, in the CLI's process, over the run's completed cells as the gateway
gives them (``GET /experiments/{id}/evaluation/cells``); only the scores go back
(``POST /experiments/{id}/evaluation/scores``, source ``evaluator:<module:function>``,
metric: the function's name unless the result names one). No code is ever sent.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click
import httpx
from rich.console import Console

from gateway.cli.client import APIError, call
from gateway.evaluation.cell import EvalCell

POST_BATCH = 1000
# How long a run's command waits for the gateway's evaluators to score its cells.
WAIT_FOR_EVALUATORS_S = 600.0


@dataclass(frozen=True, slots=True)
class EvalResult:
    """What an evaluator may return besides a bare bool or number."""

    value: bool | float
    note: str | None = None
    metric: str | None = None


@dataclass(frozen=True, slots=True)
class PythonEvaluator:
    spec: str  # module:function
    function: Callable[[EvalCell], Any]

    @property
    def source(self) -> str:
        return "evaluator:" + self.spec

    @property
    def metric(self) -> str:
        return self.spec.rsplit(":", 1)[1].split(".")[-1]


def load_evaluator(spec: str) -> PythonEvaluator:
    """``module:function`` imported (the working directory is on the path, so a local
    ``checks.py`` works); a usage error (exit 2) when it cannot be."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise click.BadParameter(f"{spec!r} is not module:function.", param_hint="--evaluator")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failing as it loads
        raise click.BadParameter(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}", param_hint="--evaluator"
        ) from None
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise click.BadParameter(
                f"{module_name!r} has no {attribute!r}.", param_hint="--evaluator"
            )
    if not callable(target):
        raise click.BadParameter(f"{spec!r} is not a function.", param_hint="--evaluator")
    return PythonEvaluator(spec, target)


def evaluators_option(
    ctx: click.Context, param: click.Parameter, value: Sequence[str]
) -> list[PythonEvaluator]:
    """The ``--evaluator`` option's callback: each loaded before anything runs."""
    return [load_evaluator(spec) for spec in value]


def _as_score(result: Any) -> tuple[bool | float, str | None, str | None]:
    if isinstance(result, EvalResult):
        value, note, metric = result.value, result.note, result.metric
    elif isinstance(result, dict) and "value" in result:
        value, note, metric = result["value"], result.get("note"), result.get("metric")
    else:
        value, note, metric = result, None, None
    if isinstance(value, bool):
        return value, None if note is None else str(note), metric
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value), None if note is None else str(note), metric
    raise TypeError(f"returned {result!r}: expected a bool, a number or EvalResult")


async def _score(evaluator: PythonEvaluator, cell: EvalCell) -> dict[str, Any]:
    score: dict[str, Any] = {"runId": cell.run_id, "source": evaluator.source}
    try:
        result = evaluator.function(cell)
        if inspect.isawaitable(result):
            result = await result
        value, note, metric = _as_score(result)
    except Exception as exc:  # the evaluator's own failure: an error for this cell
        score["metricKey"] = evaluator.metric
        score["error"] = {
            "type": "python_evaluator_error",
            "message": f"{type(exc).__name__}: {exc}"[:2000],
        }
        return score
    score.update(metricKey=metric or evaluator.metric, value=value)
    if note is not None:
        score["note"] = note
    return score


async def wait_for_evaluators(
    client: httpx.AsyncClient,
    experiment_id: str,
    status: Console,
    timeout_s: float = WAIT_FOR_EVALUATORS_S,
) -> None:
    """Until no finished cell of the experiment waits for its scores (a judge takes a
    while after the run ends); a gateway without evaluators (404) is not waited for."""
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            progress = await call(client, "GET", f"/experiments/{experiment_id}/evaluate")
        except APIError as exc:
            if exc.status == 404:
                return
            raise
        pending = int((progress or {}).get("pending_cells") or 0)
        if not pending:
            return
        if time.monotonic() > deadline:
            status.print(f"{pending} cell(s) still being scored; not waiting longer")
            return
        if not told:
            status.print(f"waiting for the evaluators to score {pending} cell(s)...")
            told = True
        await asyncio.sleep(0.2)


async def run_python_evaluators(
    client: httpx.AsyncClient,
    experiment_id: str,
    run_id: str,
    evaluators: Sequence[PythonEvaluator],
    status: Console,
) -> list[dict[str, Any]]:
    """Wait until the gateway's own evaluators have scored the run's cells (so what
    follows reads every score), then score the completed cells with ``evaluators``,
    post the scores, and say per evaluator how it went; returns the scores posted."""
    await wait_for_evaluators(client, experiment_id, status)
    if not evaluators:
        return []
    found = await call(
        client, "GET", f"/experiments/{experiment_id}/evaluation/cells", params={"run": run_id}
    )
    cells = [EvalCell.from_dict(c) for c in found.get("data") or []]
    scores = [await _score(e, cell) for e in evaluators for cell in cells]
    for start in range(0, len(scores), POST_BATCH):
        await call(
            client,
            "POST",
            f"/experiments/{experiment_id}/evaluation/scores",
            json={"scores": scores[start : start + POST_BATCH]},
        )
    for evaluator in evaluators:
        mine = [s for s in scores if s["source"] == evaluator.source]
        errors = sum(1 for s in mine if "error" in s)
        values = [s["value"] for s in mine if "value" in s]
        if values and all(isinstance(v, bool) for v in values):
            shown = f"{sum(values)}/{len(values)} passed"
        elif values:
            shown = f"mean {sum(values) / len(values):.3f} over {len(values)} cell(s)"
        else:
            shown = "no score"
        status.print(f"evaluator {evaluator.spec}: {shown}, {errors} error(s)")
    return scores
