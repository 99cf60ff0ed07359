"""CI gating for ``spanlab experiments run``: after a matrix run, check its results
(``GET /experiments/{id}/results``) against assertions and the baseline, and exit
with a code a CI system acts on.

    spanlab experiments run ID --assert "correctness>=0.8" --assert "cost_per_cell<=0.002"
        --baseline v1 --fail-on-regression --junit results.xml

Exit codes: 0 every check passed; 1 an assertion failed, or (with
``--fail-on-regression``) a variant is significantly worse than the baseline on a
metric; 2 more of the run's cells failed than ``--max-error-rate`` allows (the quality
figures would not be worth checking). With gating on, failed cells within that
threshold do not fail the command by themselves.

An assertion is ``[VARIANT:]NAME OP NUMBER``: NAME a metric key (its mean, or its pass
rate as a share 0-1) or one of `BUILT_IN`; OP one of ``>= <= > < == !=``. Without a
VARIANT it is checked on every variant of the run. ``--junit FILE`` writes one
testcase per assertion and variant, per regression check and for the error rate;
``--json`` prints the summary as one JSON document.
"""

from __future__ import annotations

import functools
import operator
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.cli.client import call, run_async, send
from gateway.cli.common import api_options, format_cost, load_settings, print_json, terminal

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_RUN_ERRORS = 2
EXIT_INTERRUPTED = 130

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
# Figures of a variant that are not scores: name -> the results' field.
BUILT_IN = {
    "cost_per_cell": "cost_per_cell_usd",
    "cost_total": "cost_total_usd",
    "judge_cost": "judge_cost_usd",
    "latency_p50": "latency_p50_ms",
    "latency_p95": "latency_p95_ms",
    "ttft_p50": "ttft_p50_ms",
    "error_rate": "error_rate",
    "thumbs_up_rate": "thumbs_up_rate",
}
ASSERTION = re.compile(
    r"^\s*(?:(?P<variant>[^:<>=!]+):\s*)?(?P<name>[A-Za-z0-9_.\-]+)\s*"
    r"(?P<op>>=|<=|==|!=|>|<)\s*(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True, slots=True)
class Assertion:
    text: str
    name: str
    op: str
    threshold: float
    variant: str | None = None

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)


@dataclass(frozen=True, slots=True)
class GateOptions:
    assertions: tuple[Assertion, ...] = ()
    baseline: str | None = None
    fail_on_regression: bool = False
    junit: Path | None = None
    max_error_rate: float = 0.1

    @property
    def active(self) -> bool:
        return bool(self.assertions or self.fail_on_regression or self.junit)


@dataclass(slots=True)
class Check:
    """One check, as a JUnit testcase: ``failure`` None passed; ``skipped`` says why it
    could not be decided."""

    group: str  # assertions, regressions, run
    name: str
    failure: str | None = None
    skipped: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def parse_assertion(text: str) -> Assertion:
    match = ASSERTION.match(text)
    if match is None:
        raise click.BadParameter(
            f"{text!r} is not NAME OP NUMBER (e.g. correctness>=0.8, v2:cost_per_cell<=0.002)",
            param_hint="--assert",
        )
    variant = match["variant"].strip() if match["variant"] else None
    return Assertion(text.strip(), match["name"], match["op"], float(match["number"]), variant)


def _parse_all(ctx: click.Context, param: click.Parameter, value: Any) -> tuple[Assertion, ...]:
    return tuple(parse_assertion(v) for v in value or ())


def options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The gating options, handed to ``command`` as one ``gate: GateOptions``."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        assertions: tuple[Assertion, ...],
        baseline: str | None,
        fail_on_regression: bool,
        junit: Path | None,
        max_error_rate: float,
        **kwargs: Any,
    ) -> Any:
        gate = GateOptions(assertions, baseline, fail_on_regression, junit, max_error_rate)
        return command(*args, gate=gate, **kwargs)

    decorators = [
        click.option(
            "--assert",
            "assertions",
            multiple=True,
            callback=_parse_all,
            help='Gate: "[VARIANT:]NAME OP NUMBER", e.g. "correctness>=0.8"; repeatable.',
        ),
        click.option("--baseline", help="Gate: the variant (name or id) compared against."),
        click.option(
            "--fail-on-regression",
            is_flag=True,
            help="Gate: exit 1 when a variant is significantly worse than the baseline.",
        ),
        click.option(
            "--junit",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Gate: write the checks as JUnit XML to this file.",
        ),
        click.option(
            "--max-error-rate",
            type=click.FloatRange(0, 1),
            default=0.1,
            show_default=True,
            help="Gate: exit 2 when more than this share of the cells failed.",
        ),
    ]
    decorated: Callable[..., Any] = wrapper
    for decorator in reversed(decorators):
        decorated = decorator(decorated)
    return decorated


# --- checking ------------------------------------------------------------------------


