"""The matrix: an experiment's variants x inputs x repetitions, each cell one call
through the proxy pipeline, run in the background.

`MatrixService.start` checks everything first (ids, an empty matrix, every cell's
rendered request, every route and credential) and only then writes the run and all its
cells (``pending``) in one transaction; a task the service owns then runs them, at most
``concurrency`` at a time. Each cell's span is a new trace labelled ``experiment``
whose attributes name the experiment, variant, input and repetition (and link to the
input's source span). An upstream 429 or 503 is retried (bounded, after its
Retry-After), counted on the cell and never taken for the model's failure.

Several processes on one database share a run (`gateway.experiments.matrix_shared`):
each claims pending cells atomically (`gateway.store.cell_claims`), at most its
concurrency at a time, so no cell runs twice; the others join a run when it starts (a
signal through the app's relay, else their poll). A process that dies leaves its
cells' leases to pass; its cells in flight go back to pending and a live process runs
them again. The run ends once, in whichever process finds it done first.

Cancel: stored with the run, so every process running its cells sees it; the cells in
flight are cancelled (their upstream calls with them) and marked ``cancelled``; cells
not started stay ``pending``. Resume runs a run's unfinished cells (pending, failed,
cancelled, interrupted) and any missing ones, into the same run. At startup, cells a
stopped gateway left ``running`` become ``interrupted`` (or pending, when another live
process runs their run), and its runs no live process carries too.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.capture.pricing import PriceTable
from gateway.capture.redaction import credential_values, scrub_values
from gateway.capture.span import STATUS_OK, SpanContext, finalize, new_span_id, new_trace_id
from gateway.config import Settings
from gateway.datasets.from_spans import tool_calls
from gateway.errors import Conflict, NotFound, SpanlabError, ValidationFailed
from gateway.experiments.matrix_events import (
    MatrixObserver,
    ProgressHub,
    Publish,
    RunClock,
    paced,
)
from gateway.experiments.matrix_options import REPLAY_FIELDS as REPLAY_FIELDS
from gateway.experiments.matrix_options import (
    RunOptions,
    chosen_items,
    new_input_id,
    new_matrix_run_id,
    new_variant_id,
    retry_delay,
    seconds_between,
)
from gateway.experiments.matrix_options import matrix_experiment as matrix_experiment
from gateway.experiments.matrix_options import parse_run as parse_run
from gateway.experiments.matrix_shared import (
    CELL_ENDED,
    RUN_CANCEL,
    RUN_ENDED,
    RUN_STARTED,
    RUN_WAITING,
    SharedRuns,
    Signal,
)
from gateway.experiments.matrix_shared import unstoppable as unstoppable
from gateway.experiments.runner import (
    ATTR_EXPERIMENT,
    ATTR_RUN,
    LABEL,
    build_request,
    check_route,
    span_links,
)
from gateway.experiments.transfer import new_run_id
from gateway.experiments.variants import parse_inputs, parse_variant, render_cell
from gateway.metrics import Metrics
from gateway.proxy.pipeline import ProxyPipeline
from gateway.proxy.providers import Router
from gateway.proxy.providers.base import CREDENTIAL_HEADERS, provider_secret_values
from gateway.proxy.sink import CollectingSink
from gateway.store.cell_claims import CellClaims, RunState
from gateway.store.events import EventStore
from gateway.store.experiments import RunRecord, now_iso
from gateway.store.matrix import (
    UNFINISHED,
    InputRecord,
    MatrixRunRecord,
    SqlMatrixStore,
    VariantRecord,
)
from gateway.store.spans import SpanStore

logger = logging.getLogger(__name__)

ATTR_VARIANT = "spanlab.experiment.variant.id"
ATTR_VARIANT_NAME = "spanlab.experiment.variant.name"
ATTR_INPUT = "spanlab.experiment.input.id"
ATTR_INPUT_KEY = "spanlab.experiment.input.key"
ATTR_REPETITION = "spanlab.experiment.repetition"
ATTR_MATRIX_RUN = "spanlab.experiment.matrix_run.id"
RETRY_STATUSES = (429, 503)
MAX_RETRIES = 4
MAX_CELLS = 100_000
# How long a cancel waits for the other processes running the run's cells to stop them
# (they see it at their next poll, within a second, or at once by a signal).
CANCEL_WAIT_S = 5.0
# A seed-1 experiment's own call: the implicit first input of its matrix.
ORIGINAL_INPUT = "original"


@dataclass
class ActiveRun:
    run: dict[str, Any]
    experiment: dict[str, Any]
    credentials: list[tuple[str, str]]
    links: dict[str, list[dict[str, Any]]]
    task: asyncio.Task[None] | None = None
    clock: RunClock = field(default_factory=RunClock)
    charge: str | None = None  # the key its calls are counted for (quotas)
    # the limit the run waits on, while it does: {"limit", "until"} (Unix seconds)
    waiting: dict[str, Any] | None = None
    # Set when cells of the run went back to pending (a dead process's): claim more.
    more: asyncio.Event = field(default_factory=asyncio.Event)
    cancelling: bool = False
    started: set[str] = field(default_factory=set)  # cells whose task began


@dataclass
class MatrixService:
    settings: Settings
    store: SqlMatrixStore
    spans: SpanStore
    pipeline: ProxyPipeline
    prices: PriceTable
    router: Router
    observer: MatrixObserver = field(default_factory=MatrixObserver)
    hub: ProgressHub = field(default_factory=ProgressHub)
    _active: dict[str, ActiveRun] = field(default_factory=dict)
    _closing: bool = False
    # Called (experiment, cell, captured response) once a cell is stored: the app's
    # evaluation hook. It must only schedule work and return (`gateway.evaluation`).
    on_cell_done: Callable[[Mapping[str, Any], Mapping[str, Any], Any], None] | None = None
    # How a cell waits for a limit's window to free (tests replace it).
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # Reads an experiment (a run another process started: this one joins it).
    load_experiment: Callable[[str], Awaitable[dict[str, Any] | None]] | None = None
    # Whether another process runs this one's shared runs: `spanlab serve`'s background
    # process (gateway.background), while it is up. This process then starts, watches
    # and cancels runs, and runs only the cells no other process may run.
    runs_elsewhere: Callable[[], bool] = field(default=lambda: False)
    claims: CellClaims = field(init=False)
    shared: SharedRuns = field(init=False)

    def __post_init__(self) -> None:
        self.claims = CellClaims(self.store.db)
        self.shared = SharedRuns(self.claims, self.settings.matrix_lease_s)
        self.shared.holding = lambda: bool(self._active)

    def attach(
        self, metrics: Metrics, events: EventStore, publish: Publish, signal: Signal | None = None
    ) -> None:
        """The app's metrics, events table and ``/events`` fan-out (see `MatrixObserver`),
        and ``signal``: sends a signal to the other gateway processes, if any."""
        self.observer = MatrixObserver(metrics, events, publish)
        self.shared.signal = signal

    def signalled(self, data: Mapping[str, Any]) -> None:
        """A signal from another process (`gateway.experiments.matrix_shared`)."""
        what, experiment_id = data.get("what"), str(data.get("experiment_id"))
        if what in (RUN_STARTED, RUN_CANCEL):
            self.shared.wake()
        elif what == CELL_ENDED:
            self.hub.notify(experiment_id)
        elif what == RUN_ENDED:
            self.shared.heard_waiting(data)
            self.hub.notify(experiment_id, final=True)
        elif what == RUN_WAITING:
            self.shared.heard_waiting(data)
            self.hub.notify(experiment_id)

    def watch(self, load_experiment: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        """Start polling for runs other processes share (the app, once recovered)."""
        self.load_experiment = load_experiment
        self.shared.start(self.tick)

    # --- variants and inputs -----------------------------------------------------------

    async def add_variant(self, experiment: Mapping[str, Any], body: Any) -> dict[str, Any]:
        values = parse_variant(body, self.router)
        now = now_iso()
        record = VariantRecord(
            id=new_variant_id(),
            experiment_id=experiment["id"],
            name=values["name"],
            config=values["config"],
            position=0,
            created_at=now,
            updated_at=now,
            kind=values["kind"],
            description=values.get("description"),
            system_prompt=values.get("system_prompt"),
        )
        return await self.store.insert_variant(record.as_dict())

    async def variant(self, experiment_id: str, variant_id: str) -> dict[str, Any]:
        for variant in await self.store.list_variants(experiment_id):
            if variant["id"] == variant_id:
                return variant
        raise NotFound(f"Experiment {experiment_id!r} has no variant {variant_id!r}.", param="id")

    async def update_variant(
        self, experiment: Mapping[str, Any], variant_id: str, body: Any
    ) -> dict[str, Any]:
        current = await self.variant(experiment["id"], variant_id)
        values = parse_variant(body, self.router, current)
        updated = {**current, **values, "updated_at": now_iso()}
        await self.store.update_variant(updated)
        return updated

    async def delete_variant(self, experiment: Mapping[str, Any], variant_id: str) -> None:
        if not await self.store.delete_variant(experiment["id"], variant_id):
            raise NotFound(
                f"Experiment {experiment['id']!r} has no variant {variant_id!r}.", param="id"
            )

    async def add_inputs(
        self, experiment: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        now = now_iso()
        records = [
            InputRecord(
                id=new_input_id(),
                experiment_id=experiment["id"],
                position=0,
                created_at=now,
                **{k: v for k, v in item.items() if k not in ("id", "position", "created_at")},
            ).as_dict()
            for item in items
        ]
        return await self.store.insert_inputs(experiment["id"], records)

    async def add_inputs_from_body(
        self, experiment: Mapping[str, Any], body: Any
    ) -> list[dict[str, Any]]:
        taken = {item["key"] for item in await self.store.list_inputs(experiment["id"])}
        return await self.add_inputs(experiment, parse_inputs(body, taken))

    async def delete_input(self, experiment: Mapping[str, Any], input_id: str) -> None:
        if not await self.store.delete_input(experiment["id"], input_id):
            raise NotFound(
                f"Experiment {experiment['id']!r} has no input {input_id!r}.", param="id"
            )

    async def inputs_of(self, experiment: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The stored inputs; a seed-1 experiment's own call comes first."""
        inputs = await self.store.list_inputs(experiment["id"])
        if experiment.get("kind", "replay") == "replay":
            original = InputRecord(
                id=ORIGINAL_INPUT,
                experiment_id=experiment["id"],
                key=ORIGINAL_INPUT,
                position=0,
                created_at=experiment.get("created_at") or "",
                request=experiment["original_request"],
                operation=experiment.get("operation"),
                source_span_id=experiment["original_span_id"],
            ).as_dict()
            inputs.insert(0, original)
        return inputs

    async def copy_setup(self, source_id: str, target_id: str) -> dict[str, int]:
        """A duplicate's variants and inputs: copies of the source's, with new ids (its
        runs and cells are results, not setup: they stay with the source)."""
        now = now_iso()
        variants = [
            {**v, "id": new_variant_id(), "experiment_id": target_id, "created_at": now,
             "updated_at": now}
            for v in await self.store.list_variants(source_id)
        ]  # fmt: skip
        inputs = [
            {**i, "id": new_input_id(), "experiment_id": target_id, "created_at": now}
            for i in await self.store.list_inputs(source_id)
        ]
        if variants or inputs:
            await self.store.insert_setup(variants, inputs)
        return {"variants": len(variants), "inputs": len(inputs)}

    async def detail(self, experiment: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "variants": await self.store.list_variants(experiment["id"]),
            "inputs": await self.inputs_of(experiment),
            "matrix_runs": await self.store.list_runs(experiment["id"]),
        }

    # --- running -------------------------------------------------------------------

    async def start(
        self,
        experiment: dict[str, Any],
        body: Any,
        credentials: Sequence[tuple[str, str]],
        charge: str | None = None,
    ) -> dict[str, Any]:
        """Check, write the run and its cells (pending), start it; nothing is written
        when any check fails."""
        options = parse_run(body, self.settings.matrix_concurrency)
        creds = [(k.lower(), v) for k, v in credentials if k.lower() in CREDENTIAL_HEADERS]
        if experiment["id"] in self._active or await self._running_run(experiment["id"]):
            raise Conflict(
                f"Experiment {experiment['id']!r} is running; wait for it or cancel it.",
                code="experiment_running",
            )
        variants = await self.store.list_variants(experiment["id"])
        inputs = await self.inputs_of(experiment)
        if options.resume:
            run, todo = await self._resume(experiment, options, variants, inputs, creds)
        else:
            variants = chosen_items(variants, options.variant_ids, "variantIds", "variant")
            inputs = chosen_items(inputs, options.input_ids, "inputIds", "input")
            if not variants or not inputs:
                raise ValidationFailed(
                    f"The matrix is empty ({len(variants)} variant(s) x {len(inputs)}"
                    " input(s)): add variants (POST /experiments/{id}/variants) and inputs"
                    " (POST /experiments/{id}/inputs) first.",
                    code="empty_matrix",
                    param="variantIds" if not variants else "inputIds",
                )
            total = len(variants) * len(inputs) * options.repetitions
            if total > MAX_CELLS:
                raise ValidationFailed(f"{total} cells is more than {MAX_CELLS}.", param="body")
            run_id = new_matrix_run_id()
            todo = []
            for variant in variants:
                for item in inputs:
                    todo += self._cells(
                        experiment, run_id, variant, item, options.repetitions, creds
                    )
            now = now_iso()
            run = MatrixRunRecord(
                id=run_id,
                experiment_id=experiment["id"],
                status="running",
                variant_ids=[v["id"] for v in variants],
                input_ids=[i["id"] for i in inputs],
                repetitions=options.repetitions,
                concurrency=options.concurrency,
                cells=len(todo),
                created_at=now,
                updated_at=now,
            ).as_dict()
            await self.store.create_run(run, todo)
        run["concurrency"] = options.concurrency
        # Credentials the caller sent exist only in this process: no other may run it.
        # The key it is charged to is stored with it: whoever runs a cell charges it.
        shared = not creds
        await self.claims.prepare(run["id"], shared=shared, charge=charge)
        if not (shared and self.runs_elsewhere()):
            links = await self._links(inputs)
            active = ActiveRun(run, experiment, creds, links, charge=charge)
            self._launch(active, options.concurrency)
        self.shared.send(RUN_STARTED, experiment["id"], run["id"])
        return {"run_id": run["id"], "cells": len(todo), "total": run["cells"], "status": "running"}

    def _launch(self, active: ActiveRun, concurrency: int) -> None:
        self._active[active.experiment["id"]] = active
        active.task = asyncio.create_task(
            self._supervise(active, concurrency), name=f"matrix-run-{active.run['id']}"
        )

    async def join(self, state: RunState) -> None:
        """Run cells of a run another process started (up to this process's
        ``matrix_concurrency``, and the run's)."""
        if self._closing or self.load_experiment is None or state.experiment_id in self._active:
            return
        experiment = await self.load_experiment(state.experiment_id)
        run = await self.store.get_run(state.id)
        if experiment is None or run is None or run["status"] != "running":
            return
        chosen = set(run["input_ids"])
        links = await self._links(
            [i for i in await self.inputs_of(experiment) if i["id"] in chosen]
        )
        if self._closing or state.experiment_id in self._active:
            return  # it changed while reading
        logger.info("joining matrix run %s (%d cells pending)", state.id, state.pending)
        concurrency = min(state.concurrency, self.settings.matrix_concurrency)
        self._launch(ActiveRun(run, experiment, [], links, charge=state.charge), concurrency)

    async def tick(self, runs: list[RunState]) -> None:
        """The runs in progress, from the poll: join, cancel, or end what is left."""
        for state in runs:
            active = self._active.get(state.experiment_id)
            if active is not None and active.run["id"] == state.id:
                if state.cancel_requested and not active.cancelling and active.task is not None:
                    active.cancelling = True  # another process stored a cancel
                    active.task.cancel()
                elif state.pending:
                    active.more.set()
            elif state.running == 0 and (state.pending == 0 or state.cancel_requested):
                # Nothing runs it and nothing is left to run (its last process died
                # before ending it, or a cancel stopped every cell): end it here.
                status = await self.claims.end_if_done(state.id, self.shared.claimer)
                if status is not None and self.load_experiment is not None:
                    experiment = await self.load_experiment(state.experiment_id)
                    if experiment is not None:
                        await self._announce_end(experiment, state.id, None)
            elif (
                state.pending
                and state.shared
                and not state.cancel_requested
                and not self.runs_elsewhere()
            ):
                await self.join(state)

    def _cells(
        self,
        experiment: Mapping[str, Any],
        run_id: str,
        variant: Mapping[str, Any],
        item: Mapping[str, Any],
        repetitions: Sequence[int] | int,
        credentials: Sequence[tuple[str, str]],
    ) -> list[dict[str, Any]]:
        operation, payload, headers = render_cell(variant, item)
        provider = check_route(
            self.pipeline, {"operation": operation}, payload, headers, credentials, None
        )
        configured = self.router.provider(provider)
        secrets = credential_values(credentials) + provider_secret_values(configured)
        if configured.api_key():
            secrets.append(configured.api_key() or "")
        if secrets:  # a credential typed into a prompt never reaches the database
            payload = orjson.loads(scrub_values(orjson.dumps(payload).decode(), secrets))
        snapshot = {
            "variant_name": variant["name"],
            "kind": variant.get("kind"),
            "system_prompt": variant.get("system_prompt"),
            "config": variant.get("config"),
            "operation": operation,
            "model": payload.get("model"),
            "provider": provider,
            "input_key": item["key"],
        }
        reps = range(1, repetitions + 1) if isinstance(repetitions, int) else repetitions
        now = now_iso()
        return [
            RunRecord(
                id=new_run_id(),
                experiment_id=experiment["id"],
                status="pending",
                request=copy.deepcopy(payload),
                started_at=now,
                headers=headers or None,
                stream=bool(payload.get("stream")),
                matrix_run_id=run_id,
                variant_id=variant["id"],
                input_id=item["id"],
                repetition=rep,
                config=snapshot,
            ).as_dict()
            for rep in reps
        ]

    async def _resume(
        self,
        experiment: Mapping[str, Any],
        options: RunOptions,
        variants: list[dict[str, Any]],
        inputs: list[dict[str, Any]],
        credentials: Sequence[tuple[str, str]],
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        runs = await self.store.list_runs(experiment["id"])
        run = next((r for r in runs if options.run_id in (None, r["id"])), None)
        if run is None:
            raise NotFound(
                f"Experiment {experiment['id']!r} has no matrix run"
                f"{' ' + repr(options.run_id) if options.run_id else ''} to resume.",
                param="runId",
            )
        cells = await self.store.cells(run["id"])
        reset = [c for c in cells if c["status"] in UNFINISHED]
        have = {(c["variant_id"], c["input_id"], c["repetition"]) for c in cells}
        by_id = {v["id"]: v for v in variants}
        inputs_by_id = {i["id"]: i for i in inputs}
        missing: list[dict[str, Any]] = []
        for variant_id in run["variant_ids"]:
            for input_id in run["input_ids"]:
                reps = [
                    r
                    for r in range(1, run["repetitions"] + 1)
                    if (variant_id, input_id, r) not in have
                ]
                variant, item = by_id.get(variant_id), inputs_by_id.get(input_id)
                if reps and variant is not None and item is not None:
                    missing += self._cells(experiment, run["id"], variant, item, reps, credentials)
        await self.store.resume_run(run["id"], experiment["id"], reset, missing)
        for cell in reset:
            cell["status"] = "pending"
        run = await self.store.get_run(run["id"]) or run
        return run, reset + missing

    async def _links(self, inputs: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Span links to each input's source span (one lookup per input with one)."""
        links: dict[str, list[dict[str, Any]]] = {}
        for item in inputs:
            source = item.get("source_span_id")
            if source:
                span = await self.spans.get_span(source)
                if span is not None:
                    links[item["id"]] = span_links(span["trace_id"], source, item["experiment_id"])
        return links

    async def _supervise(self, active: ActiveRun, concurrency: int) -> None:
        """Claim pending cells (as many as there are free slots) and run them, until
        none is left to claim and none runs here; cancelled: stop the cells in flight."""
        tasks: dict[asyncio.Task[None], str] = {}
        closing = False
        run_id = active.run["id"]
        try:
            while True:
                free = concurrency - len(tasks)
                if free > 0:
                    # Claimed cells get their tasks even if a cancel comes meanwhile
                    # (a claimed cell with no task would stay running).
                    claimed = await unstoppable(
                        self.claims.claim(run_id, self.shared.claimer, free, self.shared.lease_s)
                    )
                    for cell in claimed:
                        tasks[asyncio.create_task(self._cell(active, cell))] = cell["id"]
                if not tasks:
                    break
                active.more.clear()
                more = asyncio.ensure_future(active.more.wait())
                try:
                    await asyncio.wait({*tasks, more}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    more.cancel()
                tasks = {task: cell for task, cell in tasks.items() if not task.done()}
        except asyncio.CancelledError:
            closing = self._closing
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # A task cancelled before its first step never ran its cell: not started,
            # it goes back to pending (as the cells never claimed).
            unstarted = [cell for cell in tasks.values() if cell not in active.started]
            if unstarted:
                await unstoppable(self.claims.release(unstarted))
        finally:
            await unstoppable(self._end(active, closing))

    async def _end(self, active: ActiveRun, closing: bool) -> None:
        """This process's part of the run is over; the run ends if nothing is left of
        it (else the process running its last cell ends it)."""
        experiment_id = active.experiment["id"]
        try:
            status = await self.claims.end_if_done(active.run["id"], self.shared.claimer, closing)
        finally:
            if self._active.get(experiment_id) is active:
                del self._active[experiment_id]
        if status is None:
            self.hub.notify(experiment_id)
        else:
            await self._announce_end(active.experiment, active.run["id"], active.clock)

    async def _announce_end(
        self, experiment: Mapping[str, Any], run_id: str, clock: RunClock | None
    ) -> None:
        try:
            run = await self.store.get_run(run_id) or {"id": run_id, "status": "ended"}
            progress = (await self.store.progress(run)).as_dict()
            elapsed = clock.elapsed_s() if clock is not None else None
            progress.update(
                elapsed_s=round(elapsed, 3)
                if elapsed is not None
                else seconds_between(run.get("created_at", ""), run.get("updated_at", "")),
                eta_s=0.0,
            )
            await self.observer.run_ended(experiment, run, progress)
        except Exception:  # the run is recorded; telling about it must not break the end
            logger.exception("could not announce the end of matrix run %s", run_id)
        finally:
            self.hub.notify(experiment["id"], final=True)
            self.shared.send(RUN_ENDED, experiment["id"], run_id)

    async def _cell(self, active: ActiveRun, cell: dict[str, Any]) -> None:
        active.started.add(cell["id"])
        try:
            await self._call(active, dict(cell))
        except asyncio.CancelledError:
            pass  # recorded by `_call`; the supervisor is what was cancelled
        except Exception:
            logger.exception("matrix cell %s failed", cell["id"])
        else:
            self.shared.send(CELL_ENDED, active.experiment["id"], active.run["id"])

    async def _call(self, active: ActiveRun, cell: dict[str, Any]) -> None:
        started = time.perf_counter()
        experiment = active.experiment
        retries = 0
        response: Any = None
        try:
            await unstoppable(self.store.start_cell(cell["id"]))
            while True:
                context = SpanContext(
                    trace_id=new_trace_id(),
                    span_id=new_span_id(),
                    project_id=experiment.get("project_id"),
                    thread_id=None,
                    label=LABEL,
                    attributes={
                        ATTR_EXPERIMENT: experiment["id"],
                        ATTR_RUN: cell["id"],
                        ATTR_MATRIX_RUN: active.run["id"],
                        ATTR_VARIANT: cell["variant_id"],
                        ATTR_VARIANT_NAME: (cell.get("config") or {}).get("variant_name"),
                        ATTR_INPUT: cell["input_id"],
                        ATTR_INPUT_KEY: (cell.get("config") or {}).get("input_key"),
                        ATTR_REPETITION: cell["repetition"],
                    },
                    links=active.links.get(cell["input_id"], []),
                )
                operation = (cell.get("config") or {}).get("operation") or "chat"
                request = build_request(
                    operation,
                    context,
                    copy.deepcopy(cell["request"]),
                    cell.get("headers") or {},
                    active.credentials,
                )
                request.charge = active.charge
                sink = CollectingSink(operation)
                span = await self.pipeline.handle(request, sink)
                limit = sink.header(b"x-spanlab-limit")
                if limit is not None and span.http_status == 429:
                    # The gateway's own limit (not the upstream's): pause until its
                    # window frees, as long as it takes; a cancel ends the wait at once.
                    await self._wait_for_limit(active, limit, sink.header(b"retry-after"))
                    continue
                finalize(span, self.prices)
                response = span.response
                if span.http_status in RETRY_STATUSES and retries < MAX_RETRIES:
                    retries += 1
                    await asyncio.sleep(retry_delay(span.response_headers, retries))
                    continue
                break
            ok = span.status == STATUS_OK and (span.http_status or 200) < 400
            cell.update(
                status="completed" if ok else "failed",
                result_span_id=context.span_id,
                result_trace_id=context.trace_id,
                output_text=span.output_text,
                tool_calls=tool_calls(span.response) or None,
                input_tokens=span.prompt_tokens,
                output_tokens=span.completion_tokens,
                cost_usd=span.cost_usd,
                ttft_ms=span.ttft_ms,
            )
            if not ok:
                limited = span.http_status in RETRY_STATUSES
                cell["error"] = span.error or {
                    "type": "rate_limited" if limited else "upstream_error",
                    "code": f"http_{span.http_status}",
                    "message": f"The provider answered HTTP {span.http_status}"
                    + (f" after {retries} retries." if limited else "."),
                }
        except asyncio.CancelledError:
            interrupted = self._closing
            cell["status"] = "interrupted" if interrupted else "cancelled"
            cell["error"] = {
                "type": "interrupted" if interrupted else "cancelled",
                "code": "run_interrupted" if interrupted else "run_cancelled",
                "message": "The gateway stopped before this cell finished."
                if interrupted
                else "The run was cancelled while this cell ran.",
            }
            raise
        except SpanlabError as exc:
            cell["status"] = "failed"
            cell["error"] = exc.to_dict()["error"]
        except Exception as exc:
            logger.exception("matrix cell %s failed", cell["id"])
            cell["status"] = "failed"
            cell["error"] = {
                "type": "server_error",
                "code": "internal_error",
                "message": f"Internal error ({type(exc).__name__}); see the gateway log.",
            }
        finally:
            cell["retries"] = retries + int(cell.get("takeovers") or 0)
            cell["ended_at"] = now_iso()
            duration_s = time.perf_counter() - started
            cell["duration_ms"] = round(duration_s * 1000, 3)
            await unstoppable(self.store.finish_cell(cell))
            active.clock.ended += 1
            self.observer.cell_ended(cell, duration_s)
            self.hub.notify(experiment["id"])
            if self.on_cell_done is not None:
                self.on_cell_done(experiment, cell, response)

    async def _wait_for_limit(self, active: ActiveRun, limit: str, retry_after: str | None) -> None:
        try:
            seconds = max(1.0, float(retry_after or 1))
        except ValueError:
            seconds = 1.0
        active.waiting = {"limit": limit, "until": time.time() + seconds}
        experiment_id, run_id = active.experiment["id"], active.run["id"]
        self.observer.waiting_on_limit(run_id, limit, seconds)
        self.hub.notify(experiment_id)
        self.shared.send(RUN_WAITING, experiment_id, run_id, waiting=active.waiting)
        try:
            await self.sleep(seconds)
        finally:
            active.waiting = None
            self.shared.send(RUN_WAITING, experiment_id, run_id, waiting=None)

    async def progress(self, experiment_id: str, run_id: str | None) -> dict[str, Any]:
        runs = await self.store.list_runs(experiment_id)
        run = next((r for r in runs if run_id in (None, r["id"])), None)
        if run is None:
            raise NotFound(
                f"Experiment {experiment_id!r} has no matrix run"
                f"{' ' + repr(run_id) if run_id else ''}.",
                param="run",
            )
        progress = (await self.store.progress(run)).as_dict()
        active = self._active.get(experiment_id)
        if active is not None and active.run["id"] == run["id"]:
            return paced(progress, run, active.clock, active.waiting)
        return paced(progress, run, None, self.shared.peer_waiting(run["id"]))

    async def cancel(self, experiment_id: str) -> dict[str, Any]:
        """Cancel the experiment's run in progress, whichever processes run it: the
        cancel is stored, the cells in flight here stop now, elsewhere at their
        process's next poll (or its signal); answers once they did (or after
        `CANCEL_WAIT_S`)."""
        run_id = await self._cancel(experiment_id)
        if run_id is None:
            raise Conflict(
                f"Experiment {experiment_id!r} has no run in progress.", code="not_running"
            )
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            run = await self.store.get_run(run_id)
            if run is None or run["status"] != "running":
                break
            await asyncio.sleep(0.05)
        return await self.progress(experiment_id, run_id)

    async def stop(self, experiment_id: str) -> None:
        """Cancel the experiment's run in progress, if any (before a delete)."""
        await self._cancel(experiment_id)

    async def _running_run(self, experiment_id: str) -> dict[str, Any] | None:
        """The experiment's run in progress (in this process or any other)."""
        runs = await self.store.list_runs(experiment_id)
        return next((r for r in runs if r["status"] == "running"), None)

    async def _cancel(self, experiment_id: str) -> str | None:
        run = await self._running_run(experiment_id)
        if run is None:
            return None
        await self.claims.request_cancel(run["id"])
        self.shared.send(RUN_CANCEL, experiment_id, run["id"])
        active = self._active.get(experiment_id)
        if active is not None and active.task is not None:
            active.cancelling = True
            active.task.cancel()
            await asyncio.gather(active.task, return_exceptions=True)
        return str(run["id"])

    async def wait(self, experiment_id: str) -> None:
        """Until the experiment's run in progress (if any) ends (tests, the CLI)."""
        active = self._active.get(experiment_id)
        if active is not None and active.task is not None:
            await asyncio.gather(active.task, return_exceptions=True)

    async def recover(self) -> int:
        """At startup: the cells and runs dead processes left running
        (`CellClaims.recover`); what live processes run is left alone."""
        return await self.claims.recover()

    async def close(self) -> None:
        """At shutdown: runs in progress stop; their cells in flight become interrupted
        (a resume finishes them); a run that other live processes run goes on there."""
        self._closing = True
        await self.shared.close()
        tasks = [a.task for a in self._active.values() if a.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
