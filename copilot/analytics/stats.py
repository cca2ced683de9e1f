"""Report statistics (pure, math only): intervals for rates and means, difference tests, and the report cells.

Means travel as moments (n, Σx, Σx²) so a database can sum them and the interval is computed here. The
Student-t distribution comes from the regularized incomplete beta function (a continued fraction), not scipy.
"""
from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Any, NamedTuple

TOO_FEW = "too few"
PLACES = 4


class Moments(NamedTuple):
    """A sample summed: how many values, their sum and the sum of their squares."""

    n: int
    total: float
    total_sq: float


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, PLACES)


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default); (0, 0) with no trials."""
    if trials == 0:
        return 0.0, 0.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz), for x < (a + 1) / (a + b + 2)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float, y: float | None = None) -> float:
    """The regularized incomplete beta function I_x(a, b); y = 1 - x when the caller has it more exactly."""
    y = 1.0 - x if y is None else y
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom (df need not be whole: Welch's is not)."""
    return incomplete_beta(df / 2, 0.5, df / (df + t * t), t * t / (df + t * t))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df degrees of freedom."""
    tail = t_two_sided(t, df) / 2
    return 1.0 - tail if t > 0 else tail


def _t_pdf(t: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(t * t / df))


@lru_cache(maxsize=4096)
def t_critical(df: float, two_sided_p: float = 0.05) -> float:
    """The t with P(|T| >= t) = two_sided_p: Newton's method from the Cornish-Fisher estimate, kept inside a
    bisection bracket (cached: reports ask for the same df over and over)."""
    z = NormalDist().inv_cdf(1 - two_sided_p / 2)
    t = z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df * df)  # A&S 26.7.5
    lo, hi = 0.0, math.inf
    for _ in range(200):
        excess = t_two_sided(t, df) - two_sided_p  # falls as t rises
        if excess > 0:
            lo = t
        else:
            hi = t
        step = t + excess / (2 * _t_pdf(t, df))
        if abs(step - t) <= 1e-13 * t:
            return step
        t = step if lo < step < hi else (lo + hi) / 2 if hi < math.inf else 2 * t
    return t


def _variance(n: int, total: float, total_sq: float) -> float:
    """The sample variance from moments; never below 0 (Σx² - n·mean² can dip under it by rounding)."""
    return max(0.0, (total_sq - total * total / n) / (n - 1))


def mean_interval(n: int, total: float, total_sq: float) -> tuple[float | None, float | None, float | None]:
    """The mean and its t-based 95% interval from n, Σx and Σx²; no interval under two values, nothing with none."""
    if n <= 0:
        return None, None, None
    mean = total / n
    if n < 2:
        return mean, None, None
    half = t_critical(float(n - 1)) * math.sqrt(_variance(n, total, total_sq) / n)
    return mean, mean - half, mean + half


def _too_few(test: str) -> dict[str, Any]:
    return {"difference": TOO_FEW, "ci95": None, "p_value": None, "test": test}


def welch(a: tuple[int, float, float], b: tuple[int, float, float], min_n: int = 2) -> dict[str, Any]:
    """Welch's t-test of mean(a) - mean(b) from two groups' moments: the difference, its 95% interval and the
    two-sided p-value. "too few" when a group has under min_n values (never under two)."""
    (na, sa, qa), (nb, sb, qb) = a, b
    if min(na, nb) < max(min_n, 2):
        return _too_few("welch_t")
    difference = sa / na - sb / nb
    va, vb = _variance(na, sa, qa) / na, _variance(nb, sb, qb) / nb
    se = math.sqrt(va + vb)
    if se == 0.0:  # both groups constant: the difference is exact
        return {"difference": _round(difference), "ci95": [_round(difference), _round(difference)],
                "p_value": 1.0 if difference == 0 else 0.0, "test": "welch_t"}
    df = (va + vb) ** 2 / (va * va / (na - 1) + vb * vb / (nb - 1))
    half = t_critical(round(df, 6)) * se  # rounded so the cache serves near-equal df
    return {"difference": _round(difference), "ci95": [_round(difference - half), _round(difference + half)],
            "p_value": _round(t_two_sided(difference / se, df)), "test": "welch_t"}


def two_proportions(s1: int, n1: int, s2: int, n2: int, min_n: int = 1) -> dict[str, Any]:
    """s1/n1 - s2/n2: Newcombe's interval (from the two Wilson intervals) and the pooled two-proportion z-test's
    two-sided p-value. "too few" when a group has under min_n trials (never under one)."""
    if min(n1, n2) < max(min_n, 1):
        return _too_few("two_proportion_z")
    p1, p2 = s1 / n1, s2 / n2
    (l1, u1), (l2, u2) = wilson(s1, n1), wilson(s2, n2)
    difference = p1 - p2
    lo = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = (1.0 if difference == 0 else 0.0) if se == 0 else math.erfc(abs(difference) / se / math.sqrt(2))
    return {"difference": _round(difference), "ci95": [_round(lo), _round(hi)], "p_value": _round(p_value),
            "test": "two_proportion_z"}


def rate_cell(successes: int, trials: int, min_n: int) -> dict[str, Any]:
    """One report cell for a rate: n, successes, the rate and its Wilson 95% interval, or "too few" under min_n."""
    if trials < max(min_n, 1):
        return {"n": trials, "rate": TOO_FEW, "ci95": None}
    lo, hi = wilson(successes, trials)
    return {"n": trials, "successes": successes, "rate": _round(successes / trials), "ci95": [_round(lo), _round(hi)]}


def mean_cell(moments: tuple[int, float, float], min_n: int) -> dict[str, Any]:
    """One report cell for a mean: n, the mean and its t 95% interval (None under two values), or "too few"."""
    n, total, total_sq = moments
    if n < max(min_n, 1):
        return {"n": n, "mean": TOO_FEW, "ci95": None}
    mean, lo, hi = mean_interval(n, total, total_sq)
    return {"n": n, "mean": _round(mean), "ci95": None if lo is None else [_round(lo), _round(hi)]}


def cqs(felt_understood: int | None, acknowledged_situation: int | None, clear_next_steps: int | None,
        scale: int) -> float | None:
    """The Connection Quality Score of one survey response, 0-100: the mean over the items answered of
    (x - 1) / (scale - 1) x 100; None when none was answered."""
    items = [x for x in (felt_understood, acknowledged_situation, clear_next_steps) if x is not None]
    if not items:
        return None
    return sum((x - 1) / (scale - 1) * 100 for x in items) / len(items)