def _variants_for(assertion: Assertion, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if assertion.variant is None:
        return variants
    return [v for v in variants if assertion.variant in (v["id"], v["name"])]


def assertion_checks(assertion: Assertion, results: dict[str, Any]) -> list[Check]:
    chosen = _variants_for(assertion, results["variants"])
    if not chosen:
        return [Check("assertions", assertion.text, failure=f"no variant {assertion.variant!r}")]
    checks = []
    for variant in chosen:
        name = f"{variant['name']}: {assertion.name}{assertion.op}{assertion.threshold:g}"
        if assertion.name in BUILT_IN:
            value = variant.get(BUILT_IN[assertion.name])
        elif assertion.name in variant["metrics"]:
            value = variant["metrics"][assertion.name]["value"]
        else:
            checks.append(
                Check("assertions", name, failure=f"no figure {assertion.name!r} in the results")
            )
            continue
        details = {"variant": variant["name"], "assertion": assertion.text, "value": value}
        if value is None:
            checks.append(Check("assertions", name, failure="no value", details=details))
        elif assertion.holds(float(value)):
            checks.append(Check("assertions", name, details=details))
        else:
            failure = f"{assertion.name} is {value:g}, not {assertion.op} {assertion.threshold:g}"
            checks.append(Check("assertions", name, failure=failure, details=details))
    return checks


def regression_checks(results: dict[str, Any]) -> list[Check]:
    names = {v["id"]: v["name"] for v in results["variants"]}
    checks = []
    for c in results["comparisons"]:
        name = f"{names.get(c['variant'])} vs {names.get(c['baseline'])}: {c['metric']}"
        details = {
            "variant": names.get(c["variant"]),
            "baseline": names.get(c["baseline"]),
            "metric": c["metric"],
            "outcome": c["outcome"],
            "difference": c["difference"],
            "p_adjusted": c["p_adjusted"],
            "verdict": c["verdict"],
        }
        if c["outcome"] == "regression":
            checks.append(Check("regressions", name, failure=c["verdict"], details=details))
        elif c["outcome"] == "too_few_inputs":
            checks.append(Check("regressions", name, skipped=c["verdict"], details=details))
        else:
            checks.append(Check("regressions", name, details=details))
    return checks


def error_rate(results: dict[str, Any]) -> float | None:
    cells: int = sum(v["cells"] for v in results["variants"])
    if not cells:
        return None
    failed: int = sum(v["errors"] + v["not_run"] for v in results["variants"])
    return failed / cells


def evaluate(results: dict[str, Any], gate: GateOptions) -> tuple[int, list[Check]]:
    """The exit code and the checks behind it."""
    rate = error_rate(results)
    allowed = f"at most {gate.max_error_rate:.0%} of the cells failed"
    if rate is None:
        run_check = Check("run", allowed, failure="the run has no cells")
    elif rate > gate.max_error_rate:
        run_check = Check("run", allowed, failure=f"{rate:.0%} of the cells failed")
    else:
        run_check = Check("run", allowed)
    run_check.details = {"error_rate": rate, "max_error_rate": gate.max_error_rate}
    checks = [run_check]
    for assertion in gate.assertions:
        checks.extend(assertion_checks(assertion, results))
    if gate.fail_on_regression:
        checks.extend(regression_checks(results))
    if run_check.failure:
        return EXIT_RUN_ERRORS, checks
    if any(c.failure for c in checks):
        return EXIT_FAILED, checks
    return EXIT_OK, checks


def junit_xml(checks: list[Check], experiment_id: str) -> bytes:
    """The checks as JUnit XML: one testsuite per group, one testcase per check."""
    root = ET.Element("testsuites", name=f"spanlab {experiment_id}")
    for group in ("run", "assertions", "regressions"):
        own = [c for c in checks if c.group == group]
        if not own:
            continue
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"spanlab.{group}",
            tests=str(len(own)),
            failures=str(sum(1 for c in own if c.failure)),
            skipped=str(sum(1 for c in own if c.skipped)),
            errors="0",
        )
        for check in own:
            case = ET.SubElement(suite, "testcase", classname=f"spanlab.{group}", name=check.name)
            if check.failure:
                ET.SubElement(case, "failure", message=check.failure).text = check.failure
            elif check.skipped:
                ET.SubElement(case, "skipped", message=check.skipped)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


async def fetch(
    client: httpx.AsyncClient,
    experiment_id: str,
    *,
    run_id: str | None = None,
    baseline: str | None = None,
    metric: str | None = None,
) -> dict[str, Any]:
    params = {k: v for k, v in (("run", run_id), ("baseline", baseline), ("metric", metric)) if v}
    results: dict[str, Any] = await call(
        client, "GET", f"/experiments/{experiment_id}/results", params=params or None
    )
    return results


