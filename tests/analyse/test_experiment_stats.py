"""A/B statistics checked against scipy, statsmodels and independent closed forms."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats
from scipy.special import betaln, logsumexp
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from sitepulse.analyse.experiment_stats import (
    BetaPrior,
    VariantCounts,
    bayesian_comparison,
    holm_adjust,
    read_experiment,
    sample_ratio_check,
    two_proportion_test,
)
from sitepulse.analyse.sequential import (
    always_valid_p_values,
    minimum_detectable_effect,
    mixing_sd_for,
    sample_size,
    sequential_sample_size,
    sequential_test,
    sequential_test_history,
)

# (control visitors, control conversions, variant visitors, variant conversions)
COUNT_CASES = [
    (1000, 50, 1000, 65),
    (5000, 400, 4800, 350),
    (20_000, 1000, 20_500, 1100),
    (120, 3, 130, 9),
    (300, 0, 280, 4),
    (1_000_000, 51_000, 1_000_000, 50_000),
]


@pytest.mark.parametrize("counts", COUNT_CASES)
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_two_proportion_test_matches_statsmodels(
    counts: tuple[int, int, int, int], confidence: float
) -> None:
    n_a, x_a, n_b, x_b = counts
    result = two_proportion_test(
        VariantCounts("A", n_a, x_a), VariantCounts("B", n_b, x_b), confidence=confidence
    )
    z, p = proportions_ztest([x_b, x_a], [n_b, n_a])
    low, high = confint_proportions_2indep(
        x_b, n_b, x_a, n_a, method="wald", compare="diff", alpha=1 - confidence
    )
    assert result.z == pytest.approx(z, abs=1e-6)
    assert result.p_value == pytest.approx(p, abs=1e-6)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), abs=1e-6)
    assert result.difference == pytest.approx(x_b / n_b - x_a / n_a, abs=1e-12)
    if x_a:
        assert result.relative_lift == pytest.approx((x_b / n_b) / (x_a / n_a) - 1, rel=1e-9)
    else:
        assert result.relative_lift is None


def _prob_greater(a1: float, b1: float, a2: float, b2: float) -> float:
    """P(X > Y), X ~ Beta(a1, b1), Y ~ Beta(a2, b2), integer a1: Evan Miller's closed-form sum."""
    i = np.arange(int(a1), dtype=np.float64)
    terms = betaln(a2 + i, b1 + b2) - np.log(b1 + i) - betaln(1 + i, b1) - betaln(a2, b2)
    return float(np.exp(logsumexp(terms)))


def _expected_excess(x: tuple[float, float], y: tuple[float, float]) -> float:
    """E[max(X - Y, 0)] = mean_X P(X+ > Y) - mean_Y P(X > Y+), where Z+ has alpha + 1."""
    (a1, b1), (a2, b2) = x, y
    return a1 / (a1 + b1) * _prob_greater(a1 + 1, b1, a2, b2) - a2 / (a2 + b2) * _prob_greater(
        a1, b1, a2 + 1, b2
    )


@pytest.mark.parametrize(
    ("counts", "prior"),
    [
        ((1000, 50, 1000, 60), (1, 1)),
        ((100, 0, 100, 3), (1, 1)),
        ((10, 10, 12, 0), (1, 1)),
        ((0, 0, 10, 5), (1, 1)),
        ((500, 40, 520, 38), (2, 30)),
        ((1000, 10, 100_000, 2000), (1, 1)),
        ((20_000_000, 1_000_000, 20_000_000, 1_003_000), (1, 1)),
    ],
)
def test_bayesian_matches_closed_forms(
    counts: tuple[int, int, int, int], prior: tuple[int, int]
) -> None:
    n_a, x_a, n_b, x_b = counts
    result = bayesian_comparison(
        VariantCounts("A", n_a, x_a), VariantCounts("B", n_b, x_b), prior=BetaPrior(*prior)
    )
    post_a = (prior[0] + x_a, prior[1] + n_a - x_a)
    post_b = (prior[0] + x_b, prior[1] + n_b - x_b)
    assert result.probability_variant_better == pytest.approx(
        _prob_greater(*post_b, *post_a), abs=1e-6
    )
    assert result.expected_loss_variant == pytest.approx(_expected_excess(post_a, post_b), abs=1e-6)
    assert result.expected_loss_control == pytest.approx(_expected_excess(post_b, post_a), abs=1e-6)


