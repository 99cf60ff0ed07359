"""What a matrix run's request says (`parse_run`: `RunOptions`), what a new matrix
experiment is (`matrix_experiment`), and the ids of variants, inputs and runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.errors import NotFound, ValidationFailed
from gateway.experiments.requests import optional_str, project_id, validate_bool, validate_tags
from gateway.experiments.transfer import new_experiment_id, new_run_id
from gateway.experiments.variants import snake_case
from gateway.store.experiments import ExperimentRecord, now_iso

RUN_FIELDS = frozenset(
    {"input_ids", "variant_ids", "repetitions", "concurrency", "resume", "run_id"}
)
MAX_REPETITIONS = 100
MAX_CONCURRENCY = 256
MAX_RETRY_WAIT_S = 30.0


# What a seed-1 (replay) experiment is made of: a body with none of these, or with
# ``kind: "matrix"``, creates a matrix experiment (variants x inputs, no span).
REPLAY_FIELDS = frozenset(
    {
        "original_span_id",
        "original_trace_id",
        "original_request",
        "modified_request",
        "headers",
        "prompt_variables",
        "model_parameters",
        "operation",
    }
)


def matrix_experiment(body: Mapping[str, Any]) -> dict[str, Any]:
    """A new experiment without a span: its calls come from its variants and inputs.
    The seed's NOT NULL span and request columns hold empty values (docs/api.md)."""
    extra = set(body) & REPLAY_FIELDS
    if extra:
        raise ValidationFailed(
            f"A matrix experiment has no span or request ({', '.join(sorted(extra))}"
            " given): its calls come from its variants and inputs.",
            param=sorted(extra)[0],
        )
    if body.get("status", "draft") != "draft":
        raise ValidationFailed("A new experiment starts as draft.", param="status")
    now = now_iso()
    return ExperimentRecord(
        id=new_experiment_id(),
        name=optional_str(body, "name", limit=500)
        or f"Experiment {datetime.now(UTC):%Y-%m-%d %H:%M}",
        description=optional_str(body, "description"),
        original_span_id="",
        original_trace_id="",
        original_request={},
        modified_request={},
        created_at=now,
        updated_at=now,
        project_id=project_id(body),
        tags=validate_tags(body.get("tags")),
        favorite=validate_bool(body.get("favorite", False), "favorite"),
        kind="matrix",
    ).as_dict()


def new_variant_id() -> str:
    return "var_" + new_run_id().removeprefix("exprun_")


def new_input_id() -> str:
    return "inp_" + new_run_id().removeprefix("exprun_")


def new_matrix_run_id() -> str:
    return "mrun_" + new_run_id().removeprefix("exprun_")


@dataclass(slots=True)
class RunOptions:
    input_ids: list[str] | None
    variant_ids: list[str] | None
    repetitions: int
    concurrency: int
    resume: bool
    run_id: str | None


def _ids(value: Any, param: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed(f"{param} must be a list of ids.", param=param)
    return list(dict.fromkeys(value))


def _bounded(value: Any, param: str, default: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ValidationFailed(f"{param} must be an integer from 1 to {high}.", param=param)
    return value


def parse_run(body: Any, default_concurrency: int) -> RunOptions:
    body = snake_case(body if isinstance(body, dict) else {})
    unknown = set(body) - RUN_FIELDS
    if unknown:
        raise ValidationFailed(
            f"Unknown run field(s): {', '.join(sorted(unknown))}. Accepted: inputIds,"
            " variantIds, repetitions, concurrency, resume, runId.",
            param=sorted(unknown)[0],
        )
    resume = body.get("resume", False)
    if not isinstance(resume, bool):
        raise ValidationFailed("resume must be true or false.", param="resume")
    options = RunOptions(
        input_ids=_ids(body.get("input_ids"), "inputIds"),
        variant_ids=_ids(body.get("variant_ids"), "variantIds"),
        repetitions=_bounded(body.get("repetitions"), "repetitions", 1, MAX_REPETITIONS),
        concurrency=_bounded(
            body.get("concurrency"), "concurrency", default_concurrency, MAX_CONCURRENCY
        ),
        resume=resume,
        run_id=body.get("run_id") if isinstance(body.get("run_id"), str) else None,
    )
    if resume and {"input_ids", "variant_ids", "repetitions"} & set(body):
        raise ValidationFailed(
            "A resume runs its run's own cells: send resume (and runId), not inputIds,"
            " variantIds or repetitions.",
            param="resume",
        )
    return options


def seconds_between(start: str, end: str) -> float | None:
    """Seconds from one ISO time to another (None if either is not one)."""
    try:
        begun = datetime.fromisoformat(start.replace("Z", "+00:00"))
        ended = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return round(max(0.0, (ended - begun).total_seconds()), 3)


def chosen_items(
    items: list[dict[str, Any]], ids: list[str] | None, param: str, what: str
) -> list[dict[str, Any]]:
    """The items named by ``ids``, in that order (all when None); an unknown id is a
    404 naming ``param``."""
    if ids is None:
        return items
    by_id = {item["id"]: item for item in items}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise NotFound(
            f"No {what} {', '.join(repr(u) for u in unknown[:5])} in this experiment.",
            param=param,
        )
    return [by_id[i] for i in ids]


def retry_delay(headers: Mapping[str, str], attempt: int) -> float:
    """Seconds to wait before retry ``attempt``: the upstream's Retry-After (seconds)
    when it gives one, else an exponential backoff; never past `MAX_RETRY_WAIT_S`."""
    raw = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    try:
        delay = float(raw) if raw is not None else 0.5 * 2 ** (attempt - 1)
    except ValueError:
        delay = 0.5 * 2 ** (attempt - 1)  # an HTTP date: back off as if none was given
    return max(0.0, min(delay, MAX_RETRY_WAIT_S))
