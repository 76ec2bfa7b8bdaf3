"""Statistics for A/B experiments: pure functions over visitors and conversions per variant.

`read_experiment` is the readout: its decision rule is the always-valid sequential test
(`sequential.py`), so looking every day is safe. The fixed-horizon z-test and the Bayesian
beta-binomial numbers are reported alongside for readers used to them; they do not decide.
A sample ratio mismatch overrides every verdict, since it means exposure itself is broken.
With several variants, each is compared with the control and the p-values are Holm-adjusted.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from scipy.integrate import quad
from scipy.special import betainc, betaincc, betaincinv
from scipy.stats import chi2, norm

from sitepulse.analyse.sequential import (
    SequentialTest,
    sequential_sample_size,
    sequential_test_history,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


Decision = Literal["better", "worse", "inconclusive", "untrustworthy"]


class _Record:
    """Gives the result dataclasses a `to_dict()` for the JSON API."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (nested records become dicts, tuples stay tuples)."""
        return asdict(cast("DataclassInstance", self))


@dataclass(frozen=True)
class VariantCounts:
    """Visitors exposed to a variant and how many of them converted."""

    name: str
    visitors: int
    conversions: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        for field in ("visitors", "conversions"):
            value = getattr(self, field)
            try:
                count = operator.index(value)
            except TypeError:
                raise ValueError(
                    f"{field} of {self.name!r} must be an integer, got {value!r}"
                ) from None
            if count < 0:
                raise ValueError(f"{field} of {self.name!r} must not be negative, got {count}")
            object.__setattr__(self, field, count)
        if self.conversions > self.visitors:
            raise ValueError(
                f"conversions of {self.name!r} ({self.conversions}) exceed its visitors "
                f"({self.visitors})"
            )

    @property
    def rate(self) -> float:
        """Conversion rate; 0 before anyone is exposed."""
        return self.conversions / self.visitors if self.visitors else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {**asdict(self), "rate": self.rate}


@dataclass(frozen=True)
class BetaPrior:
    """Beta(alpha, beta) prior on a conversion rate; Beta(1, 1) is uniform."""

    alpha: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        for field in ("alpha", "beta"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"prior {field} must be > 0, got {value!r}")


UNIFORM_PRIOR: Final = BetaPrior()


@dataclass(frozen=True)
class TwoProportionTest(_Record):
    """Fixed-horizon z-test of variant minus control (pooled SE) with an unpooled Wald CI."""

    difference: float
    relative_lift: float | None
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float


@dataclass(frozen=True)
class BayesianComparison(_Record):
    """Beta-binomial posteriors: chance the variant is better and the expected regret."""

    probability_variant_better: float
    expected_loss_variant: float
    """E[max(rate_control - rate_variant, 0)]: conversion rate given up by choosing the variant."""
    expected_loss_control: float
    """E[max(rate_variant - rate_control, 0)]: conversion rate given up by keeping the control."""
    prior: BetaPrior


@dataclass(frozen=True)
class SampleRatioCheck(_Record):
    """Chi-square goodness of fit of exposures against the configured split."""

    statistic: float
    p_value: float
    threshold: float
    mismatch: bool
    expected_shares: tuple[float, ...]
    observed_shares: tuple[float, ...]


@dataclass(frozen=True)
class VariantResult(_Record):
    """One variant against the control: the decision, its verdict, and every number behind it."""

    name: str
    control: str
    decision: Decision
    verdict: str
    details: str
    sequential: SequentialTest
    sequential_p_adjusted: float
    frequentist: TwoProportionTest
    frequentist_p_adjusted: float
    bayesian: BayesianComparison
    more_visitors_needed: int | None
    """Per arm, for the sequential test to find `mde_relative`; None when it can't be sized."""


@dataclass(frozen=True)
class ExperimentReadout(_Record):
    """Everything the experiment page and API show."""

    control: str
    arms: tuple[VariantCounts, ...]
    variants: tuple[VariantResult, ...]
    sample_ratio: SampleRatioCheck
    alpha: float
    mde_relative: float
    mixing_sd: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {**asdict(self), "arms": [arm.to_dict() for arm in self.arms]}


