"""`EvaluationService`: an experiment's evaluators (configuration), running them after
each matrix cell, and re-running them over existing results.

After each cell: the app hands `after_cell` to the matrix engine
(`MatrixService.on_cell_done`), which calls it once a cell is stored. It only
schedules a task and returns, so the cell's own status and the run's pace never wait
for evaluation, and nothing of it is on the proxy's request path. The task reads the
experiment's enabled evaluators, scores the cell (built-ins in process, judges through
the gateway, at most ``judge_concurrency`` at once) and writes the scores with
`gateway.evaluation.recording.record_scores`. A failure is logged, never raised.

Re-running (``POST /experiments/{id}/evaluate``) is a background job (judges are
slow): it answers 202 with the job at once; ``GET /experiments/{id}/evaluate`` gives
its progress (cells done of total, scores and errors written) and the count of
after-cell evaluations still pending. One job per experiment at a time. The model
is not called again: the cells' stored outputs and captured responses are judged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.config import Settings
from gateway.errors import Conflict, InvalidRequest, NotFound, SpanlabError
from gateway.evaluation.cell import EvalCell, cell_of
from gateway.evaluation.evaluator_base import CannotJudge, Outcome
from gateway.evaluation.evaluators import (
    JUDGE,
    TYPES,
    EvaluatorConfig,
    check_config,
    evaluate_builtin,
)
from gateway.evaluation.judge import Judge
from gateway.evaluation.recording import EVALUATOR_SOURCE, ScoreInput, ScoreWriter, record_scores
from gateway.store.evaluation import EvaluationStore, EvaluatorRecord, new_evaluator_id
from gateway.store.experiments import now_iso
from gateway.store.matrix import SqlMatrixStore
from gateway.store.spans import SpanStore

logger = logging.getLogger(__name__)

# Cells a re-run evaluates at once (a judge's calls are bounded apart, by the judge).
RERUN_CONCURRENCY = 8
# How long the evaluators and inputs read for one finished cell serve the next ones.
SETUP_TTL_S = 1.0
# The relay signal carrying a process's count of cells still being scored.
PENDING_SIGNAL = "evaluation-pending"
JOB_FIELDS = frozenset({"evaluator_ids", "matrix_run_id", "cell_ids"})
JOB_ALIASES = {
    "evaluatorIds": "evaluator_ids",
    "matrixRunId": "matrix_run_id",
    "runId": "matrix_run_id",
    "run_id": "matrix_run_id",
    "cellIds": "cell_ids",
}


def source_of(evaluator: EvaluatorRecord) -> str:
    return EVALUATOR_SOURCE + evaluator.name


@dataclass
class EvaluationJob:
    """A re-run of evaluators over existing cells, and how far it has come."""

    id: str
    experiment_id: str
    evaluator_ids: list[str]
    total: int
    started_at: str
    status: str = "running"  # running, completed, failed, cancelled
    done: int = 0
    scores: int = 0
    errors: int = 0
    ended_at: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _ids(body: Mapping[str, Any], name: str, camel: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{camel} must be a list of ids.", param=camel)
    return list(dict.fromkeys(value))


@dataclass
class EvaluationService:
    settings: Settings
    store: EvaluationStore
    matrix: SqlMatrixStore
    spans: SpanStore
    judge: Judge
    # Where scores go: the app sets `ScoringService.record_scores` (events, metrics).
    write_scores: ScoreWriter | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _pending: dict[str, int] = field(default_factory=dict)
    _jobs: dict[str, EvaluationJob] = field(default_factory=dict)
    _job_tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _unwritten: list[ScoreInput] = field(default_factory=list)
    _setups: dict[str, tuple[float, list[EvaluatorRecord], dict[str, dict[str, Any]]]] = field(
        default_factory=dict
    )
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Sends a signal to the other gateway processes (the app's relay), if any: this
    # process's count of cells still being scored, per experiment, so that the process
    # answering ``GET /experiments/{id}/evaluate`` counts the background process's too.
    signal: Callable[[str, dict[str, Any]], None] | None = None
    _origin: str = field(default_factory=lambda: secrets.token_hex(6))
    _peer_pending: dict[tuple[str, str], int] = field(default_factory=dict)

    # --- configuration -----------------------------------------------------------------

    async def evaluators(self, experiment_id: str) -> list[EvaluatorRecord]:
        return await self.store.list_evaluators(experiment_id)

    async def get(self, experiment_id: str, evaluator_id: str) -> EvaluatorRecord:
        found = await self.store.get_evaluator(experiment_id, evaluator_id)
        if found is None:
            raise NotFound(
                f"Experiment {experiment_id!r} has no evaluator {evaluator_id!r}.",
                param="evaluator_id",
            )
        return found

    async def _checked(
        self, experiment: Mapping[str, Any], body: Any, current: EvaluatorConfig | None
    ) -> EvaluatorConfig:
        config = check_config(body, current)
        if config.type == JUDGE:
            try:
                self.judge.check(config.params)
            except SpanlabError as exc:  # an unknown model or provider, no credential
                raise InvalidRequest(
                    f"The judge cannot be called: {exc.message}",
                    param="params.model",
                    code="judge_unroutable",
                ) from None
        metric = await self.store.get_metric(experiment.get("project_id"), config.metric_key)
        shape = TYPES[config.type].metric(config.params)
        if metric is not None and metric.kind != shape.kind:
            raise InvalidRequest(
                f"Metric {metric.key!r} is {metric.kind}; this evaluator gives"
                f" {shape.kind} scores. Choose another metricKey.",
                param="metricKey",
                code="metric_kind_mismatch",
            )
        return config

    async def add(self, experiment: Mapping[str, Any], body: Any) -> EvaluatorRecord:
        config = await self._checked(experiment, body, None)
        now = now_iso()
        record = EvaluatorRecord(
            id=new_evaluator_id(),
            experiment_id=experiment["id"],
            name=config.name,
            type=config.type,
            metric_key=config.metric_key,
            created_at=now,
            updated_at=now,
            params=config.params,
            enabled=config.enabled,
        )
        added = await self.store.add_evaluator(record)
        self._setups.pop(experiment["id"], None)  # after the write: none reads it stale
        if not added:
            raise Conflict(
                f"Experiment {experiment['id']!r} has an evaluator named {config.name!r}.",
                code="evaluator_exists",
                param="name",
            )
        return record

    async def update(
        self, experiment: Mapping[str, Any], evaluator_id: str, body: Any
    ) -> EvaluatorRecord:
        current = await self.get(experiment["id"], evaluator_id)
        config = await self._checked(
            experiment,
            body,
            EvaluatorConfig(
                current.name, current.type, current.metric_key, current.params, current.enabled
            ),
        )
        current.name, current.type = config.name, config.type
        current.metric_key, current.params = config.metric_key, config.params
        current.enabled, current.updated_at = config.enabled, now_iso()
        updated = await self.store.update_evaluator(current)
        self._setups.pop(experiment["id"], None)
        if not updated:
            raise Conflict(
                f"Experiment {experiment['id']!r} has an evaluator named {config.name!r}.",
                code="evaluator_exists",
                param="name",
            )
        return current

    async def delete(self, experiment: Mapping[str, Any], evaluator_id: str) -> None:
        """The evaluator goes; the scores it gave stay (they are results)."""
        deleted = await self.store.delete_evaluator(experiment["id"], evaluator_id)
        self._setups.pop(experiment["id"], None)
        if not deleted:
            raise NotFound(
                f"Experiment {experiment['id']!r} has no evaluator {evaluator_id!r}.",
                param="evaluator_id",
            )

    # --- scoring -----------------------------------------------------------------------

    async def _outcome(
        self, evaluator: EvaluatorRecord, cell: EvalCell, project_id: str | None
    ) -> ScoreInput:
        shape = TYPES[evaluator.type].metric(evaluator.params)
        base: dict[str, Any] = {
            "metric_key": evaluator.metric_key,
            "shape": shape,
            "source": source_of(evaluator),
            "run_id": cell.run_id,
            "experiment_id": cell.experiment_id,
            "project_id": project_id,
            "span_id": cell.span_id,
            "variant_id": cell.variant_id,
            "input_id": cell.input_id,
            "evaluator_id": evaluator.id,
            "created_by": "evaluator",
        }
        try:
            outcome: Outcome
            if evaluator.type == JUDGE:
                outcome = await self.judge.judge(cell, evaluator.params, evaluator.id, project_id)
            else:
                outcome = evaluate_builtin(evaluator.type, cell, evaluator.params)
        except CannotJudge as exc:
            return ScoreInput(
                **base,
                error=exc.as_error(),
                judge_span_id=exc.judge_span_id,
                judge_cost_usd=exc.judge_cost_usd,
            )
        return ScoreInput(
            **base,
            value=outcome.value,
            note=outcome.note,
            judge_span_id=outcome.judge_span_id,
            judge_cost_usd=outcome.judge_cost_usd,
        )

    async def score_cell(
        self,
        experiment: Mapping[str, Any],
        evaluators: Sequence[EvaluatorRecord],
        cell: EvalCell,
    ) -> list[ScoreInput]:
        """Every evaluator on one cell (judges concurrently), the scores written."""
        project_id = experiment.get("project_id")
        results = list(
            await asyncio.gather(*(self._outcome(e, cell, project_id) for e in evaluators))
        )
        await self._write(results)
        return results

    async def _write(self, results: list[ScoreInput]) -> None:
        """Write ``results``, coalesced with those of other cells that finish meanwhile:
        while one write transaction runs the next cells' scores queue, and the next
        writer takes them all at once (a matrix's own writes share the one write
        connection; a transaction per cell was as many again)."""
        self._unwritten.extend(results)
        async with self._write_lock:
            if not self._unwritten:
                return  # written by the writer before us
            batch: dict[tuple[str, str, str], ScoreInput] = {}
            for score in self._unwritten:  # one score per (cell, source, metric): the last
                batch[(score.run_id, score.source, score.metric_key)] = score
            self._unwritten = []
            await record_scores(self.store, list(batch.values()), self.write_scores)

    async def eval_cells(
        self, experiment: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]
    ) -> list[EvalCell]:
        """The records of stored cells, their tool calls read from their spans."""
        inputs = {i["id"]: i for i in await self.matrix.list_inputs(experiment["id"])}
        out: list[EvalCell] = []
        for cell in cells:
            span = None
            if cell.get("result_span_id"):
                span = await self.spans.get_span(cell["result_span_id"])
            response = (span or {}).get("response")
            out.append(cell_of(cell, inputs.get(cell.get("input_id") or ""), response))
        return out

    # --- after each cell -----------------------------------------------------------------

    def after_cell(
        self, experiment: Mapping[str, Any], cell: Mapping[str, Any], response: Any
    ) -> None:
        """The matrix engine's callback: schedule the cell's evaluation, return at once."""
        if cell.get("status") != "completed" or not cell.get("matrix_run_id"):
            return
        experiment_id = str(experiment["id"])
        self._pending[experiment_id] = self._pending.get(experiment_id, 0) + 1
        self._tell_pending(experiment_id)
        task = asyncio.create_task(self._after(dict(experiment), dict(cell), response))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after(self, experiment: dict[str, Any], cell: dict[str, Any], response: Any) -> None:
        try:
            evaluators, inputs = await self._setup_of(experiment["id"], cell.get("input_id"))
            if evaluators:
                item = inputs.get(cell.get("input_id") or "")
                await self.score_cell(experiment, evaluators, cell_of(cell, item, response))
        except asyncio.CancelledError:
            raise
        except Exception:  # never the cell's failure: it is stored already
            logger.exception("evaluating matrix cell %s failed", cell.get("id"))
        finally:
            left = self._pending.get(experiment["id"], 1) - 1
            if left > 0:
                self._pending[experiment["id"]] = left
            else:
                self._pending.pop(experiment["id"], None)
                self._setups.pop(experiment["id"], None)
            self._tell_pending(experiment["id"])

    def _tell_pending(self, experiment_id: str) -> None:
        if self.signal is not None:
            pending = self._pending.get(experiment_id, 0)
            data = {"from": self._origin, "experiment_id": experiment_id, "pending": pending}
            self.signal(PENDING_SIGNAL, data)

    def signalled(self, data: Mapping[str, Any]) -> None:
        """Another process's count of cells it is scoring for an experiment."""
        key = (str(data.get("from")), str(data.get("experiment_id")))
        pending = data.get("pending")
        if isinstance(pending, int) and pending > 0:
            self._peer_pending[key] = pending
        else:
            self._peer_pending.pop(key, None)

    async def _setup_of(
        self, experiment_id: str, input_id: str | None
    ) -> tuple[list[EvaluatorRecord], dict[str, dict[str, Any]]]:
        """The experiment's enabled evaluators and its inputs by id, read once for the
        cells that finish within `SETUP_TTL_S` (reading every input per cell is
        quadratic in a large matrix); a change of evaluators drops it at once."""
        now = time.monotonic()
        found = self._setups.get(experiment_id)
        if found is None or now - found[0] > SETUP_TTL_S or (input_id and input_id not in found[2]):
            every = await self.store.list_evaluators(experiment_id)
            inputs = {i["id"]: i for i in await self.matrix.list_inputs(experiment_id)}
            found = (now, [e for e in every if e.enabled], inputs)
            self._setups[experiment_id] = found
        return found[1], found[2]

    # --- re-running ------------------------------------------------------------------------

    async def start(self, experiment: Mapping[str, Any], body: Any) -> EvaluationJob:
        """Check the request, then re-run in the background (see the module docstring)."""
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise InvalidRequest("The body must be a JSON object.", param="body")
        body = {JOB_ALIASES.get(k, k): v for k, v in body.items()}
        unknown = sorted(set(body) - JOB_FIELDS)
        if unknown:
            raise InvalidRequest(
                f"Unknown field(s): {', '.join(unknown)}. Accepted: evaluatorIds, matrixRunId,"
                " cellIds.",
                param=unknown[0],
            )
        experiment_id = str(experiment["id"])
        running = self._jobs.get(experiment_id)
        if running is not None and running.status == "running":
            raise Conflict(
                f"Experiment {experiment_id!r} is being evaluated (job {running.id}).",
                code="evaluation_running",
            )
        evaluators = await self._chosen(experiment_id, _ids(body, "evaluator_ids", "evaluatorIds"))
        cells = await self._cells(
            experiment_id,
            body.get("matrix_run_id"),
            _ids(body, "cell_ids", "cellIds"),
        )
        job = EvaluationJob(
            id="evjob_" + secrets.token_hex(8),
            experiment_id=experiment_id,
            evaluator_ids=[e.id for e in evaluators],
            total=len(cells),
            started_at=now_iso(),
        )
        self._jobs[experiment_id] = job
        task = asyncio.create_task(self._run_job(dict(experiment), job, evaluators, cells))
        self._job_tasks[experiment_id] = task
        task.add_done_callback(lambda _: self._job_tasks.pop(experiment_id, None))
        return job

    async def _chosen(self, experiment_id: str, ids: list[str] | None) -> list[EvaluatorRecord]:
        every = await self.store.list_evaluators(experiment_id)
        if ids is None:
            chosen = [e for e in every if e.enabled]
        else:
            by_id = {e.id: e for e in every}
            missing = [i for i in ids if i not in by_id]
            if missing:
                raise NotFound(
                    f"Experiment {experiment_id!r} has no evaluator {missing[0]!r}.",
                    param="evaluatorIds",
                )
            chosen = [by_id[i] for i in ids]
        if not chosen:
            raise InvalidRequest(
                "No evaluator to run: add one, or enable one.",
                param="evaluatorIds",
                code="no_evaluators",
            )
        return chosen

    async def _cells(
        self, experiment_id: str, run_id: Any, cell_ids: list[str] | None
    ) -> list[dict[str, Any]]:
        """The completed cells to evaluate: of one matrix run, or of every run."""
        runs = await self.matrix.list_runs(experiment_id)
        if run_id is not None:
            if not isinstance(run_id, str) or not any(r["id"] == run_id for r in runs):
                raise NotFound(
                    f"Experiment {experiment_id!r} has no matrix run {run_id!r}.",
                    param="matrixRunId",
                )
            runs = [r for r in runs if r["id"] == run_id]
        cells = [c for run in runs for c in await self.matrix.cells(run["id"])]
        if cell_ids is not None:
            by_id = {c["id"]: c for c in cells}
            missing = [i for i in cell_ids if i not in by_id]
            if missing:
                raise NotFound(
                    f"No cell {missing[0]!r} in this experiment{' run' if run_id else ''}.",
                    param="cellIds",
                )
            cells = [by_id[i] for i in cell_ids]
        return [c for c in cells if c["status"] == "completed"]

    async def _run_job(
        self,
        experiment: dict[str, Any],
        job: EvaluationJob,
        evaluators: list[EvaluatorRecord],
        cells: list[dict[str, Any]],
    ) -> None:
        slots = asyncio.Semaphore(RERUN_CONCURRENCY)

        async def one(cell: EvalCell) -> None:
            async with slots:
                results = await self.score_cell(experiment, evaluators, cell)
            job.done += 1
            job.errors += sum(1 for r in results if r.error is not None)
            job.scores += sum(1 for r in results if r.error is None)

        try:
            records = await self.eval_cells(experiment, cells)
            await asyncio.gather(*(one(cell) for cell in records))
            job.status = "completed"
        except asyncio.CancelledError:
            job.status = "cancelled"
            raise
        except Exception as exc:
            logger.exception("re-running the evaluators of %s failed", experiment["id"])
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.ended_at = now_iso()

    def progress(self, experiment_id: str) -> dict[str, Any]:
        job = self._jobs.get(experiment_id)
        return {
            "job": None if job is None else job.as_dict(),
            "pending_cells": self._pending.get(experiment_id, 0)
            + sum(n for (_, eid), n in self._peer_pending.items() if eid == experiment_id),
        }

    async def wait(self, experiment_id: str | None = None) -> None:
        """Until the evaluations scheduled so far (of one experiment, or all) end."""
        while True:
            tasks = list(self._tasks)
            if experiment_id is None:
                tasks += list(self._job_tasks.values())
            elif experiment_id in self._job_tasks:
                tasks.append(self._job_tasks[experiment_id])
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)
            if all(t.done() for t in list(self._tasks)) and (
                experiment_id is None or experiment_id not in self._job_tasks
            ):
                return

    async def close(self) -> None:
        tasks = [*self._tasks, *self._job_tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
