"""The statistics that say whether one variant is really better than another.

Pure functions over typed inputs (`Observation`, `MetricSpec`): no store, no HTTP.
`gateway.evaluation.results` reads an experiment into these; `gateway.evaluation.verdict`
puts what comes out into words.

The unit of evidence is the *input*, not the cell. Repetitions of one input under one
variant are not independent samples (the same prompt tends to get the same kind of
answer), so every figure first averages a variant's values within each input, then
works over inputs: n is always the number of inputs. Treating 10 repetitions of 4
inputs as 40 samples would make noise look like a finding.

Numbers come from scipy.stats (t and normal quantiles, the paired t-test, the exact
binomial test), imported inside the functions: the gateway does not pay for scipy when
it starts. The Holm correction, the Wilson and Newcombe intervals are closed formulas
written out here, each with its reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["numeric", "boolean"]
Direction = Literal["higher", "lower"]
Outcome = Literal["improvement", "regression", "no_difference", "too_few_inputs"]

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8  # the power the minimum detectable difference is stated at
MIN_INPUTS = 3  # fewer shared inputs than this: no test is attempted
FEW_INPUTS = 10  # fewer than this: the verdict says the evidence is thin
# Values closer than this are "the same" (repeats agreeing, identical pairs).
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Observation:
    """One value of one metric on one cell: ``value`` None is an error (the cell
    failed, or the evaluator could not judge), kept out of the quality figures."""

    variant: str
    input: str
    value: float | None
    repetition: int = 0


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """What a metric's values are: ``boolean`` values are 1 (pass) or 0 (fail);
    ``direction`` says which way is better."""

    key: str
    kind: Kind = "numeric"
    direction: Direction = "higher"
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.key


@dataclass(slots=True)
class Estimate:
    """A variant's mean (numeric) or pass rate (boolean) on a metric, with its 95% CI
    over inputs (None when it cannot be computed: fewer than two inputs)."""

    variant: str
    metric: str
    kind: Kind
    value: float | None
    low: float | None
    high: float | None
    n_inputs: int
    n_values: int
    errors: int
    method: str


@dataclass(slots=True)
class Stability:
    """How far a variant's repetitions of one input agree on a metric. ``agree``: the
    share of repeated inputs whose repeats all give the same value; ``pass_all``
    (boolean metrics, pass^k): the share of repeated inputs passing every repeat."""

    variant: str
    metric: str
    repeated_inputs: int
    repetitions: int  # the most repeats of one input
    agree: float | None
    pass_all: float | None


@dataclass(frozen=True, slots=True)
class Flip:
    """An input that passed under the baseline and fails under the variant, or the
    reverse (pass: a majority of its repeats pass)."""

    input: str
    change: Literal["pass_to_fail", "fail_to_pass"]
    baseline: float
    variant: float


@dataclass(slots=True)
class Comparison:
    """A variant against the baseline on one metric, over the inputs both have.
    ``difference`` is variant minus baseline (so for a lower-is-better metric a
    negative difference is an improvement); ``p_adjusted`` is Holm's, over all the
    comparisons made together (``comparisons``)."""

    metric: str
    metric_name: str
    kind: Kind
    direction: Direction
    baseline: str
    variant: str
    n_inputs: int
    baseline_value: float | None
    variant_value: float | None
    difference: float | None
    low: float | None
    high: float | None
    test: str
    p_value: float | None
    p_adjusted: float | None = None
    comparisons: int = 1
    mde: float | None = None
    outcome: Outcome = "too_few_inputs"
    flips: list[Flip] = field(default_factory=list)

    @property
    def significant(self) -> bool:
        return self.p_adjusted is not None and self.p_adjusted < ALPHA


@dataclass(slots=True)
class CostQuality:
    """Which variant is best on the primary metric, and the cheapest one that is not
    significantly worse than it (per-cell cost of the variant's own calls)."""

    metric: str | None
    best: str | None
    cheapest_not_worse: str | None
    not_worse: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)


# --- small building blocks -------------------------------------------------------------


def per_input(observations: Iterable[Observation]) -> dict[str, list[float]]:
    """The values of each input, errors left out."""
    out: dict[str, list[float]] = {}
    for obs in observations:
        if obs.value is not None and math.isfinite(obs.value):
            out.setdefault(obs.input, []).append(obs.value)
    return out


def input_means(observations: Iterable[Observation]) -> dict[str, float]:
    """Each input's mean value: its repetitions collapsed into one cluster value."""
    return {key: sum(vs) / len(vs) for key, vs in per_input(observations).items()}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks,
    as numpy's default does; None for no values. Pure Python: it runs per request."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _sd(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def t_interval(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """Mean and its 95% t-interval; no interval under two values."""
    from scipy import stats

    m = _mean(values)
    if len(values) < 2:
        return m, None, None
    half = float(stats.t.ppf(1 - ALPHA / 2, len(values) - 1)) * _sd(values) / math.sqrt(len(values))
    return m, m - half, m + half


