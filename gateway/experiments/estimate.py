"""What a matrix run would cost before it runs: ``POST /experiments/{id}/estimate``.

The body is a run's (``variantIds``, ``inputIds``, ``repetitions``); the answer counts
the calls and prices them with each variant's model through the price table. Tokens
come from the input's source span when it has one with usage (a captured call, or a
dataset item built from one: the same call, so its usage is the best guess there is),
else from a stated approximation: prompt tokens are the rendered request's characters
/ 4, completion tokens the request's ``max_tokens`` (or its kin) or `DEFAULT_COMPLETION`.
``basis`` says which inputs were priced which way. Nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from gateway.errors import ValidationFailed
from gateway.experiments.matrix import MatrixService, parse_run
from gateway.experiments.matrix_options import chosen_items
from gateway.experiments.variants import render_cell

CHARS_PER_TOKEN = 4
DEFAULT_COMPLETION = 256
MAX_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# Request fields whose text is sent to the model as prompt (every dialect).
PROMPT_FIELDS = ("messages", "system", "instructions", "input", "prompt", "tools", "functions")
APPROXIMATION = (
    f"prompt tokens = characters of the rendered request / {CHARS_PER_TOKEN};"
    f" completion tokens = its max_tokens, else {DEFAULT_COMPLETION}"
)


@dataclass(slots=True)
class VariantEstimate:
    variant_id: str
    name: str
    model: str | None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    unpriced_calls: int = 0


@dataclass(slots=True)
class Estimate:
    calls: int
    variants: int
    inputs: int
    repetitions: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    unpriced_calls: int
    per_variant: list[VariantEstimate]
    basis: dict[str, Any] = field(default_factory=dict)


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    if isinstance(value, dict):
        # Text parts and message contents; tool schemas count as their JSON.
        return sum(
            _text_length(v) if k in ("content", "text") else len(orjson.dumps(v))
            for k, v in value.items()
            if k in ("content", "text", "parameters", "function", "input_schema")
        )
    return 0


def approximate_prompt(payload: Mapping[str, Any]) -> int:
    chars = sum(_text_length(payload.get(name)) for name in PROMPT_FIELDS)
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def approximate_completion(payload: Mapping[str, Any]) -> int:
    for name in MAX_TOKEN_FIELDS:
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_COMPLETION


async def _captured_usage(
    matrix: MatrixService, inputs: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[int, int]]:
    """Input id -> (prompt, completion) tokens of its source span, when it has usage."""
    usage: dict[str, tuple[int, int]] = {}
    for item in inputs:
        source = item.get("source_span_id")
        if not source:
            continue
        span = await matrix.spans.get_span(source)
        if span is None:
            continue
        usage_of = span.get("usage") or {}
        prompt = span.get("prompt_tokens", usage_of.get("prompt_tokens"))
        completion = span.get("completion_tokens", usage_of.get("completion_tokens"))
        if isinstance(prompt, int) and isinstance(completion, int):
            usage[item["id"]] = (prompt, completion)
    return usage


async def estimate(
    matrix: MatrixService, experiment: Mapping[str, Any], body: Any
) -> dict[str, Any]:
    options = parse_run(body, matrix.settings.matrix_concurrency)
    if options.resume:
        raise ValidationFailed(
            "An estimate is of a new run: send variantIds, inputIds and repetitions.",
            param="resume",
        )
    # The same choice, and the same 404 for an unknown id, as the run itself makes.
    variants = chosen_items(
        await matrix.store.list_variants(experiment["id"]),
        options.variant_ids,
        "variantIds",
        "variant",
    )
    inputs = chosen_items(
        await matrix.inputs_of(experiment), options.input_ids, "inputIds", "input"
    )
    if not variants or not inputs:
        raise ValidationFailed(
            f"The matrix is empty ({len(variants)} variant(s) x {len(inputs)} input(s)).",
            code="empty_matrix",
            param="variantIds" if not variants else "inputIds",
        )
    reps = options.repetitions
    captured = await _captured_usage(matrix, inputs)
    rows: list[VariantEstimate] = []
    for variant in variants:
        row = VariantEstimate(variant["id"], variant["name"], None)
        for item in inputs:
            _, payload, _ = render_cell(variant, item)
            model = payload.get("model")
            row.model = row.model or (model if isinstance(model, str) else None)
            prompt, completion = captured.get(item["id"]) or (
                approximate_prompt(payload),
                approximate_completion(payload),
            )
            row.calls += reps
            row.prompt_tokens += prompt * reps
            row.completion_tokens += completion * reps
            cost = matrix.prices.cost(model if isinstance(model, str) else None, prompt, completion)
            if cost is None:
                row.unpriced_calls += reps
            elif row.cost_usd is not None:
                row.cost_usd = round(row.cost_usd + cost * reps, 10)
        if row.unpriced_calls == row.calls:
            row.cost_usd = None  # no price known: no guess
        rows.append(row)
    priced = [r.cost_usd for r in rows if r.cost_usd is not None]
    result = Estimate(
        calls=sum(r.calls for r in rows),
        variants=len(variants),
        inputs=len(inputs),
        repetitions=reps,
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        cost_usd=round(sum(priced), 10) if priced else None,
        unpriced_calls=sum(r.unpriced_calls for r in rows),
        per_variant=rows,
        basis={
            "captured": [i["id"] for i in inputs if i["id"] in captured],
            "approximated": [i["id"] for i in inputs if i["id"] not in captured],
            "approximation": APPROXIMATION,
            "captured_usage": "the input's source span's prompt and completion tokens",
        },
    )
    return asdict(result)