def test_bayesian_non_integer_prior_matches_dense_quadrature() -> None:
    result = bayesian_comparison(
        VariantCounts("A", 400, 0), VariantCounts("B", 380, 2), prior=BetaPrior(0.5, 0.5)
    )
    # Evan Miller's sum needs integer parameters; P(B > A) = E_A[sf_B(A)] over A's quantiles.
    a, b = stats.beta(0.5, 400.5), stats.beta(2.5, 378.5)
    u = (np.arange(200_000) + 0.5) / 200_000  # midpoint rule
    assert result.probability_variant_better == pytest.approx(np.mean(b.sf(a.ppf(u))), abs=1e-6)


@pytest.mark.parametrize(
    ("visitors", "weights"),
    [
        ([5000, 5100], [1, 1]),
        ([10_000, 10_400], [1, 1]),
        ([10_000, 10_700], [1, 1]),
        ([3000, 1000, 1050], [2, 1, 1]),
        ([500, 300, 200], [0.5, 0.3, 0.2]),
        ([9000, 1200], [0.9, 0.1]),
    ],
)
def test_sample_ratio_check_matches_scipy_chisquare(
    visitors: list[int], weights: list[float]
) -> None:
    result = sample_ratio_check(visitors, weights)
    expected = np.asarray(weights) / sum(weights) * sum(visitors)
    reference = stats.chisquare(visitors, f_exp=expected)
    assert result.statistic == pytest.approx(reference.statistic, abs=1e-6)
    assert result.p_value == pytest.approx(reference.pvalue, abs=1e-6)
    assert result.mismatch == (reference.pvalue < 0.001)


def test_sample_ratio_check_flags_a_skewed_split_only() -> None:
    assert sample_ratio_check([10_000, 10_700], [1, 1]).mismatch
    assert not sample_ratio_check([10_000, 10_100], [1, 1]).mismatch
    assert sample_ratio_check([10_000, 10_100], [1, 1], threshold=0.5).mismatch


@pytest.mark.parametrize(
    "p_values",
    [
        [0.01],
        [0.01, 0.04],
        [0.03, 0.01, 0.04, 0.002],
        [0.2, 0.2, 0.01, 0.5, 0.049],
        [0.9, 0.8, 0.95],
    ],
)
def test_holm_matches_statsmodels(p_values: list[float]) -> None:
    expected = multipletests(p_values, method="holm")[1]
    assert holm_adjust(p_values) == pytest.approx(tuple(expected), abs=1e-12)


SIZE_CASES = [
    # baseline, mde, kind, alpha, power, ratio
    (0.05, 0.10, "relative", 0.05, 0.8, 1.0),
    (0.20, 0.05, "absolute", 0.01, 0.9, 2.0),
    (0.50, -0.05, "absolute", 0.10, 0.5, 0.5),
    (0.01, 1.00, "relative", 0.05, 0.8, 1.0),
    (0.30, 0.60, "absolute", 0.05, 0.8, 1.0),
    (0.03, 0.02, "relative", 0.05, 0.95, 1.0),
]


@pytest.mark.parametrize(("baseline", "mde", "kind", "alpha", "power", "ratio"), SIZE_CASES)
def test_sample_size_matches_statsmodels(
    baseline: float, mde: float, kind: str, alpha: float, power: float, ratio: float
) -> None:
    plan = sample_size(
        baseline,
        mde,
        mde_kind="relative" if kind == "relative" else "absolute",
        alpha=alpha,
        power=power,
        ratio=ratio,
    )
    target = baseline * (1 + mde) if kind == "relative" else baseline + mde
    h = proportion_effectsize(target, baseline)
    nobs1 = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=ratio)
    assert plan.effect_size == pytest.approx(h, abs=1e-12)
    # statsmodels' root finder stops within ~1e-6 visitors; compare relatively.
    assert plan.control_visitors_exact == pytest.approx(nobs1, rel=1e-6)
    assert plan.control_visitors == math.ceil(plan.control_visitors_exact)
    assert plan.variant_visitors == math.ceil(plan.control_visitors_exact * ratio)

    inverse = minimum_detectable_effect(
        baseline, plan.control_visitors_exact, alpha=alpha, power=power, ratio=ratio
    )
    reference_h = NormalIndPower().solve_power(
        nobs1=plan.control_visitors_exact, alpha=alpha, power=power, ratio=ratio
    )
    assert inverse.effect_size == pytest.approx(reference_h, abs=1e-5)
    assert inverse.effect_size == pytest.approx(abs(h), rel=1e-9)
    if target > baseline:
        assert inverse.target_rate == pytest.approx(target, rel=1e-9)


