"""The statistics in sentences a non-statistician reads.

Each `gateway.evaluation.statistics.Comparison` becomes one sentence: how much the
variant differs from the baseline on the metric, the 95% interval, over how many
inputs, and what that means ("a real improvement", "a real regression", "no detectable
difference" with the smallest difference that would have shown, or "too few inputs").
"Better" follows the metric's direction: on a lower-is-better metric, lower is the
improvement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.evaluation.statistics import (
    FEW_INPUTS,
    MIN_INPUTS,
    Comparison,
    CostQuality,
)


def number(value: float) -> str:
    """A figure as people write it: two significant digits under 1, two decimals up to
    100, whole numbers beyond; no exponent until it is tiny."""
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if size >= 0.0001:
        text = f"{value:.2g}"
        if "e" in text:  # .2g switches to exponents under 1e-4 only; guard anyway
            text = f"{value:.6f}".rstrip("0")
        return text
    return f"{value:.1e}"


def points(share: float) -> str:
    """A difference of pass rates in percentage points."""
    return number(share * 100)


def percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def _name(names: Mapping[str, str], key: str) -> str:
    return names.get(key, key)


def _few(n: int) -> str:
    return f" Only {n} inputs: treat it as a first look." if n < FEW_INPUTS else ""


def comparison_sentence(c: Comparison, names: Mapping[str, str]) -> str:
    """One comparison in words."""
    variant, baseline = _name(names, c.variant), _name(names, c.baseline)
    metric = c.metric_name
    if c.outcome == "too_few_inputs" or c.difference is None:
        return (
            f"Too few inputs to compare {variant} with {baseline} on {metric}:"
            f" {c.n_inputs} shared input{'s' if c.n_inputs != 1 else ''} with scores,"
            f" at least {MIN_INPUTS} needed."
        )
    if c.outcome in ("improvement", "regression"):
        what = "a real improvement" if c.outcome == "improvement" else "a real regression"
        return f"{_size(c, variant, baseline)} over {c.n_inputs} inputs: {what}.{_few(c.n_inputs)}"
    unit = " points" if c.kind == "boolean" else ""
    mde = c.mde if c.mde is None or c.kind != "boolean" else c.mde * 100
    if mde is not None:
        text = (
            f"No detectable difference between {variant} and {baseline} on {metric}: with"
            f" {c.n_inputs} inputs a difference under {number(mde)}{unit} would not show."
        )
    else:
        text = (
            f"No detectable difference between {variant} and {baseline} on {metric}"
            f" over {c.n_inputs} inputs."
        )
    excludes_zero = c.low is not None and c.high is not None and (c.low > 0 or c.high < 0)
    if excludes_zero and c.comparisons > 1:
        text += (
            f" The difference seen ({_signed(c)}) could be chance once all"
            f" {c.comparisons} comparisons are counted."
        )
    return text + _few(c.n_inputs)


def _signed(c: Comparison) -> str:
    d = c.difference or 0.0
    if c.kind == "boolean":
        return f"{'+' if d >= 0 else '-'}{points(abs(d))} points"
    return f"{'+' if d >= 0 else '-'}{number(abs(d))}"


def _interval(c: Comparison) -> str:
    if c.low is None or c.high is None:
        return ""
    if c.kind == "boolean":
        return f" (95% CI {points(c.low)} to {points(c.high)} points)"
    return f" (95% CI {number(c.low)} to {number(c.high)})"


def _size(c: Comparison, variant: str, baseline: str) -> str:
    d = c.difference or 0.0
    way = "higher" if d > 0 else "lower"
    note = " (lower is better)" if c.direction == "lower" else ""
    if c.kind == "boolean":
        return (
            f"{variant} passes {c.metric_name} {points(abs(d))} points"
            f" {'more' if d > 0 else 'less'} often than {baseline}"
            f" ({percent(c.variant_value or 0.0)} against {percent(c.baseline_value or 0.0)})"
            f"{_interval(c)}{note}"
        )
    return (
        f"{variant} scores {number(abs(d))} {way} than {baseline} on {c.metric_name}"
        f"{_interval(c)}{note}"
    )


def corrections_sentence(comparisons: Sequence[Comparison]) -> str | None:
    """Said when several comparisons were made: they were corrected for it."""
    m = max((c.comparisons for c in comparisons if c.p_value is not None), default=0)
    if m < 2:
        return None
    return (
        f"{m} comparisons were made (variants x metrics); their p-values are"
        " Holm-corrected, so the chance of any false finding among them stays at 5%."
    )


def cost_quality_sentence(
    cq: CostQuality, names: Mapping[str, str], cost_per_cell: Mapping[str, float | None]
) -> str | None:
    """Which variant is best on the primary metric, and the cheapest that is not
    significantly worse."""
    if cq.metric is None or cq.best is None:
        return None
    best = _name(names, cq.best)
    if cq.cheapest_not_worse is None:
        return f"{best} is best on {cq.metric}; the variants' costs are not known."
    cheapest = _name(names, cq.cheapest_not_worse)
    cost = cost_per_cell.get(cq.cheapest_not_worse)
    price = f" at ${number(cost)} per cell" if cost is not None else ""
    if cq.cheapest_not_worse == cq.best:
        return f"{best} is best on {cq.metric} and also the cheapest that is not worse{price}."
    return (
        f"{best} is best on {cq.metric}; {cheapest} is the cheapest variant not"
        f" significantly worse than it{price}."
    )
