"""How many visitors a two-proportion comparison needs, and the always-valid sequential test.

Planning: `sample_size` and its inverse `minimum_detectable_effect` are the fixed-horizon
calculator (statsmodels' `NormalIndPower` on Cohen's h); `sequential_sample_size` is the
counterpart for the mSPRT below, which is what the experiment readout decides with.

The mixture SPRT (mSPRT) follows Johari, Koomen, Pekelis & Walsh, "Peeking at A/B tests"
(KDD 2017) and Johari, Pekelis & Walsh, "Always valid inference: continuous monitoring of A/B
tests". Its p-value and confidence interval stay valid however often, and whenever, someone
looks, so a dashboard may be checked daily and an experiment stopped as soon as it crosses.
As in the paper, the guarantee for conversion rates rests on the normal approximation with a
plug-in variance; the tests simulate daily looks at a 5% baseline to check it holds.

With control A and variant B after a look with `n` visitors and `x` conversions per arm:

    theta_hat = x_B / n_B - x_A / n_A                 (the estimated difference B - A)
    V         = q_A (1 - q_A) / n_A + q_B (1 - q_B) / n_B,   q = (x + 1) / (n + 2)
    Lambda    = sqrt(V / (V + tau^2)) * exp(tau^2 (theta_hat - theta0)^2 / (2 V (V + tau^2)))

Lambda is the normal-approximation likelihood ratio of the difference, mixed over alternatives
theta ~ N(theta0, tau^2). The always-valid p-value is the running minimum of 1 / Lambda (theta0
= 0) over the looks, capped at 1; the confidence sequence is the running intersection of
{theta : Lambda(theta) < 1 / alpha}, i.e. theta_hat +- sqrt(V (V + tau^2) / tau^2 *
(log((V + tau^2) / V) + 2 log(1 / alpha))). Rejection at level alpha (p <= alpha) is the same
event as the interval excluding 0.

The variance uses the Agresti-Caffo rates q (one success and one failure added per arm, as
statsmodels' "agresti-caffo" interval does) rather than x / n: with the raw rates an arm with no
conversions, or only conversions, has zero variance and Lambda would be infinite after a
handful of visitors.

Choosing tau: the mixture spreads the test's power over effects of about tau in size; the test
crosses soonest for true differences near tau and is slower, but still valid, for much smaller
or larger ones. Set tau to the absolute difference worth finding, `mixing_sd_for(baseline,
relative_lift)` = baseline x relative lift (5% baseline, 10% lift -> tau = 0.005), and fix it
before the experiment starts: validity holds for any fixed tau, not for one tuned per look.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.stats import norm

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SequentialTest:
    """mSPRT readout of variant minus control after the latest look."""

    difference: float
    p_value: float
    """Always valid: the running minimum over looks of 1 / Lambda, capped at 1."""
    ci_low: float
    ci_high: float
    """Confidence sequence at level 1 - alpha, intersected over looks and clipped to [-1, 1]."""
    alpha: float
    mixing_sd: float
    looks: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class SampleSizePlan:
    """Fixed-horizon visitors needed per arm (statsmodels' NormalIndPower on Cohen's h)."""

    baseline_rate: float
    target_rate: float
    effect_size: float
    alpha: float
    power: float
    ratio: float
    control_visitors_exact: float
    control_visitors: int
    variant_visitors: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class MinimumDetectableEffect:
    """Smallest upward lift detectable with the given visitors, alpha and power."""

    baseline_rate: float
    target_rate: float
    absolute: float
    relative: float
    effect_size: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)


def mixing_sd_for(baseline_rate: float, relative_lift: float) -> float:
    """The mixture's tau: the absolute difference (baseline x relative lift) to find fastest."""
    _check_open_unit("baseline_rate", baseline_rate)
    if not (math.isfinite(relative_lift) and relative_lift > 0):
        raise ValueError(f"relative_lift must be > 0, got {relative_lift!r}")
    return baseline_rate * relative_lift


def sequential_test(
    control_visitors: int,
    control_conversions: int,
    variant_visitors: int,
    variant_conversions: int,
    *,
    mixing_sd: float,
    alpha: float = 0.05,
) -> SequentialTest:
    """The mSPRT on current totals only, as if this were the first look."""
    return sequential_test_history(
        [control_visitors],
        [control_conversions],
        [variant_visitors],
        [variant_conversions],
        mixing_sd=mixing_sd,
        alpha=alpha,
    )


