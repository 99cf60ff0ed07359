"""The playground's work: `PlaygroundService`.

A completion, step by step:

1. the body is validated (`gateway.playground.requests.parse_request`), the session
   named by ``session_id`` is read (404 if unknown), and every model's route is
   checked the way experiment runs check theirs (`gateway.experiments.runner.check_route`:
   a configured provider, and a credential for it). Any refusal happens here, before
   a call is made or anything is written;
2. each model is called through the same `ProxyPipeline` every proxied call takes
   (routing, providers, capture, metrics), all at once, in process, with a
   `CollectingSink` that hands streamed text on as it arrives. Each call is a new
   trace in the thread ``playground:<session id>``, labelled ``playground``; its span
   carries `PLAYGROUND_ATTRIBUTE`, which the writer maps to the span origin
   ``playground``;
3. the session (new, or touched), this turn's messages and every answer (with its
   model and span id) are stored in one transaction, the ``playground.completion``
   event is appended to the events log and published to ``/events`` listeners, and
   the Prometheus metrics counted.

Multi-turn: with ``session_id``, each model is sent the session's system prompt, the
user's earlier turns and its own earlier answers (each model of a side-by-side
session is its own conversation), then this turn's messages.

The calls run as a task of their own: a client that goes away mid-call does not cut
the calls short or leave the session half-written.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from gateway.capture.origin import PLAYGROUND_ATTRIBUTE
from gateway.capture.pricing import PriceTable
from gateway.capture.redaction import credential_values, scrub_values
from gateway.capture.span import (
    STATUS_OK,
    SpanContext,
    finalize,
    new_span_id,
    new_trace_id,
    to_record,
)
from gateway.config import Settings
from gateway.errors import NotFound, SpanlabError, ValidationFailed
from gateway.experiments.runner import OPERATION_PATHS, check_route
from gateway.experiments.service import ExperimentService
from gateway.metrics import Metrics
from gateway.playground.requests import CompletionRequest, Target, parse_request
from gateway.proxy.operations import ProxyRequest
from gateway.proxy.pipeline import ProxyPipeline
from gateway.proxy.providers import PROVIDER_HEADER, Router
from gateway.proxy.providers.base import CREDENTIAL_HEADERS, provider_secret_values
from gateway.proxy.sink import CollectingSink
from gateway.store.events import EventRecord, EventStore
from gateway.store.experiments import now_iso
from gateway.store.pagination import Page
from gateway.store.playground import MessageRecord, PlaygroundStore, SessionRecord
from gateway.store.spans import span_from_row

logger = logging.getLogger(__name__)

LABEL = "playground"
THREAD_PREFIX = "playground:"
ATTR_MODEL = "spanlab.playground.model"
COMPLETION_EVENT = "playground.completion"
OPERATION = "chat"
TITLE_LENGTH = 80

# How a streamed completion tells its listener what happens: ("delta", index, text)
# for each piece of a model's text, ("done", index, output) when that model is done.
Listener = Callable[[str, int, Any], Awaitable[None]]
Publish = Callable[[str, dict[str, Any]], None]


def new_session_id() -> str:
    return "pgs_" + secrets.token_hex(12)


def new_message_id() -> str:
    return "pgm_" + secrets.token_hex(12)


def thread_of(session_id: str) -> str:
    return THREAD_PREFIX + session_id


@dataclass(slots=True)
class Prepared:
    """A validated completion, every route checked: ready to run."""

    request: CompletionRequest
    session: SessionRecord
    new: bool
    payloads: list[dict[str, Any]]
    headers: list[list[tuple[str, str]]]
    secrets: list[str]
    charge: str | None = None  # the key its calls are counted for (quotas), if any


@dataclass
class PlaygroundService:
    settings: Settings
    pipeline: ProxyPipeline
    router: Router
    prices: PriceTable
    metrics: Metrics
    store: PlaygroundStore
    events: EventStore
    experiments: ExperimentService
    publish: Publish

    # --- completing -------------------------------------------------------------------

    async def prepare(self, body: Any, credentials: Sequence[tuple[str, str]] = ()) -> Prepared:
        """Validate a completion and check every model's route; nothing is written."""
        request = parse_request(body)
        credentials = [(k.lower(), v) for k, v in credentials if k.lower() in CREDENTIAL_HEADERS]
        now = now_iso()
        history: list[MessageRecord] = []
        if request.session_id is not None:
            found = await self.store.get_session(request.session_id)
            if found is None:
                raise NotFound(
                    f"No playground session with id {request.session_id!r}.", param="session_id"
                )
            session, new = found, False
            history = await self.store.list_messages(session.id)
            if request.project_id and request.project_id != session.project_id:
                raise ValidationFailed(
                    f"Session {session.id!r} belongs to project {session.project_id!r}.",
                    param="project_id",
                )
        else:
            first = next((m["content"] for m in request.messages if m["role"] == "user"), "")
            session = SessionRecord(
                id=new_session_id(),
                title=" ".join(first.split())[:TITLE_LENGTH] or "Playground session",
                created_at=now,
                updated_at=now,
                project_id=request.project_id,
                system_prompt=request.system_prompt,
                config=request.config(),
            )
            new = True
        system_prompt = request.system_prompt or session.system_prompt
        payloads, headers, secret_values = [], [], credential_values(credentials)
        for target in request.targets:
            payload: dict[str, Any] = {
                "model": target.model,
                "messages": conversation(system_prompt, history, target, request.messages),
                **request.parameters,
            }
            if request.stream:
                payload["stream"] = True
            call_headers = {PROVIDER_HEADER: target.provider} if target.provider else {}
            # Unknown provider or model, a dialect the provider cannot take, a missing
            # credential: refused here, before anything is called or written.
            provider = check_route(
                self.pipeline, {"operation": OPERATION}, payload, call_headers, credentials, None
            )
            configured = self.router.provider(provider)
            secret_values += provider_secret_values(configured)
            key = configured.api_key()
            if key:
                secret_values.append(key)
            accept = "text/event-stream" if request.stream else "application/json"
            headers.append(
                [
                    ("content-type", "application/json"),
                    ("accept", accept),
                    *call_headers.items(),
                    *credentials,
                ]
            )
            payloads.append(payload)
        session.updated_at = now
        return Prepared(request, session, new, payloads, headers, secret_values)

    def start(
        self, prepared: Prepared, listener: Listener | None = None
    ) -> asyncio.Task[dict[str, Any]]:
        """Run a prepared completion as a task of its own (see the module docstring)."""
        return asyncio.create_task(
            self._run(prepared, listener), name=f"playground-{prepared.session.id}"
        )

    async def _run(self, prepared: Prepared, listener: Listener | None) -> dict[str, Any]:
        session = prepared.session
        calls = [
            self._call(i, target, prepared, listener)
            for i, target in enumerate(prepared.request.targets)
        ]
        outputs = list(await asyncio.gather(*calls))
        with anyio.CancelScope(shield=True):
            await self._record(prepared, outputs)
        first = outputs[0]
        return {
            "sessionId": session.id,
            "output": first["output"],
            "latencyMs": first["latency_ms"],
            "session_id": session.id,
            "outputs": outputs,
        }

    async def _call(
        self, index: int, target: Target, prepared: Prepared, listener: Listener | None
    ) -> dict[str, Any]:
        session = prepared.session

        async def on_delta(text: str) -> None:
            if listener is not None:
                await listener("delta", index, text)

        context = SpanContext(
            trace_id=new_trace_id(),
            span_id=new_span_id(),
            project_id=session.project_id,
            thread_id=thread_of(session.id),
            label=LABEL,
            attributes={PLAYGROUND_ATTRIBUTE: session.id, ATTR_MODEL: target.label},
        )
        request = ProxyRequest(
            operation=OPERATION,
            method="POST",
            path=OPERATION_PATHS[OPERATION],
            headers=list(prepared.headers[index]),
            context=context,
            # The pipeline edits the body it sends (model prefix, stream options).
            payload=copy.deepcopy(prepared.payloads[index]),
            charge=prepared.charge,
        )
        started = time.perf_counter()
        output: dict[str, Any] = {
            "index": index,
            "model": target.label,
            "output": "",
            "latency_ms": None,
            "ttft_ms": None,
            "usage": None,
            "cost_usd": None,
            "span_id": context.span_id,
            "trace_id": context.trace_id,
            "error": None,
        }
        try:
            span = await self.pipeline.handle(request, CollectingSink(OPERATION, on_delta))
            finalize(span, self.prices)
            result = span_from_row(to_record(span))
            ok = result["status"] == STATUS_OK and (result.get("http_status") or 200) < 400
            output.update(
                output=result.get("output_text") or "",
                latency_ms=result.get("duration_ms"),
                ttft_ms=result.get("ttft_ms"),
                usage=result.get("usage"),
                cost_usd=result.get("cost_usd"),
                span_id=result["span_id"],
                trace_id=result["trace_id"],
            )
            if not ok:
                output["error"] = result.get("error") or {
                    "type": "upstream_error",
                    "code": f"http_{result.get('http_status')}",
                    "message": f"The provider answered HTTP {result.get('http_status')}.",
                }
        except SpanlabError as exc:
            output["error"] = exc.to_dict()["error"]
        except Exception as exc:
            logger.exception("playground call to %s failed", target.label)
            output["error"] = {
                "type": "server_error",
                "code": "internal_error",
                "message": f"Internal error ({type(exc).__name__}); see the gateway log.",
            }
        elapsed = time.perf_counter() - started
        if output["latency_ms"] is None:
            output["latency_ms"] = round(elapsed * 1000, 3)
        label = self.metrics.model_label(target.label)
        self.metrics.playground_requests.labels(label).inc()
        self.metrics.playground_latency.labels(label).observe(elapsed)
        if listener is not None:
            await listener("done", index, output)
        return output

    async def _record(self, prepared: Prepared, outputs: Sequence[Mapping[str, Any]]) -> None:
        session, now = prepared.session, now_iso()
        scrub = prepared.secrets

        def clean(text: str) -> str:
            # A credential typed into a prompt still never reaches the database.
            return scrub_values(text, scrub) if scrub else text

        messages = [
            MessageRecord(new_message_id(), session.id, m["role"], clean(m["content"]), now)
            for m in prepared.request.messages
        ]
        for output in outputs:
            if output["error"] is None:
                messages.append(
                    MessageRecord(
                        new_message_id(),
                        session.id,
                        "assistant",
                        clean(output["output"]),
                        now,
                        model=output["model"],
                        span_id=output["span_id"],
                    )
                )
        await self.store.save_turn(session, messages, new=prepared.new)
        payload = {
            "session_id": session.id,
            "outputs": [
                {k: o[k] for k in ("model", "span_id", "latency_ms", "usage", "cost_usd")}
                | {"status": "error" if o["error"] else "ok"}
                for o in outputs
            ],
        }
        event = EventRecord(
            type=COMPLETION_EVENT,
            at=now,
            project_id=session.project_id,
            subject_id=session.id,
            related_ids=[o["span_id"] for o in outputs],
            payload=payload,
        )
        try:
            await self.events.append(event)
        except Exception:  # the answers are stored; an event log failure must not hide them
            logger.exception("could not store the %s event", COMPLETION_EVENT)
        self.publish(COMPLETION_EVENT, event.as_dict())

    # --- sessions ---------------------------------------------------------------------

    async def get_session(self, session_id: str) -> dict[str, Any]:
        session = await self.store.get_session(session_id)
        if session is None:
            raise NotFound(f"No playground session with id {session_id!r}.", param="id")
        messages = await self.store.list_messages(session_id)
        return {
            **session.as_dict(),
            "thread_id": thread_of(session.id),
            "messages": [m.as_dict() for m in messages],
        }

    async def list_sessions(self, *, project: str | None, limit: int, cursor: str | None) -> Page:
        return await self.store.list_sessions(project=project, limit=limit, cursor=cursor)

    async def delete_session(self, session_id: str) -> None:
        if not await self.store.delete_session(session_id):
            raise NotFound(f"No playground session with id {session_id!r}.", param="id")

    async def save_as_experiment(self, session_id: str, body: Any) -> dict[str, Any]:
        """Turn one of the session's answers (``span_id`` or ``message_id``; default:
        the latest) into an experiment on its span, through the experiments service."""
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ValidationFailed("The body must be a JSON object.", param="body")
        body = {ALIASES.get(k, k): v for k, v in body.items()}
        unknown = set(body) - {"span_id", "message_id", "name", "description"}
        if unknown:
            raise ValidationFailed(
                f"Unknown field(s): {', '.join(sorted(unknown))}. Accepted: span_id,"
                " message_id, name, description.",
                param=sorted(unknown)[0],
            )
        session = await self.get_session(session_id)
        answers = [m for m in session["messages"] if m["role"] == "assistant" and m["span_id"]]
        if body.get("span_id") is not None:
            answers = [m for m in answers if m["span_id"] == body["span_id"]]
        if body.get("message_id") is not None:
            answers = [m for m in answers if m["id"] == body["message_id"]]
        if not answers:
            raise NotFound(
                f"Session {session_id!r} has no answer"
                + (" with that span_id/message_id." if len(body) else " yet."),
                param="span_id" if body.get("span_id") is not None else "message_id",
            )
        answer = answers[-1]
        create: dict[str, Any] = {
            "original_span_id": answer["span_id"],
            "name": body.get("name") or f"Playground: {session['title']}"[:500],
        }
        if body.get("description") is not None:
            create["description"] = body["description"]
        if session.get("project_id"):
            create["project_id"] = session["project_id"]
        return await self.experiments.create(create)


ALIASES = {"spanId": "span_id", "messageId": "message_id"}


def conversation(
    system_prompt: str | None,
    history: Sequence[MessageRecord],
    target: Target,
    new: Sequence[Mapping[str, str]],
) -> list[dict[str, str]]:
    """What ``target`` is sent: the system prompt, the user's earlier turns and its own
    earlier answers, then this turn's messages."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for message in history:
        if message.role == "assistant" and message.model != target.label:
            continue
        messages.append({"role": message.role, "content": message.content})
    messages += [dict(m) for m in new]
    return messages
