"""The LLM judge: a rubric rendered with the cell's input, output and expected output,
sent to a judge model THROUGH THE GATEWAY's own proxy pipeline (the way an
experiment's cell is: `gateway.experiments.runner.build_request`), so the judge's
call is captured as a span like any other. Its attributes name the cell judged
(`ATTR_JUDGED_RUN`, and the experiment and evaluator), which makes its origin
``judge`` (`gateway.capture.origin`): kept out of the app's traffic, and its cost
(the score's ``judge_cost_usd``) counted apart from the variant's.

The verdict is asked as JSON ``{"score": 0..1, "reason": "..."}``: with
``response_format: json_schema`` when ``structured`` (an OpenAI provider takes it, an
Anthropic one gets it as structured output through the translation), and in the
prompt in any case; `parse_verdict` reads it robustly (a code fence, text around the
object, a score given as a percentage or out of 10). A judge that fails (upstream
error, timeout, no credential) or answers unparseably raises `CannotJudge`: an
evaluator error, never a low score. At most ``judge_concurrency`` judge calls run at
once (a semaphore), each within ``judge_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.capture.origin import (
    JUDGE_ATTRIBUTE,
    JUDGE_EVALUATOR_ATTRIBUTE,
    JUDGE_EXPERIMENT_ATTRIBUTE,
)
from gateway.capture.pricing import PriceTable
from gateway.capture.span import STATUS_OK, SpanContext, finalize, new_span_id, new_trace_id
from gateway.config import Settings
from gateway.errors import SpanlabError
from gateway.evaluation.cell import EvalCell, expected_text
from gateway.evaluation.evaluator_base import CannotJudge, Outcome
from gateway.evaluation.rubrics import VERDICT_INSTRUCTIONS, VERDICT_SCHEMA
from gateway.experiments.requests import render
from gateway.experiments.runner import build_request, check_route
from gateway.proxy.pipeline import ProxyPipeline
from gateway.proxy.providers import PROVIDER_HEADER
from gateway.proxy.sink import CollectingSink

logger = logging.getLogger(__name__)

LABEL = "judge"
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float
    reason: str


def _score(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, str):
        text = raw.strip().rstrip("%")
        try:
            raw = float(text) / (100.0 if raw.strip().endswith("%") else 1.0)
        except ValueError:
            return {"pass": 1.0, "fail": 0.0, "yes": 1.0, "no": 0.0}.get(text.lower())
    if not isinstance(raw, int | float) or raw != raw:  # NaN
        return None
    value = float(raw)
    if 1.0 < value <= 10.0:  # a judge that scored out of 10 despite being told
        value /= 10.0
    elif 10.0 < value <= 100.0:  # or out of 100
        value /= 100.0
    return value if 0.0 <= value <= 1.0 else None


def parse_verdict(text: str | None) -> Verdict | None:
    """The judge's ``{"score", "reason"}`` from its answer, or None when there is none:
    the object may sit in a code fence or among words; the score may be a boolean,
    ``"pass"``/``"fail"``, a percentage, or out of 10 or 100."""
    if not text or not text.strip():
        return None
    candidates = [text.strip()]
    found = _OBJECT.search(text)
    if found:
        candidates.append(found.group(0))
    for candidate in candidates:
        try:
            value = orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(value, dict):
            continue
        lowered = {str(k).lower(): v for k, v in value.items()}
        raw = next((lowered[k] for k in ("score", "value", "grade", "pass") if k in lowered), None)
        score = _score(raw)
        if score is None:
            continue
        reason = next(
            (lowered[k] for k in ("reason", "explanation", "rationale") if k in lowered), ""
        )
        return Verdict(score, str(reason).strip() or "(the judge gave no reason)")
    return None


def judge_messages(cell: EvalCell, rubric: str) -> list[dict[str, str]]:
    variables = {
        "input": cell.input,
        "output": cell.output,
        "expected": expected_text(cell.expected) or "(none given)",
    }
    prompt = render(rubric, variables, "params.rubric")
    return [
        {"role": "system", "content": VERDICT_INSTRUCTIONS},
        {"role": "user", "content": str(prompt)},
    ]


@dataclass
class Judge:
    """Runs judge calls through the proxy pipeline, bounded in number and time."""

    settings: Settings
    pipeline: ProxyPipeline
    prices: PriceTable
    _slots: asyncio.Semaphore | None = field(default=None, init=False)

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:  # made in the running loop, on first use
            self._slots = asyncio.Semaphore(max(1, self.settings.judge_concurrency))
        return self._slots

    def payload(self, cell: EvalCell, params: Mapping[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": params["model"],
            "messages": judge_messages(cell, params["rubric"]),
            "temperature": params.get("temperature", 0.0),
        }
        if params.get("structured", True):
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "strict": True, "schema": VERDICT_SCHEMA},
            }
        return payload

    def check(self, params: Mapping[str, Any]) -> None:
        """The judge's route and credential, when the evaluator is configured."""
        headers = {PROVIDER_HEADER: params["provider"]} if params.get("provider") else {}
        payload = {"model": params["model"], "messages": []}
        check_route(self.pipeline, {"operation": "chat"}, payload, headers, (), None)

    async def judge(
        self, cell: EvalCell, params: Mapping[str, Any], evaluator_id: str, project_id: str | None
    ) -> Outcome:
        headers = {PROVIDER_HEADER: params["provider"]} if params.get("provider") else {}
        try:
            payload = self.payload(cell, params)
            check_route(self.pipeline, {"operation": "chat"}, payload, headers, (), None)
        except SpanlabError as exc:
            raise CannotJudge("judge_unavailable", exc.message) from None
        context = SpanContext(
            trace_id=new_trace_id(),
            span_id=new_span_id(),
            project_id=project_id,
            label=LABEL,
            attributes={
                JUDGE_ATTRIBUTE: cell.run_id,
                JUDGE_EXPERIMENT_ATTRIBUTE: cell.experiment_id,
                JUDGE_EVALUATOR_ATTRIBUTE: evaluator_id,
            },
        )
        request = build_request("chat", context, payload, headers, ())
        async with self.slots:
            try:
                async with asyncio.timeout(self.settings.judge_timeout_s):
                    span = await self.pipeline.handle(request, CollectingSink("chat"))
            except TimeoutError:
                raise CannotJudge(
                    "judge_timeout",
                    f"The judge did not answer within {self.settings.judge_timeout_s:g} s.",
                    judge_span_id=context.span_id,
                ) from None
        finalize(span, self.prices)
        span_id, cost = context.span_id, span.cost_usd
        if span.status != STATUS_OK or (span.http_status or 200) >= 400:
            message = (span.error or {}).get("message") or f"HTTP {span.http_status}"
            raise CannotJudge(
                "judge_failed",
                f"The judge call failed: {message}",
                judge_span_id=span_id,
                judge_cost_usd=cost,
            )
        verdict = parse_verdict(span.output_text)
        if verdict is None:
            shown = " ".join((span.output_text or "").split())[:200]
            raise CannotJudge(
                "judge_unparseable",
                f"The judge's answer holds no verdict (a JSON score 0..1 and reason): {shown!r}",
                judge_span_id=span_id,
                judge_cost_usd=cost,
            )
        threshold = params.get("threshold")
        value: bool | float = (
            verdict.score >= float(threshold) if threshold is not None else verdict.score
        )
        return Outcome(value, verdict.reason, judge_span_id=span_id, judge_cost_usd=cost)