def report(results: dict[str, Any], gate: GateOptions, as_json: bool, console: Console) -> int:
    """Gate ``results``: the exit code; the checks shown (or printed as JSON), and
    written as JUnit when asked."""
    experiment_id = str(results["experiment_id"])
    code, checks = evaluate(results, gate)
    if gate.junit is not None:
        gate.junit.write_bytes(junit_xml(checks, experiment_id))
    if as_json:
        print_json(
            {
                "experiment_id": experiment_id,
                "run_id": (results.get("run") or {}).get("id"),
                "exit_code": code,
                "passed": code == EXIT_OK,
                "checks": [
                    {
                        "group": c.group,
                        "name": c.name,
                        "passed": c.failure is None,
                        "skipped": c.skipped is not None,
                        "message": c.failure or c.skipped,
                        **c.details,
                    }
                    for c in checks
                ],
                "verdicts": [c["verdict"] for c in results["comparisons"]],
            }
        )
        return code
    for c in checks:
        mark = "[green]PASS[/green]"
        if c.failure or c.skipped:
            mark = "[red]FAIL[/red]" if c.failure else "[yellow]SKIP[/yellow]"
        why = c.failure or c.skipped
        console.print(f"{mark} {escape(c.name)}" + (f": {escape(why)}" if why else ""))
    show_verdicts(results, console)
    return code


def show_verdicts(results: dict[str, Any], console: Console) -> None:
    for comparison in results["comparisons"]:
        console.print(comparison["verdict"], markup=False, highlight=False)
    for line in (results.get("corrections"), (results.get("cost_quality") or {}).get("verdict")):
        if line:
            console.print(line, markup=False, highlight=False)


async def check(
    client: httpx.AsyncClient,
    experiment_id: str,
    run_code: int,
    gate: GateOptions,
    as_json: bool,
    console: Console,
) -> int:
    """After a matrix run (exit ``run_code``): gate its results (the latest run).
    Without gating options the run's own code stands."""
    if not gate.active or run_code == EXIT_INTERRUPTED:
        return run_code
    return report(
        await fetch(client, experiment_id, baseline=gate.baseline), gate, as_json, console
    )


def results_table(results: dict[str, Any]) -> Table:
    run = (results.get("run") or {}).get("id") or "none"
    table = Table(title=f"Results of run {run}")
    metrics = [m["key"] for m in results["metrics"]]
    for column in ("variant", "cells", "errors", "p50 ms", "cost/cell $", *metrics):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for v in results["variants"]:
        figures = []
        for key in metrics:
            f = v["metrics"].get(key) or {}
            value, low, high = f.get("value"), f.get("ci_low"), f.get("ci_high")
            text = "-" if value is None else f"{value:.3g}"
            if low is not None and high is not None:
                text += f" [{low:.3g}, {high:.3g}]"
            figures.append(text)
        name = v["name"] + (" (baseline)" if v["id"] == results["baseline"] else "")
        p50 = v["latency_p50_ms"]
        table.add_row(
            name,
            str(v["cells"]),
            str(v["errors"]),
            "-" if p50 is None else f"{p50:.0f}",
            format_cost(v["cost_per_cell_usd"]),
            *figures,
        )
    return table


@click.command("results")
@click.argument("experiment_id")
@click.option("--run", "run_id", help="A matrix run id (default: the latest).")
@click.option("--metric", help="The primary metric for cost against quality.")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results as CSV (one row per variant x metric) to this file.",
)
@options
@api_options
def experiments_results(
    experiment_id: str,
    run_id: str | None,
    metric: str | None,
    csv_path: Path | None,
    gate: GateOptions,
    url: str | None,
    config_path: Path | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Show a matrix run's results: per variant, and against the baseline in words.
    With --assert/--fail-on-regression/--junit, gate them as `experiments run` does
    (exit 0/1/2) without running anything."""
    settings = load_settings(config_path, db=db)
    console = terminal()
    csv_text: list[bytes] = []  # written once the gateway is done with

    async def work(client: httpx.AsyncClient) -> int:
        results = await fetch(
            client, experiment_id, run_id=run_id, baseline=gate.baseline, metric=metric
        )
        if csv_path is not None:
            params = {
                k: v
                for k, v in (
                    ("run", (results.get("run") or {}).get("id")),
                    ("baseline", gate.baseline),
                    ("metric", metric),
                    ("format", "csv"),
                )
                if v
            }
            response = await send(
                client, "GET", f"/experiments/{experiment_id}/results", params=params
            )
            csv_text.append(response.content)
        if gate.active:
            return report(results, gate, as_json, console)
        if as_json:
            print_json(results)
            return EXIT_OK
        if results.get("message"):
            console.print(results["message"], markup=False)
        if results["variants"]:
            console.print(results_table(results))
        show_verdicts(results, console)
        return EXIT_OK

    code = run_async(settings, url, work)
    if csv_path is not None and csv_text:
        csv_path.write_bytes(csv_text[0])
    if code:
        sys.exit(code)