def two_proportion_test(
    control: VariantCounts, variant: VariantCounts, *, confidence: float = 0.95
) -> TwoProportionTest:
    """z-test as statsmodels `proportions_ztest`; CI as `confint_proportions_2indep` "wald"."""
    _check_open_unit("confidence", confidence)
    n_a, n_b = control.visitors, variant.visitors
    p_a, p_b = control.rate, variant.rate
    difference = p_b - p_a
    lift = difference / p_a if p_a > 0 else None
    if n_a == 0 or n_b == 0:
        return TwoProportionTest(difference, lift, 0.0, 1.0, -1.0, 1.0, confidence)
    pooled = (control.conversions + variant.conversions) / (n_a + n_b)
    pooled_var = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    # Zero pooled variance means both arms are all-or-nothing alike: no evidence either way.
    z = difference / math.sqrt(pooled_var) if pooled_var > 0 else 0.0
    p_value = float(2 * norm.sf(abs(z)))
    half = float(norm.isf((1 - confidence) / 2)) * math.sqrt(
        p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b
    )
    return TwoProportionTest(
        difference, lift, z, p_value, difference - half, difference + half, confidence
    )


def bayesian_comparison(
    control: VariantCounts, variant: VariantCounts, *, prior: BetaPrior = UNIFORM_PRIOR
) -> BayesianComparison:
    """P(variant beats control) and expected losses, by deterministic quadrature (no sampling)."""
    post_a, post_b = _posterior(prior, control), _posterior(prior, variant)
    return BayesianComparison(
        probability_variant_better=_probability_greater(post_b, post_a),
        expected_loss_variant=_expected_excess(post_a, post_b),
        expected_loss_control=_expected_excess(post_b, post_a),
        prior=prior,
    )


def sample_ratio_check(
    visitors: Sequence[int], weights: Sequence[float], *, threshold: float = 0.001
) -> SampleRatioCheck:
    """Chi-square test (as scipy.stats.chisquare) of exposures against the configured weights."""
    if len(visitors) != len(weights) or len(visitors) < 2:
        raise ValueError(
            f"visitors and weights need the same length, at least 2; got {len(visitors)} "
            f"and {len(weights)}"
        )
    if any(not (math.isfinite(w) and w > 0) for w in weights):
        raise ValueError(f"weights must all be > 0, got {list(weights)!r}")
    if any(n < 0 for n in visitors):
        raise ValueError(f"visitors must not be negative, got {list(visitors)!r}")
    _check_open_unit("threshold", threshold)
    total, weight_sum = sum(visitors), math.fsum(weights)
    expected = tuple(w / weight_sum for w in weights)
    if total == 0:
        return SampleRatioCheck(0.0, 1.0, threshold, False, expected, tuple(0.0 for _ in weights))
    statistic = math.fsum(
        (n - total * s) ** 2 / (total * s) for n, s in zip(visitors, expected, strict=True)
    )
    p_value = float(chi2.sf(statistic, len(visitors) - 1))
    observed = tuple(n / total for n in visitors)
    return SampleRatioCheck(statistic, p_value, threshold, p_value < threshold, expected, observed)


def holm_adjust(p_values: Sequence[float]) -> tuple[float, ...]:
    """Holm step-down adjusted p-values, in input order (as statsmodels multipletests "holm")."""
    if any(not (0 <= p <= 1) for p in p_values):
        raise ValueError(f"p_values must lie in [0, 1], got {list(p_values)!r}")
    count = len(p_values)
    adjusted = [0.0] * count
    running = 0.0
    for rank, index in enumerate(sorted(range(count), key=p_values.__getitem__)):
        running = max(running, min(1.0, (count - rank) * p_values[index]))
        adjusted[index] = running
    return tuple(adjusted)


