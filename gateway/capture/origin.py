"""Where a call came from: a span's ``origin``, stored in its own column.

The gateway makes calls of its own besides the ones apps send through it, and lists,
totals and thread views keep them apart. The value is open text (a new kind of
gateway-made call adds a value, no migration); the ones in use:

* ``app``: a call an application sent through the proxy (the default).
* ``experiment``: a replay made by an experiment run (`gateway.experiments.runner`).
* ``playground``: a call made from the playground (`gateway.playground`).
* ``judge``: an LLM judge's call grading a matrix cell (`gateway.evaluation.judge`).

Every origin but ``app`` is the gateway's
own: thread totals leave those out (``GET /threads`` counts them apart, as ``replays``).

The origin is derived off the request path, when the writer builds a span's row
(`gateway.capture.span.to_record`), from the attributes the caller set on the span:
a span carrying `EXPERIMENT_ATTRIBUTE` is an experiment's replay, one carrying
`PLAYGROUND_ATTRIBUTE` a playground call, one carrying `JUDGE_ATTRIBUTE` a judge's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

APP = "app"
EXPERIMENT = "experiment"
PLAYGROUND = "playground"
JUDGE = "judge"
ORIGINS = (APP, EXPERIMENT, PLAYGROUND, JUDGE)
# The attribute an experiment run sets on its span (`gateway.experiments.runner`
# names it ATTR_EXPERIMENT; tests/test_span_origin.py checks the two agree).
EXPERIMENT_ATTRIBUTE = "spanlab.experiment.id"
# The attribute a playground call sets on its span (its session's id).
PLAYGROUND_ATTRIBUTE = "spanlab.playground.session.id"
# A judge's call names the cell (experiment run) it judged, its experiment and its
# evaluator (not `EXPERIMENT_ATTRIBUTE`: the judge's call is no replay of the experiment).
JUDGE_ATTRIBUTE = "spanlab.judge.run.id"
JUDGE_EXPERIMENT_ATTRIBUTE = "spanlab.judge.experiment.id"
JUDGE_EVALUATOR_ATTRIBUTE = "spanlab.judge.evaluator.id"
# What a filter may name as an origin: a short lowercase word (values are open).
ORIGIN_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def span_origin(attributes: Mapping[str, Any] | None) -> str:
    """The origin of a span with these attributes."""
    if attributes:
        if EXPERIMENT_ATTRIBUTE in attributes:
            return EXPERIMENT
        if PLAYGROUND_ATTRIBUTE in attributes:
            return PLAYGROUND
        if JUDGE_ATTRIBUTE in attributes:
            return JUDGE
    return APP


def origin_from_json(attributes: Any) -> str:
    """The origin of a stored row whose attributes are JSON text (a row written before
    the column existed, as a spill file keeps it)."""
    if isinstance(attributes, str) and (
        EXPERIMENT_ATTRIBUTE in attributes
        or PLAYGROUND_ATTRIBUTE in attributes
        or JUDGE_ATTRIBUTE in attributes
    ):
        try:
            parsed = json.loads(attributes)
        except ValueError:
            return APP
        return span_origin(parsed) if isinstance(parsed, dict) else APP
    return APP