def sequential_test_history(
    control_visitors: Sequence[int],
    control_conversions: Sequence[int],
    variant_visitors: Sequence[int],
    variant_conversions: Sequence[int],
    *,
    mixing_sd: float,
    alpha: float = 0.05,
) -> SequentialTest:
    """The mSPRT over looks at cumulative counts (e.g. one per day, oldest first)."""
    _check_open_unit("alpha", alpha)
    n_a, x_a, n_b, x_b = _as_counts(
        control_visitors, control_conversions, variant_visitors, variant_conversions
    )
    if n_a.ndim != 1 or n_a.size == 0:
        raise ValueError(
            f"control_visitors must be a non-empty 1-D sequence, got shape {n_a.shape}"
        )
    p_values = _running_p_values(n_a, x_a, n_b, x_b, _check_mixing_sd(mixing_sd))
    difference, variance, empty = _moments(n_a, x_a, n_b, x_b)
    half = np.where(empty, 2.0, _half_width(variance, mixing_sd, alpha))
    lows = np.maximum(difference - half, -1.0)
    highs = np.minimum(difference + half, 1.0)
    low, high = float(lows.max()), float(highs.min())
    if low > high:
        # Only possible when the plug-in variance misjudged an early look; the latest interval
        # is then the honest one to show (the p-value keeps its running minimum).
        low, high = float(lows[-1]), float(highs[-1])
    return SequentialTest(
        difference=float(difference[-1]),
        p_value=float(p_values[-1]),
        ci_low=low,
        ci_high=high,
        alpha=alpha,
        mixing_sd=mixing_sd,
        looks=int(n_a.size),
    )


def always_valid_p_values(
    control_visitors: npt.ArrayLike,
    control_conversions: npt.ArrayLike,
    variant_visitors: npt.ArrayLike,
    variant_conversions: npt.ArrayLike,
    *,
    mixing_sd: float,
) -> FloatArray:
    """Running-minimum p-values along the last axis (looks); leading axes are experiments."""
    n_a, x_a, n_b, x_b = _as_counts(
        control_visitors, control_conversions, variant_visitors, variant_conversions
    )
    if n_a.ndim == 0:
        raise ValueError("control_visitors must have a looks axis, got a scalar")
    return _running_p_values(n_a, x_a, n_b, x_b, _check_mixing_sd(mixing_sd))


