"""The statistics of experiment results, checked against figures computed independently
here (by hand, or with numpy / scipy called directly on the data as a statistician would),
never by calling the module twice."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from gateway.evaluation.statistics import (
    MetricSpec,
    Observation,
    analyze,
    compare,
    estimate,
    holm,
    input_means,
    mcnemar_exact,
    percentile,
    stability,
)
from gateway.evaluation.verdict import comparison_sentence, corrections_sentence

CORRECTNESS = MetricSpec("correctness", "numeric", "higher")
PASSED = MetricSpec("passed", "boolean", "higher")
LATENCY = MetricSpec("latency_score", "numeric", "lower")


def obs(variant: str, values: list[float | None], reps: int = 1) -> list[Observation]:
    """``values[i]`` for input i, repeated ``reps`` times."""
    return [Observation(variant, f"in{i}", v, r) for i, v in enumerate(values) for r in range(reps)]


def t_ci(x: np.ndarray) -> tuple[float, float, float]:
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def test_identical_variants_show_no_difference_and_say_what_would_have_shown() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.9, 20)
    data = {"correctness": obs("A", list(base)) + obs("B", list(base))}
    result = analyze(data, [CORRECTNESS], ["A", "B"])
    (c,) = result.comparisons
    assert c.outcome == "no_difference"
    assert c.difference == pytest.approx(0.0)
    assert c.p_value == 1.0
    # The differences do not vary: the detectable difference falls back on the two
    # columns' spread, sqrt(s_A^2 + s_B^2), at 5% two-sided and 80% power.
    sd = math.sqrt(2) * base.std(ddof=1)
    expected = (stats.t.ppf(0.975, 19) + stats.t.ppf(0.8, 19)) * sd / math.sqrt(20)
    assert c.mde == pytest.approx(expected)
    sentence = comparison_sentence(c, {"A": "A", "B": "B"})
    assert sentence.startswith("No detectable difference between B and A on correctness")
    assert f"with 20 inputs a difference under {expected:.2g} would not show" in sentence


def test_a_clear_shift_is_detected_with_the_paired_figures() -> None:
    rng = np.random.default_rng(2)
    base = rng.uniform(0.3, 0.7, 40)
    other = base + 0.12 + rng.normal(0, 0.05, 40)
    data = {"correctness": obs("A", list(base)) + obs("B", list(other))}
    (c,) = analyze(data, [CORRECTNESS], ["A", "B"]).comparisons
    d = other - base
    mean, low, high = t_ci(d)
    assert c.difference == pytest.approx(mean)
    assert (c.low, c.high) == (pytest.approx(low), pytest.approx(high))
    assert c.p_value == pytest.approx(stats.ttest_rel(other, base).pvalue)
    assert c.test == "paired_t"
    assert c.outcome == "improvement"
    sentence = comparison_sentence(c, {"A": "v1", "B": "v2"})
    assert sentence == (
        f"v2 scores {mean:.2g} higher than v1 on correctness (95% CI {low:.2g} to {high:.2g})"
        " over 40 inputs: a real improvement."
    )


def test_repetitions_are_one_cluster_per_input() -> None:
    # Four inputs, each repeated ten times with the same answer. Per input the variant
    # moves by +0.3, -0.1, +0.25, -0.05: as 40 independent pairs that looks certain;
    # as 4 inputs it is not.
    base = [0.5, 0.6, 0.4, 0.7]
    shift = [0.3, -0.1, 0.25, -0.05]
    other = [b + s for b, s in zip(base, shift, strict=True)]
    data = {"correctness": obs("A", base, reps=10) + obs("B", other, reps=10)}
    (c,) = analyze(data, [CORRECTNESS], ["A", "B"]).comparisons
    naive = stats.ttest_rel(np.repeat(other, 10), np.repeat(base, 10)).pvalue
    assert naive < 0.01  # what treating repeats as independent would claim
    clustered = stats.ttest_rel(np.array(other), np.array(base)).pvalue
    assert c.p_value == pytest.approx(clustered)
    assert c.p_value > 0.05 and c.outcome == "no_difference"
    assert c.n_inputs == 4
    # The variant's own CI: a t-interval over the 4 input means, not over 40 cells.
    noisy = [
        Observation("A", f"in{i}", b + (0.1 if r % 2 else -0.1), r)
        for i, b in enumerate(base)
        for r in range(10)
    ]
    e = estimate(noisy, CORRECTNESS, "A")
    _, low, high = t_ci(np.array(base))
    assert (e.low, e.high) == (pytest.approx(low), pytest.approx(high))
    assert e.n_inputs == 4 and e.n_values == 40


def test_errors_are_left_out_of_quality_and_counted_apart() -> None:
    values = [0.9, None, 0.7, 0.8, None, 0.6]
    e = estimate(obs("A", values), CORRECTNESS, "A")
    clean = np.array([0.9, 0.7, 0.8, 0.6])
    mean, low, high = t_ci(clean)
    assert e.errors == 2 and e.n_inputs == 4
    assert e.value == pytest.approx(mean)
    assert (e.low, e.high) == (pytest.approx(low), pytest.approx(high))
    # An input whose only cell errored is not shared, so it is not compared.
    base = obs("A", [0.5, 0.5, 0.5, 0.5, 0.5])
    other = obs("B", [0.6, None, 0.6, 0.6, 0.6])
    c = compare(input_means(base), input_means(other), CORRECTNESS, baseline_id="A", variant_id="B")
    assert c.n_inputs == 4


def test_mcnemar_exact_on_a_known_table() -> None:
    # 20 inputs: 6 pass under both, 1 only under A, 9 only under B, 4 under neither.
    # Exact McNemar: 2 * P(X <= 1), X ~ Binomial(10, 1/2) = 2 * 11 / 1024.
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    a = [1.0] * 6 + [1.0] * 1 + [0.0] * 9 + [0.0] * 4
    b = [1.0] * 6 + [0.0] * 1 + [1.0] * 9 + [0.0] * 4
    c = compare(
        input_means(obs("A", a)), input_means(obs("B", b)), PASSED, baseline_id="A", variant_id="B"
    )
    assert c.test == "mcnemar_exact"
    assert c.p_value == pytest.approx(22 / 1024)
    assert c.difference == pytest.approx((9 - 1) / 20)
    assert c.low is not None and c.high is not None and 0 < c.low < 0.4 < c.high <= 1
    assert [f.input for f in c.flips if f.change == "pass_to_fail"] == ["in6"]
    assert sorted(f.input for f in c.flips if f.change == "fail_to_pass") == sorted(
        f"in{i}" for i in range(7, 16)
    )


def test_pass_rate_ci_keeps_a_width_at_100_percent() -> None:
    e = estimate(obs("A", [1.0] * 5), PASSED, "A")
    z = stats.norm.ppf(0.975)
    assert e.value == 1.0 and e.high == pytest.approx(1.0)
    assert e.low == pytest.approx(5 / (5 + z * z))  # Wilson's lower bound at p = 1
    # Every pair agreeing is not certainty about the difference either.
    c = compare(
        input_means(obs("A", [1.0, 0.0] * 5)),
        input_means(obs("B", [1.0, 0.0] * 5)),
        PASSED,
        baseline_id="A",
        variant_id="B",
    )
    assert c.low is not None and c.high is not None and c.low < -0.05 and c.high > 0.05


def test_holm_on_known_p_values() -> None:
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.5*2 = 1.0 caps at 1; 0.9*1 = 0.9 is raised to 1.0 to stay monotone.
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.2, 0.01]) == pytest.approx([0.2, 0.02])


def test_several_comparisons_are_corrected_together() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0.3, 0.7, 30)
    b = base + 0.05 + rng.normal(0, 0.1, 30)
    c = base - 0.01 + rng.normal(0, 0.1, 30)
    data = {"correctness": obs("A", list(base)) + obs("B", list(b)) + obs("C", list(c))}
    result = analyze(data, [CORRECTNESS], ["A", "B", "C"])
    raw = [stats.ttest_rel(b, base).pvalue, stats.ttest_rel(c, base).pvalue]
    low_p, high_p = sorted(raw)
    expected = {low_p: min(1, 2 * low_p), high_p: max(min(1, 2 * low_p), high_p)}
    for comparison, p in zip(result.comparisons, raw, strict=True):
        assert comparison.p_value == pytest.approx(p)
        assert comparison.p_adjusted == pytest.approx(expected[p])
        assert comparison.comparisons == 2
    said = corrections_sentence(result.comparisons)
    assert said is not None and "2 comparisons" in said and "Holm" in said


def test_lower_is_better_is_worded_the_right_way() -> None:
    rng = np.random.default_rng(4)
    base = rng.uniform(1.0, 2.0, 30)
    faster = base - 0.5 + rng.normal(0, 0.05, 30)
    slower = base + 0.5 + rng.normal(0, 0.05, 30)
    data = {"latency_score": obs("A", list(base)) + obs("B", list(faster)) + obs("C", list(slower))}
    b, c = analyze(data, [LATENCY], ["A", "B", "C"]).comparisons
    assert b.outcome == "improvement" and c.outcome == "regression"
    said_b = comparison_sentence(b, {})
    assert "B scores" in said_b and "lower than A" in said_b
    assert "(lower is better)" in said_b and said_b.endswith("a real improvement.")
    assert comparison_sentence(c, {}).endswith("a real regression.")


def test_too_few_inputs_is_said_plainly() -> None:
    data = {"correctness": obs("A", [0.1, 0.2]) + obs("B", [0.9, 0.95])}
    (c,) = analyze(data, [CORRECTNESS], ["A", "B"]).comparisons
    assert c.outcome == "too_few_inputs" and c.p_value is None
    assert comparison_sentence(c, {}) == (
        "Too few inputs to compare B with A on correctness: 2 shared inputs with scores,"
        " at least 3 needed."
    )


def test_stability_and_pass_k() -> None:
    # Input 0 passes 3/3, input 1 fails 3/3, input 2 passes 2/3, input 3 passes 3/3.
    data = [
        *[Observation("A", "in0", 1.0, r) for r in range(3)],
        *[Observation("A", "in1", 0.0, r) for r in range(3)],
        Observation("A", "in2", 1.0, 0),
        Observation("A", "in2", 0.0, 1),
        Observation("A", "in2", 1.0, 2),
        *[Observation("A", "in3", 1.0, r) for r in range(3)],
    ]
    s = stability(data, PASSED, "A")
    assert s.repeated_inputs == 4 and s.repetitions == 3
    assert s.agree == pytest.approx(3 / 4)
    assert s.pass_all == pytest.approx(2 / 4)
    # The pass rate is the mean of the inputs' shares: (1 + 0 + 2/3 + 1) / 4.
    assert estimate(data, PASSED, "A").value == pytest.approx((1 + 0 + 2 / 3 + 1) / 4)


def test_cost_against_quality_names_the_cheapest_not_worse() -> None:
    rng = np.random.default_rng(5)
    best = rng.uniform(0.6, 0.9, 30)
    close = best - 0.005 + rng.normal(0, 0.05, 30)  # not significantly worse
    poor = best - 0.3 + rng.normal(0, 0.02, 30)  # clearly worse, and cheapest
    data = {"correctness": obs("A", list(best)) + obs("B", list(close)) + obs("C", list(poor))}
    costs = {"A": 0.004, "B": 0.001, "C": 0.0002}
    result = analyze(data, [CORRECTNESS], ["A", "B", "C"], cost_per_cell=costs)
    cq = result.cost_quality
    assert cq.best == "A"
    assert stats.ttest_rel(close, best).pvalue > 0.05
    assert stats.ttest_rel(poor, best).pvalue < 0.001
    assert cq.cheapest_not_worse == "B"
    assert sorted(cq.not_worse) == ["A", "B"]


def test_percentile_matches_numpy() -> None:
    values = [120.0, 80.0, 95.0, 300.0, 101.0, 99.0, 250.0]
    for q in (50, 95, 0, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([], 50) is None


def test_the_gateway_starts_without_importing_scipy() -> None:
    code = "import sys, gateway.app; print('scipy' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]