def wilson(p: float, n: float) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``p`` out of ``n`` (Wilson 1927): unlike
    the normal approximation it stays inside [0, 1] and keeps a width at 0% and 100%,
    which is where few inputs often land."""
    from scipy import stats

    z = float(stats.norm.ppf(1 - ALPHA / 2))
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979) of several p-values, in their order:
    the i-th smallest is multiplied by (m - i), made monotone, capped at 1. It keeps
    the chance of any false finding among all the comparisons at 5%."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _is_binary(values: Iterable[float]) -> bool:
    return all(abs(v) < EPSILON or abs(v - 1) < EPSILON for v in values)


# --- one variant ---------------------------------------------------------------------


def estimate(observations: Sequence[Observation], spec: MetricSpec, variant: str) -> Estimate:
    """A variant's figure on a metric with its 95% CI, clustered by input.

    Numeric: the mean of the inputs' means, with a t-interval over inputs.
    Boolean: the pass rate (the mean of the inputs' pass shares), with a Wilson
    interval taking n as the number of inputs. Repeats of an input are positively
    correlated, so the effective sample size lies between the inputs and the cells;
    counting inputs is the cautious end, and Wilson behaves at 0% and 100%, where a
    t-interval over 0/1 values would collapse to a point."""
    own = [o for o in observations if o.variant == variant]
    errors = sum(1 for o in own if o.value is None)
    values = per_input(own)
    means = [sum(vs) / len(vs) for vs in values.values()]
    n_values = sum(len(vs) for vs in values.values())
    if not means:
        return Estimate(variant, spec.key, spec.kind, None, None, None, 0, 0, errors, "none")
    if spec.kind == "boolean":
        rate = _mean(means)
        low, high = wilson(rate, len(means))
        return Estimate(
            variant, spec.key, spec.kind, rate, low, high, len(means), n_values, errors, "wilson"
        )
    m, low_t, high_t = t_interval(means)
    return Estimate(
        variant, spec.key, spec.kind, m, low_t, high_t, len(means), n_values, errors, "t"
    )


def stability(observations: Sequence[Observation], spec: MetricSpec, variant: str) -> Stability:
    """Agreement of a variant's repeats, over the inputs it ran more than once."""
    repeated = {
        key: vs
        for key, vs in per_input(o for o in observations if o.variant == variant).items()
        if len(vs) > 1
    }
    if not repeated:
        return Stability(variant, spec.key, 0, 1, None, None)
    agree = sum(1 for vs in repeated.values() if max(vs) - min(vs) < EPSILON) / len(repeated)
    pass_all = None
    if spec.kind == "boolean":
        pass_all = sum(1 for vs in repeated.values() if min(vs) > 1 - EPSILON) / len(repeated)
    k = max(len(vs) for vs in repeated.values())
    return Stability(variant, spec.key, len(repeated), k, agree, pass_all)


# --- two variants --------------------------------------------------------------------


def newcombe_paired(a: int, b: int, c: int, d: int) -> tuple[float, float]:
    """95% CI of p2 - p1 for paired pass/fail outcomes (Newcombe 1998, method 10, with
    its correction of phi): a = both pass, b = first passes only, c = second passes
    only, d = both fail. Built from the two Wilson intervals, so it keeps a width when
    every pair agrees, where the difference of means would claim certainty."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(p1, n)
    l2, u2 = wilson(p2, n)
    denominator = math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    phi = 0.0
    if denominator > 0:
        ad, bc = a * d, b * c
        phi = (max(ad - bc - n / 2, 0.0) if ad > bc else ad - bc) / denominator
    theta = p2 - p1
    below = math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    above = math.sqrt(max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2))
    return max(-1.0, theta - below), min(1.0, theta + above)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar test: of the b + c pairs that disagree, is the split b : c more
    uneven than a fair coin gives? (two-sided binomial test, scipy)."""
    from scipy import stats

    if b + c == 0:
        return 1.0
    return float(stats.binomtest(c, b + c, 0.5).pvalue)


def _paired_t(differences: Sequence[float]) -> float:
    from scipy import stats

    if _sd(differences) < EPSILON:
        # Every input moved by the same amount: no noise to weigh it against.
        return 1.0 if abs(_mean(differences)) < EPSILON else 0.0
    return float(stats.ttest_1samp(differences, 0.0).pvalue)


def minimum_detectable(
    differences: Sequence[float],
    first: Sequence[float],
    second: Sequence[float],
    kind: Kind,
    alpha: float,
) -> float | None:
    """The smallest true difference a paired test over these inputs would find with
    80% power at level ``alpha`` (two-sided): (t[1-alpha/2] + t[power]) * sd / sqrt(n).
    The sd is that of the paired differences; when they do not vary (identical
    variants), that of two unpaired columns; for pass rates at worst 0.5 each."""
    from scipy import stats

    n = len(differences)
    if n < 2:
        return None
    sd = _sd(differences)
    if sd < EPSILON:
        sd = math.sqrt(_sd(first) ** 2 + _sd(second) ** 2)
    if sd < EPSILON:
        if kind != "boolean":
            return None
        sd = math.sqrt(0.5)
    df = n - 1
    factor = float(stats.t.ppf(1 - alpha / 2, df)) + float(stats.t.ppf(POWER, df))
    return factor * sd / math.sqrt(n)


def _passes(share: float) -> bool | None:
    """An input's repeats pass by majority; an even split is neither."""
    if abs(share - 0.5) < EPSILON:
        return None
    return share > 0.5


def flips(baseline: Mapping[str, float], variant: Mapping[str, float]) -> list[Flip]:
    out: list[Flip] = []
    for key in sorted(set(baseline) & set(variant)):
        before, after = _passes(baseline[key]), _passes(variant[key])
        if before is True and after is False:
            out.append(Flip(key, "pass_to_fail", baseline[key], variant[key]))
        elif before is False and after is True:
            out.append(Flip(key, "fail_to_pass", baseline[key], variant[key]))
    return out


def compare(
    baseline: Mapping[str, float],
    variant: Mapping[str, float],
    spec: MetricSpec,
    *,
    baseline_id: str,
    variant_id: str,
) -> Comparison:
    """The variant against the baseline over their shared inputs (per-input means).

    Numeric: the mean paired difference with a t-interval, and the paired t-test.
    Boolean with one outcome per input (every input's repeats agree): Newcombe's
    interval and the exact McNemar test on the discordant pairs. Boolean with mixed
    repeats: a t-interval on the per-input pass-share differences and the sign test
    (an exact binomial test on inputs that went up against those that went down,
    which is McNemar's test when the shares are 0 or 1).
    The p-value is unadjusted here; `analyze` applies Holm over all comparisons."""
    shared = sorted(set(baseline) & set(variant))
    first = [baseline[k] for k in shared]
    second = [variant[k] for k in shared]
    diffs = [s - f for f, s in zip(first, second, strict=True)]
    comparison = Comparison(
        metric=spec.key,
        metric_name=spec.label,
        kind=spec.kind,
        direction=spec.direction,
        baseline=baseline_id,
        variant=variant_id,
        n_inputs=len(shared),
        baseline_value=_mean(first) if first else None,
        variant_value=_mean(second) if second else None,
        difference=_mean(diffs) if diffs else None,
        low=None,
        high=None,
        test="none",
        p_value=None,
    )
    if spec.kind == "boolean":
        comparison.flips = flips(baseline, variant)
    if len(shared) < MIN_INPUTS:
        return comparison
    if spec.kind == "boolean" and _is_binary(first) and _is_binary(second):
        a = sum(1 for f, s in zip(first, second, strict=True) if f > 0.5 and s > 0.5)
        b = sum(1 for f, s in zip(first, second, strict=True) if f > 0.5 >= s)
        c = sum(1 for f, s in zip(first, second, strict=True) if s > 0.5 >= f)
        d = len(shared) - a - b - c
        comparison.low, comparison.high = newcombe_paired(a, b, c, d)
        comparison.p_value = mcnemar_exact(b, c)
        comparison.test = "mcnemar_exact"
    elif spec.kind == "boolean":
        _, comparison.low, comparison.high = t_interval(diffs)
        up = sum(1 for x in diffs if x > EPSILON)
        down = sum(1 for x in diffs if x < -EPSILON)
        comparison.p_value = mcnemar_exact(down, up)
        comparison.test = "sign_test"
    else:
        _, comparison.low, comparison.high = t_interval(diffs)
        comparison.p_value = _paired_t(diffs)
        comparison.test = "paired_t"
    comparison.mde = minimum_detectable(diffs, first, second, spec.kind, ALPHA)
    return comparison


def conclude(comparisons: Sequence[Comparison]) -> None:
    """Holm-adjust the p-values of comparisons made together, and set each one's
    outcome (which way is better follows the metric's direction). The minimum
    detectable difference is restated at the first Holm level (alpha / m), the bar
    the smallest p-value had to clear."""
    tested = [c for c in comparisons if c.p_value is not None]
    adjusted = holm([c.p_value for c in tested if c.p_value is not None])
    for comparison, p in zip(tested, adjusted, strict=True):
        comparison.p_adjusted = p
        comparison.comparisons = len(tested)
    for comparison in comparisons:
        if comparison.p_value is None:
            comparison.outcome = "too_few_inputs"
        elif comparison.significant and comparison.difference is not None:
            better = comparison.difference > 0
            if comparison.direction == "lower":
                better = not better
            comparison.outcome = "improvement" if better else "regression"
        else:
            comparison.outcome = "no_difference"
        if comparison.mde is not None and len(tested) > 1:
            comparison.mde = comparison.mde * _mde_scale(comparison.n_inputs, len(tested))


def _mde_scale(n: int, m: int) -> float:
    """How much larger the detectable difference is at level alpha/m than at alpha."""
    from scipy import stats

    df = n - 1
    power = float(stats.t.ppf(POWER, df))
    plain = float(stats.t.ppf(1 - ALPHA / 2, df)) + power
    corrected = float(stats.t.ppf(1 - ALPHA / (2 * m), df)) + power
    return corrected / plain


# --- everything at once --------------------------------------------------------------


@dataclass(slots=True)
class Analysis:
    """Every figure for an experiment's run: per variant x metric, the comparisons
    against the baseline (Holm over all of them), stability, cost against quality."""

    baseline: str | None
    estimates: list[Estimate]
    comparisons: list[Comparison]
    stability: list[Stability]
    cost_quality: CostQuality


def _better(spec: MetricSpec, a: float, b: float) -> bool:
    return a > b if spec.direction == "higher" else a < b


def cost_quality(
    observations: Sequence[Observation],
    spec: MetricSpec | None,
    estimates: Sequence[Estimate],
    cost_per_cell: Mapping[str, float | None],
) -> CostQuality:
    """The best variant on ``spec`` and the cheapest variant not significantly worse
    than it (paired against the best, Holm over those comparisons). A variant whose
    cost is unknown is never named cheapest."""
    if spec is None:
        return CostQuality(None, None, None)
    scored = [e for e in estimates if e.metric == spec.key and e.value is not None]
    if not scored:
        return CostQuality(spec.key, None, None)
    best = scored[0]
    for e in scored[1:]:
        if e.value is not None and best.value is not None and _better(spec, e.value, best.value):
            best = e
    means = {
        e.variant: input_means(o for o in observations if o.variant == e.variant) for e in scored
    }
    others = [
        compare(
            means[best.variant],
            means[e.variant],
            spec,
            baseline_id=best.variant,
            variant_id=e.variant,
        )
        for e in scored
        if e.variant != best.variant
    ]
    conclude(others)
    not_worse = [best.variant] + [c.variant for c in others if c.outcome != "regression"]
    priced = [v for v in not_worse if cost_per_cell.get(v) is not None]
    cheapest = min(priced, key=lambda v: cost_per_cell[v] or 0.0) if priced else None
    return CostQuality(spec.key, best.variant, cheapest, not_worse, others)


def analyze(
    by_metric: Mapping[str, Sequence[Observation]],
    specs: Sequence[MetricSpec],
    variants: Sequence[str],
    *,
    baseline: str | None = None,
    primary: str | None = None,
    cost_per_cell: Mapping[str, float | None] | None = None,
) -> Analysis:
    """Every figure for ``variants`` (in order; the baseline defaults to the first)
    over each metric's observations. Comparisons: each other variant against the
    baseline on each metric, Holm-adjusted together (variants x metrics). The
    primary metric (cost against quality) defaults to the first spec."""
    base = baseline if baseline is not None else (variants[0] if variants else None)
    estimates: list[Estimate] = []
    comparisons: list[Comparison] = []
    stabilities: list[Stability] = []
    for spec in specs:
        observations = by_metric.get(spec.key, ())
        for variant in variants:
            estimates.append(estimate(observations, spec, variant))
            stabilities.append(stability(observations, spec, variant))
        if base is None:
            continue
        base_means = input_means(o for o in observations if o.variant == base)
        for variant in variants:
            if variant == base:
                continue
            own = input_means(o for o in observations if o.variant == variant)
            comparisons.append(compare(base_means, own, spec, baseline_id=base, variant_id=variant))
    conclude(comparisons)
    chosen = next((s for s in specs if s.key == primary), specs[0] if specs else None)
    quality = cost_quality(
        by_metric.get(chosen.key, ()) if chosen else (),
        chosen,
        estimates,
        cost_per_cell or {},
    )
    return Analysis(base, estimates, comparisons, stabilities, quality)