def sequential_sample_size(
    baseline_rate: float,
    target_rate: float,
    *,
    mixing_sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> float:
    """Control visitors at which a look would cross the mSPRT boundary with chance `power`.

    `ratio` is variant visitors per control visitor. Planning only: it counts a single look,
    so it slightly overstates what a test that may stop at any earlier look needs. Returns
    `math.inf` when the difference is too small to ever detect.
    """
    _check_open_unit("baseline_rate", baseline_rate)
    _check_open_unit("target_rate", target_rate)
    _check_open_unit("alpha", alpha)
    _check_open_unit("power", power)
    tau = _check_mixing_sd(mixing_sd)
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio must be > 0, got {ratio!r}")
    effect = abs(target_rate - baseline_rate)
    if effect == 0:
        raise ValueError(f"target_rate must differ from baseline_rate, both are {target_rate!r}")
    spread = baseline_rate * (1 - baseline_rate) + target_rate * (1 - target_rate) / ratio
    z_power = float(norm.isf(1 - power))

    def margin(control_n: float) -> float:
        variance = np.asarray(spread / control_n)
        needed = _half_width(variance, tau, alpha) + z_power * np.sqrt(variance)
        return effect - float(needed)

    high = 1.0
    while margin(high) < 0:
        high *= 2
        if high > 1e15:
            return math.inf
    if high == 1.0:
        return 1.0
    return float(brentq(margin, high / 2, high, xtol=1e-6, rtol=1e-12))


def sample_size(
    baseline_rate: float,
    mde: float,
    *,
    mde_kind: Literal["relative", "absolute"] = "relative",
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> SampleSizePlan:
    """Visitors per arm for a two-sided test; `ratio` is variant visitors per control visitor.

    Solves statsmodels' two-tailed normal power equation exactly (`NormalIndPower.solve_power`
    with `proportion_effectsize`), rather than the closed form that drops the far tail.
    """
    _check_plan(baseline_rate, alpha, power, ratio)
    if mde_kind not in ("relative", "absolute"):
        raise ValueError(f"mde_kind must be 'relative' or 'absolute', got {mde_kind!r}")
    target = baseline_rate * (1 + mde) if mde_kind == "relative" else baseline_rate + mde
    if not (0 <= target <= 1) or target == baseline_rate:
        raise ValueError(f"mde must move baseline_rate to another rate in [0, 1], got {mde!r}")
    h = _cohens_h(target, baseline_rate)
    high = 1.0
    while _power(h, high, alpha, ratio) < power:
        high *= 2
    exact = float(
        brentq(lambda n: _power(h, n, alpha, ratio) - power, 1e-9, high, xtol=1e-12, rtol=1e-14)
    )
    return SampleSizePlan(
        baseline_rate=baseline_rate,
        target_rate=target,
        effect_size=h,
        alpha=alpha,
        power=power,
        ratio=ratio,
        control_visitors_exact=exact,
        control_visitors=math.ceil(exact),
        variant_visitors=math.ceil(exact * ratio),
    )


def minimum_detectable_effect(
    baseline_rate: float,
    control_visitors: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> MinimumDetectableEffect:
    """The inverse of `sample_size`: the smallest upward lift these visitors would detect."""
    _check_plan(baseline_rate, alpha, power, ratio)
    if not (math.isfinite(control_visitors) and control_visitors > 0):
        raise ValueError(f"control_visitors must be > 0, got {control_visitors!r}")
    if _power(math.pi, control_visitors, alpha, ratio) < power:
        raise ValueError(f"control_visitors={control_visitors!r} cannot reach power={power!r}")
    h = float(
        brentq(
            lambda e: _power(e, control_visitors, alpha, ratio) - power,
            1e-12,
            math.pi,
            xtol=1e-15,
            rtol=1e-14,
        )
    )
    angle = math.asin(math.sqrt(baseline_rate)) + h / 2
    if angle > math.pi / 2:
        raise ValueError(
            f"control_visitors={control_visitors!r} is too few to detect any lift from "
            f"baseline_rate={baseline_rate!r}"
        )
    target = math.sin(angle) ** 2
    absolute = target - baseline_rate
    return MinimumDetectableEffect(baseline_rate, target, absolute, absolute / baseline_rate, h)


def _running_p_values(
    n_a: FloatArray, x_a: FloatArray, n_b: FloatArray, x_b: FloatArray, tau: float
) -> FloatArray:
    difference, variance, empty = _moments(n_a, x_a, n_b, x_b)
    tau2 = tau * tau
    log_lr = 0.5 * np.log(variance / (variance + tau2)) + tau2 * difference**2 / (
        2 * variance * (variance + tau2)
    )
    p_values = np.where(empty, 1.0, np.minimum(1.0, np.exp(-log_lr)))
    return np.minimum.accumulate(p_values, axis=-1)


def _moments(
    n_a: FloatArray, x_a: FloatArray, n_b: FloatArray, x_b: FloatArray
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Estimated difference, its smoothed variance, and where an arm has no visitors yet."""
    empty = (n_a == 0) | (n_b == 0)
    safe_a, safe_b = np.maximum(n_a, 1.0), np.maximum(n_b, 1.0)
    difference = np.where(empty, 0.0, x_b / safe_b - x_a / safe_a)
    q_a, q_b = (x_a + 1) / (n_a + 2), (x_b + 1) / (n_b + 2)
    variance = q_a * (1 - q_a) / safe_a + q_b * (1 - q_b) / safe_b
    return difference, variance, empty


def _half_width(variance: FloatArray, tau: float, alpha: float) -> FloatArray:
    tau2 = tau * tau
    spread = variance * (variance + tau2) / tau2
    return np.asarray(np.sqrt(spread * (np.log1p(tau2 / variance) - 2 * math.log(alpha))))


def _as_counts(
    control_visitors: npt.ArrayLike,
    control_conversions: npt.ArrayLike,
    variant_visitors: npt.ArrayLike,
    variant_conversions: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    named = {
        "control_visitors": control_visitors,
        "control_conversions": control_conversions,
        "variant_visitors": variant_visitors,
        "variant_conversions": variant_conversions,
    }
    arrays: dict[str, FloatArray] = {}
    for name, raw in named.items():
        values = np.asarray(raw, dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(values != np.floor(values)):
            raise ValueError(f"{name} must hold whole numbers, got {raw!r}")
        if np.any(values < 0):
            raise ValueError(f"{name} must not be negative, got {raw!r}")
        if values.ndim > 0 and np.any(np.diff(values, axis=-1) < 0):
            raise ValueError(f"{name} must be cumulative (non-decreasing per look), got {raw!r}")
        arrays[name] = values
    shapes = {values.shape for values in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(f"counts must all have the same shape, got {sorted(shapes)}")
    for arm in ("control", "variant"):
        visitors, conversions = arrays[f"{arm}_visitors"], arrays[f"{arm}_conversions"]
        if np.any(conversions > visitors):
            raise ValueError(
                f"{arm}_conversions must not exceed {arm}_visitors, got "
                f"{named[f'{arm}_conversions']!r} > {named[f'{arm}_visitors']!r}"
            )
    return (
        arrays["control_visitors"],
        arrays["control_conversions"],
        arrays["variant_visitors"],
        arrays["variant_conversions"],
    )


def _cohens_h(target: float, baseline: float) -> float:
    """statsmodels `proportion_effectsize(target, baseline)`."""
    return 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline))


def _power(h: float, control_n: float, alpha: float, ratio: float) -> float:
    """Two-sided power of the normal test, both tails (statsmodels `NormalIndPower.power`)."""
    shift = abs(h) * math.sqrt(control_n * ratio / (1 + ratio))
    crit = float(norm.isf(alpha / 2))
    return float(norm.sf(crit - shift) + norm.cdf(-crit - shift))


def _check_plan(baseline_rate: float, alpha: float, power: float, ratio: float) -> None:
    _check_open_unit("baseline_rate", baseline_rate)
    _check_open_unit("alpha", alpha)
    if not (alpha < power < 1):
        raise ValueError(f"power must be between alpha and 1, got {power!r}")
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio must be > 0, got {ratio!r}")


def _check_mixing_sd(mixing_sd: float) -> float:
    if not (math.isfinite(mixing_sd) and mixing_sd > 0):
        raise ValueError(f"mixing_sd must be > 0, got {mixing_sd!r}")
    return mixing_sd


def _check_open_unit(name: str, value: float) -> None:
    if not (0 < value < 1):
        raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