def read_experiment(
    variants: Sequence[VariantCounts],
    *,
    control: str,
    weights: Mapping[str, float] | None = None,
    history: Sequence[Sequence[VariantCounts]] = (),
    alpha: float = 0.05,
    power: float = 0.8,
    mde_relative: float = 0.10,
    baseline_rate: float | None = None,
    mixing_sd: float | None = None,
    prior: BetaPrior = UNIFORM_PRIOR,
    srm_threshold: float = 0.001,
) -> ExperimentReadout:
    """Compare every variant with `control`; the sequential test decides, with Holm across variants.

    `weights` is the configured split by name (default equal). `history` holds earlier
    cumulative snapshots (e.g. daily), oldest first, so the sequential p-value is the running
    minimum over those looks and now. `mixing_sd` defaults to `baseline_rate` (else the
    control's observed rate) times `mde_relative`; pass it, or `baseline_rate`, from the
    experiment's configuration to keep it fixed across readouts.
    """
    arms, names = _check_arms(variants, control, weights)
    _check_open_unit("alpha", alpha)
    _check_open_unit("power", power)
    if not (math.isfinite(mde_relative) and mde_relative > 0):
        raise ValueError(f"mde_relative must be > 0, got {mde_relative!r}")
    _check_open_unit("srm_threshold", srm_threshold)
    if baseline_rate is not None:
        _check_open_unit("baseline_rate", baseline_rate)
    by_name = {arm.name: arm for arm in arms}
    base = by_name[control]
    split = [1.0] * len(arms) if weights is None else [weights[arm.name] for arm in arms]
    srm = sample_ratio_check([arm.visitors for arm in arms], split, threshold=srm_threshold)
    baseline = baseline_rate if baseline_rate is not None else (base.rate or None)
    if mixing_sd is None:
        # With no conversions yet, the smoothed pooled rate stands in for the baseline.
        pooled = (sum(a.conversions for a in arms) + 1) / (sum(a.visitors for a in arms) + 2)
        mixing_sd = (baseline or pooled) * mde_relative
    looks = _looks(history, arms, names)
    others = [arm for arm in arms if arm.name != control]
    sequential = [
        sequential_test_history(
            [look[control].visitors for look in looks],
            [look[control].conversions for look in looks],
            [look[arm.name].visitors for look in looks],
            [look[arm.name].conversions for look in looks],
            mixing_sd=mixing_sd,
            alpha=alpha,
        )
        for arm in others
    ]
    fixed = [two_proportion_test(base, arm, confidence=1 - alpha) for arm in others]
    seq_adjusted = holm_adjust([s.p_value for s in sequential])
    fixed_adjusted = holm_adjust([f.p_value for f in fixed])
    weight_of = dict(zip(names, split, strict=True))
    results = []
    for arm, seq, seq_p, freq, freq_p in zip(
        others, sequential, seq_adjusted, fixed, fixed_adjusted, strict=True
    ):
        bayes = bayesian_comparison(base, arm, prior=prior)
        needed = None
        if baseline is not None and baseline * (1 + mde_relative) < 1:
            ratio = weight_of[arm.name] / weight_of[control]
            plan_n = sequential_sample_size(
                baseline,
                baseline * (1 + mde_relative),
                mixing_sd=mixing_sd,
                alpha=alpha,
                power=power,
                ratio=ratio,
            )
            if math.isfinite(plan_n):
                needed = max(
                    math.ceil(plan_n) - base.visitors, math.ceil(plan_n * ratio) - arm.visitors, 0
                )
        decision = _decide(srm.mismatch, seq, seq_p, alpha)
        if decision == "inconclusive" and freq_p < alpha and 0 < base.rate < 1 and 0 < arm.rate < 1:
            # How long until the always-valid test confirms the difference seen so far.
            ratio = weight_of[arm.name] / weight_of[control]
            confirm = sequential_sample_size(
                base.rate, arm.rate, mixing_sd=mixing_sd, alpha=alpha, power=power, ratio=ratio
            )
            if math.isfinite(confirm):
                needed = max(
                    math.ceil(confirm) - base.visitors,
                    math.ceil(confirm * ratio) - arm.visitors,
                    0,
                )
        results.append(
            VariantResult(
                name=arm.name,
                control=control,
                decision=decision,
                verdict=_verdict(decision, arm, base, seq_p, needed, mde_relative, freq_p, alpha),
                details=_details(arm.name, control, seq, seq_p, freq, bayes),
                sequential=seq,
                sequential_p_adjusted=seq_p,
                frequentist=freq,
                frequentist_p_adjusted=freq_p,
                bayesian=bayes,
                more_visitors_needed=needed,
            )
        )
    if srm.mismatch:
        overall = (
            f"sample ratio mismatch: results not trustworthy (chi-square p = {srm.p_value:.1e} "
            "against the configured split; check assignment and exposure logging)"
        )
    else:
        order: dict[Decision, int] = {"better": 0, "inconclusive": 1, "worse": 2}
        ranked = sorted(results, key=lambda r: (order[r.decision], -by_name[r.name].rate))
        overall = "; ".join(r.verdict for r in ranked)
    return ExperimentReadout(
        control=control,
        arms=tuple(arms),
        variants=tuple(results),
        sample_ratio=srm,
        alpha=alpha,
        mde_relative=mde_relative,
        mixing_sd=mixing_sd,
        verdict=overall,
    )