def _balanced_log_lr(n: int, x_a: int, x_b: int, tau: float) -> float:
    """Johari et al.'s normal mSPRT in its per-pair form: sigma^2 per pair, n pairs."""
    q_a, q_b = (x_a + 1) / (n + 2), (x_b + 1) / (n + 2)
    sigma2 = q_a * (1 - q_a) + q_b * (1 - q_b)
    theta = (x_b - x_a) / n
    return 0.5 * math.log(sigma2 / (sigma2 + n * tau**2)) + (
        n**2 * tau**2 * theta**2 / (2 * sigma2 * (sigma2 + n * tau**2))
    )


@pytest.mark.parametrize(
    ("n", "x_a", "x_b", "tau"),
    [
        (1000, 50, 60, 0.005),
        (10_000, 500, 600, 0.005),
        (30_000, 1500, 1540, 0.01),
        (50, 0, 5, 0.02),
    ],
)
def test_sequential_p_value_and_interval_agree_with_the_paper(
    n: int, x_a: int, x_b: int, tau: float
) -> None:
    result = sequential_test(n, x_a, n, x_b, mixing_sd=tau, alpha=0.05)
    assert result.p_value == pytest.approx(min(1.0, math.exp(-_balanced_log_lr(n, x_a, x_b, tau))))
    assert (result.p_value <= 0.05) == (result.ci_low > 0 or result.ci_high < 0)
    assert result.ci_low <= result.difference <= result.ci_high


def test_sequential_interval_edge_is_where_lambda_reaches_one_over_alpha() -> None:
    n, x_a, x_b, tau, alpha = 4000, 200, 260, 0.005, 0.05
    result = sequential_test(n, x_a, n, x_b, mixing_sd=tau, alpha=alpha)
    q_a, q_b = (x_a + 1) / (n + 2), (x_b + 1) / (n + 2)
    v = (q_a * (1 - q_a) + q_b * (1 - q_b)) / n
    for edge in (result.ci_low, result.ci_high):
        gap = result.difference - edge
        log_lr = 0.5 * math.log(v / (v + tau**2)) + tau**2 * gap**2 / (2 * v * (v + tau**2))
        assert log_lr == pytest.approx(math.log(1 / alpha), abs=1e-9)


def test_sequential_history_takes_the_running_minimum() -> None:
    days = range(1, 11)
    control = [(1000 * d, 50 * d) for d in days]
    # An early burst for the variant that fades: the always-valid p-value must not forget it.
    variant = [(1000 * d, 50 * d + (40 if d >= 2 else 0)) for d in days]
    args = (
        [n for n, _ in control],
        [x for _, x in control],
        [n for n, _ in variant],
        [x for _, x in variant],
    )
    history = sequential_test_history(*args, mixing_sd=0.005)
    singles = [
        sequential_test(c[0], c[1], v[0], v[1], mixing_sd=0.005).p_value
        for c, v in zip(control, variant, strict=True)
    ]
    assert history.p_value == pytest.approx(min(singles))
    assert history.p_value < singles[-1]
    assert history.looks == 10
    running = always_valid_p_values(*args, mixing_sd=0.005)
    assert list(running) == pytest.approx(list(np.minimum.accumulate(singles)))