def _decide(mismatch: bool, seq: SequentialTest, p_adjusted: float, alpha: float) -> Decision:
    if mismatch:
        return "untrustworthy"
    if p_adjusted > alpha:
        return "inconclusive"
    # The confidence sequence gives the direction even if the latest estimate has drifted.
    if seq.ci_low > 0 or (seq.ci_high >= 0 and seq.difference > 0):
        return "better"
    if seq.ci_high < 0 or seq.difference < 0:
        return "worse"
    return "inconclusive"


def _verdict(
    decision: Decision,
    arm: VariantCounts,
    base: VariantCounts,
    p_adjusted: float,
    needed: int | None,
    mde_relative: float,
    fixed_p: float = 1.0,
    alpha: float = 0.05,
) -> str:
    b, a = arm.name, base.name
    rates = f"{arm.rate:.2%} vs {base.rate:.2%}"
    confidence = "over 99.9%" if p_adjusted < 0.001 else f"{math.floor((1 - p_adjusted) * 100)}%"
    if decision == "untrustworthy":
        return f"{b} vs {a}: sample ratio mismatch: results not trustworthy"
    if decision == "better":
        return f"{b} beats {a} with {confidence} confidence (conversion {rates})"
    if decision == "worse":
        return f"{a} beats {b} with {confidence} confidence (conversion {rates})"
    lift = f"{mde_relative * 100:g}% lift"
    if fixed_p < alpha:
        # A difference a one-off test would call, that the always-valid test (which
        # allows daily looks) does not confirm yet: say both, never "no difference".
        leader, trailer = (b, a) if arm.rate > base.rate else (a, b)
        more = f" about {_about(needed):,} more visitors per variant" if needed else " another look"
        return (
            f"{leader} is ahead of {trailer} ({rates}, fixed-horizon p = {fixed_p:.2g}), "
            f"not yet confirmed by the always-valid test: it needs{more}"
        )
    if needed is None:
        return f"{b} vs {a}: no detectable difference yet: too little data to size the test"
    if needed == 0:
        return f"{b} vs {a}: no detectable difference: a {lift} would most likely have shown by now"
    return (
        f"{b} vs {a}: no detectable difference yet: about {_about(needed):,} more visitors "
        f"needed per variant to detect a {lift}"
    )


def _details(
    b: str,
    a: str,
    seq: SequentialTest,
    seq_p: float,
    freq: TwoProportionTest,
    bayes: BayesianComparison,
) -> str:
    return (
        f"always-valid p = {seq.p_value:.3g} (Holm {seq_p:.3g}), "
        f"{1 - seq.alpha:.0%} interval {seq.ci_low * 100:+.2f} to {seq.ci_high * 100:+.2f} "
        f"points; fixed-horizon z = {freq.z:.2f}, p = {freq.p_value:.3g}; "
        f"chance {b} beats {a} = {_chance(bayes.probability_variant_better)}, "
        f"expected loss choosing {b} = {bayes.expected_loss_variant * 100:.2g} points"
    )


def _chance(probability: float) -> str:
    if probability > 0.999:
        return "over 99.9%"
    return "under 0.1%" if probability < 0.001 else f"{probability:.1%}"