def _simulate(
    rng: np.random.Generator, rate_a: float, rate_b: float, experiments: int = 2000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    days, daily = 30, 1000
    x_a = rng.binomial(daily, rate_a, size=(experiments, days)).cumsum(axis=1)
    x_b = rng.binomial(daily, rate_b, size=(experiments, days)).cumsum(axis=1)
    n = np.broadcast_to(daily * np.arange(1, days + 1), x_a.shape)
    return n, x_a, n, x_b


def test_daily_peeking_is_safe_with_the_sequential_test_but_not_with_z_tests() -> None:
    n_a, x_a, n_b, x_b = _simulate(np.random.default_rng(20240601), 0.05, 0.05)
    tau = mixing_sd_for(0.05, 0.10)
    sequential = always_valid_p_values(n_a, x_a, n_b, x_b, mixing_sd=tau)
    sequential_rate = float(np.mean(sequential[:, -1] <= 0.05))

    pooled = (x_a + x_b) / (n_a + n_b)
    z = (x_b / n_b - x_a / n_a) / np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    naive_rate = float(np.mean((2 * stats.norm.sf(np.abs(z)) < 0.05).any(axis=1)))

    assert sequential_rate <= 0.05
    assert naive_rate > 0.10


def test_sequential_test_still_finds_a_real_lift() -> None:
    n_a, x_a, n_b, x_b = _simulate(np.random.default_rng(7), 0.05, 0.06, experiments=500)
    p = always_valid_p_values(n_a, x_a, n_b, x_b, mixing_sd=mixing_sd_for(0.05, 0.10))
    assert float(np.mean(p[:, -1] <= 0.05)) > 0.8


def test_sequential_sample_size_is_where_the_boundary_is_crossed_with_that_power() -> None:
    tau, alpha = 0.005, 0.05
    n = sequential_sample_size(0.05, 0.055, mixing_sd=tau, alpha=alpha, power=0.8)
    # At that size an estimate 0.84 standard errors below the true lift has Lambda = 1 / alpha.
    v = (0.05 * 0.95 + 0.055 * 0.945) / n
    edge = 0.005 - stats.norm.isf(0.2) * math.sqrt(v)
    log_lr = 0.5 * math.log(v / (v + tau**2)) + tau**2 * edge**2 / (2 * v * (v + tau**2))
    assert log_lr == pytest.approx(math.log(1 / alpha), abs=1e-6)
    fixed = sample_size(0.05, 0.10).control_visitors_exact
    assert fixed < n < 4 * fixed


def _counts(*arms: tuple[str, int, int]) -> list[VariantCounts]:
    return [VariantCounts(name, visitors, conversions) for name, visitors, conversions in arms]


def test_verdict_clear_win() -> None:
    readout = read_experiment(_counts(("A", 10_000, 500), ("B", 10_000, 650)), control="A")
    (b,) = readout.variants
    assert b.decision == "better"
    assert re.match(r"B beats A with (\d+%|over 99.9%) confidence", b.verdict)
    assert readout.verdict == b.verdict
    assert 1 - b.sequential_p_adjusted >= 0.95


def test_verdict_clear_loss() -> None:
    readout = read_experiment(_counts(("A", 10_000, 650), ("B", 10_000, 500)), control="A")
    (b,) = readout.variants
    assert b.decision == "worse"
    assert re.match(r"A beats B with (\d+%|over 99.9%) confidence", b.verdict)


def test_verdict_inconclusive_says_how_many_more_visitors() -> None:
    readout = read_experiment(_counts(("A", 2000, 100), ("B", 2000, 104)), control="A")
    (b,) = readout.variants
    assert b.decision == "inconclusive"
    match = re.search(
        r"no detectable difference yet: about ([\d,]+) more visitors needed per variant "
        r"to detect a 10% lift",
        b.verdict,
    )
    assert match, b.verdict
    assert "," in match.group(1)
    shown = int(match.group(1).replace(",", ""))
    planned = sequential_sample_size(0.05, 0.055, mixing_sd=readout.mixing_sd)
    assert b.more_visitors_needed == math.ceil(planned) - 2000
    assert b.more_visitors_needed <= shown < 1.1 * b.more_visitors_needed


def test_verdict_sample_ratio_mismatch_overrides() -> None:
    readout = read_experiment(_counts(("A", 10_000, 500), ("B", 11_000, 800)), control="A")
    assert readout.sample_ratio.mismatch
    assert readout.verdict.startswith("sample ratio mismatch: results not trustworthy")
    assert [v.decision for v in readout.variants] == ["untrustworthy"]
    assert "sample ratio mismatch: results not trustworthy" in readout.variants[0].verdict


def test_configured_split_and_history_feed_the_readout() -> None:
    day1 = _counts(("A", 2000, 100), ("B", 1000, 70))
    now = _counts(("A", 4000, 200), ("B", 2000, 120))
    readout = read_experiment(
        now, control="A", weights={"A": 2, "B": 1}, history=[day1], mixing_sd=0.005
    )
    assert not readout.sample_ratio.mismatch
    (b,) = readout.variants
    expected = sequential_test_history(
        [2000, 4000], [100, 200], [1000, 2000], [70, 120], mixing_sd=0.005
    )
    assert b.sequential == expected
    assert b.sequential.looks == 2


def test_several_variants_are_holm_adjusted_and_serialise() -> None:
    arms = _counts(
        ("A", 20_000, 1000), ("B", 20_000, 1300), ("C", 20_000, 1020), ("D", 20_000, 800)
    )
    readout = read_experiment(arms, control="A", baseline_rate=0.05)
    raw = [v.sequential.p_value for v in readout.variants]
    assert [v.sequential_p_adjusted for v in readout.variants] == pytest.approx(
        list(multipletests(raw, method="holm")[1])
    )
    fixed = [v.frequentist.p_value for v in readout.variants]
    assert [v.frequentist_p_adjusted for v in readout.variants] == pytest.approx(
        list(multipletests(fixed, method="holm")[1])
    )
    assert readout.mixing_sd == pytest.approx(0.005)
    assert readout.verdict.startswith("B beats A")
    decoded = json.loads(json.dumps(readout.to_dict()))
    assert [v["name"] for v in decoded["variants"]] == ["B", "C", "D"]
    control = {"name": "A", "visitors": 20_000, "conversions": 1000, "rate": 0.05}
    assert decoded["arms"][0] == control


def test_no_visitors_yet_is_inconclusive_not_an_error() -> None:
    readout = read_experiment(_counts(("A", 0, 0), ("B", 0, 0)), control="A")
    (b,) = readout.variants
    assert b.decision == "inconclusive"
    assert b.sequential.p_value == 1.0
    assert b.frequentist.p_value == 1.0
    assert b.bayesian.probability_variant_better == pytest.approx(0.5)
    assert "no detectable difference yet: too little data" in b.verdict


A = VariantCounts("A", 100, 5)
B = VariantCounts("B", 100, 6)


@pytest.mark.parametrize(
    ("call", "names"),
    [
        (lambda: VariantCounts("B", 10, 11), ["conversions", "'B'", "11"]),
        (lambda: VariantCounts("B", -1, 0), ["visitors", "-1"]),
        (lambda: VariantCounts("B", 10, -2), ["conversions", "-2"]),
        (lambda: VariantCounts("B", 10.5, 1), ["visitors", "10.5"]),  # type: ignore[arg-type]
        (lambda: read_experiment([A], control="A"), ["variants", "1"]),
        (lambda: read_experiment([A, B], control="Z"), ["control", "'Z'"]),
        (lambda: read_experiment([A, A], control="A"), ["variants", "duplicate"]),
        (lambda: read_experiment([A, B], control="A", weights={"A": 1}), ["weights"]),
        (lambda: read_experiment([A, B], control="A", alpha=1.5), ["alpha", "1.5"]),
        (
            lambda: read_experiment([A, B], control="A", history=[[VariantCounts("Q", 1, 0)]]),
            ["history[0]", "'Q'"],
        ),
        (
            lambda: read_experiment([A, B], control="A", history=[[VariantCounts("A", 500, 5)]]),
            ["variants", "'A'", "cumulative"],
        ),
        (lambda: sequential_test(10, 11, 10, 1, mixing_sd=0.01), ["control_conversions", "11"]),
        (lambda: sequential_test(10, 1, -3, 1, mixing_sd=0.01), ["variant_visitors", "-3"]),
        (lambda: sequential_test(10, 1, 10, 1, mixing_sd=0.0), ["mixing_sd", "0.0"]),
        (
            lambda: sequential_test_history([5, 4], [0, 0], [5, 5], [0, 0], mixing_sd=0.01),
            ["control_visitors", "cumulative"],
        ),
        (lambda: sample_size(1.5, 0.1), ["baseline_rate", "1.5"]),
        (lambda: sample_size(0.5, 2.0), ["mde", "2.0"]),
        (lambda: minimum_detectable_effect(0.05, -10), ["control_visitors", "-10"]),
        (lambda: two_proportion_test(A, B, confidence=1.5), ["confidence", "1.5"]),
        (lambda: BetaPrior(0, 1), ["alpha", "0"]),
        (lambda: sample_ratio_check([1, 2], [1]), ["weights"]),
        (lambda: sample_ratio_check([1, 2], [1, 0]), ["weights"]),
        (lambda: holm_adjust([0.5, 1.2]), ["p_values", "1.2"]),
    ],
)
def test_validation_errors_name_the_argument(call: Callable[[], object], names: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        call()
    for name in names:
        assert name in str(caught.value)


def test_verdict_for_a_lead_the_sequential_test_has_not_confirmed_yet() -> None:
    # A large early difference: a one-off z-test calls it, the always-valid test not yet.
    readout = read_experiment(_counts(("A", 200, 4), ("B", 200, 30)), control="A")
    (b,) = readout.variants
    assert b.decision == "inconclusive"
    assert b.frequentist.p_value < 0.05
    assert b.verdict.startswith("B is ahead of A (15.00% vs 2.00%, fixed-horizon p = ")
    assert "not yet confirmed by the always-valid test" in b.verdict
    assert "no detectable difference" not in b.verdict
    assert b.more_visitors_needed is not None and 0 < b.more_visitors_needed < 10_000