def _about(count: int) -> int:
    """Round up to two significant figures: 2,281 -> 2,300."""
    step = int(10 ** max(len(str(count)) - 2, 0))
    return -(-count // step) * step


def _check_arms(
    variants: Sequence[VariantCounts], control: str, weights: Mapping[str, float] | None
) -> tuple[list[VariantCounts], list[str]]:
    arms = list(variants)
    names = [arm.name for arm in arms]
    if len(arms) < 2:
        raise ValueError(
            f"variants needs at least 2 entries (control and one more), got {len(arms)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"variants has duplicate names: {names!r}")
    if control not in names:
        raise ValueError(f"control {control!r} is not one of the variants {names!r}")
    if weights is not None:
        if set(weights) != set(names):
            raise ValueError(f"weights must name exactly {names!r}, got {sorted(weights)!r}")
        if any(not (math.isfinite(w) and w > 0) for w in weights.values()):
            raise ValueError(f"weights must all be > 0, got {dict(weights)!r}")
    return arms, names


def _looks(
    history: Sequence[Sequence[VariantCounts]], arms: list[VariantCounts], names: list[str]
) -> list[dict[str, VariantCounts]]:
    """Earlier snapshots plus now, each holding every arm (absent before first exposure)."""
    looks: list[dict[str, VariantCounts]] = []
    for index, snapshot in enumerate([*history, arms]):
        label = f"history[{index}]" if index < len(history) else "variants"
        look = {name: VariantCounts(name, 0, 0) for name in names}
        for counts in snapshot:
            if counts.name not in look:
                raise ValueError(f"history[{index}] has unknown variant {counts.name!r}")
            look[counts.name] = counts
        for name in names:
            if looks and (
                look[name].visitors < looks[-1][name].visitors
                or look[name].conversions < looks[-1][name].conversions
            ):
                raise ValueError(
                    f"{label} counts for {name!r} fall below the previous look's: history must "
                    "be cumulative, oldest first, and not exceed the current totals"
                )
        looks.append(look)
    return looks


def _probability_greater(x: tuple[float, float], y: tuple[float, float]) -> float:
    """P(X > Y) for independent X ~ Beta(*x), Y ~ Beta(*y).

    Integrates over quantiles u of the narrower of the two: P = E_Y[sf_X(Y)] or E_X[cdf_Y(X)].
    The integrand is then bounded, monotone in u and smooth, however peaked the posteriors are.
    """
    if _beta_variance(*y) <= _beta_variance(*x):
        probability = _quantile_integral(y, lambda t: betaincc(x[0], x[1], t))
    else:
        probability = _quantile_integral(x, lambda t: betainc(y[0], y[1], t))
    return min(max(probability, 0.0), 1.0)


def _quantile_integral(dist: tuple[float, float], func: Callable[[float], Any]) -> float:
    """E[func(T)] for T ~ Beta(*dist), as the integral of func(ppf(u)) over u in (0, 1)."""
    a, b = dist
    value, _ = quad(
        lambda u: float(func(float(betaincinv(a, b, u)))),
        0.0,
        1.0,
        epsabs=1e-13,
        epsrel=1e-11,
        limit=200,
    )
    return float(value)


def _expected_excess(x: tuple[float, float], y: tuple[float, float]) -> float:
    """E[max(X - Y, 0)] for independent X ~ Beta(*x), Y ~ Beta(*y).

    Integrates, over the narrower posterior, the other's closed-form partial expectation:
    E[max(X - y, 0)] = mean_X sf_X+(y) - y sf_X(y), where X+ ~ Beta(a + 1, b) because
    x f_X(x) = mean_X f_X+(x); likewise E[max(x - Y, 0)] = x cdf_Y(x) - mean_Y cdf_Y+(x).
    """
    (a_x, b_x), (a_y, b_y) = x, y
    if _beta_variance(*y) <= _beta_variance(*x):
        mean_x = a_x / (a_x + b_x)
        return max(
            _quantile_integral(
                y, lambda t: mean_x * betaincc(a_x + 1, b_x, t) - t * betaincc(a_x, b_x, t)
            ),
            0.0,
        )
    mean_y = a_y / (a_y + b_y)
    return max(
        _quantile_integral(
            x, lambda t: t * betainc(a_y, b_y, t) - mean_y * betainc(a_y + 1, b_y, t)
        ),
        0.0,
    )


def _posterior(prior: BetaPrior, arm: VariantCounts) -> tuple[float, float]:
    return prior.alpha + arm.conversions, prior.beta + arm.visitors - arm.conversions


def _beta_variance(a: float, b: float) -> float:
    return a * b / ((a + b) ** 2 * (a + b + 1))


def _check_open_unit(name: str, value: float) -> None:
    if not (0 < value < 1):
        raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
