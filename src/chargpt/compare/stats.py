"""The statistics compare reports, all from scipy: a group's mean, spread and 95 % interval, the
difference of two groups with its interval and p-value, and a power-law fit.

Runs with the same seed see the same data order and start from the same weights, so two groups
run over the same seeds are compared pair by pair (a paired t-test over the seeds); otherwise
the groups are independent samples (Welch's t-test, which does not assume equal variances).
Too few values for a figure (one run: no spread) give NaN, never a warning or an error.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

CONFIDENCE = 0.95
PAIRED = "paired"
WELCH = "welch"


@contextmanager
def _quiet() -> Iterator[None]:
    """scipy warns about samples too small or too alike for a figure; the NaN says it already."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        yield


@dataclass(frozen=True)
class Summary:
    """n values: their mean, sample standard deviation (n−1) and the Student-t 95 % interval of
    the mean. With one value the spread and the interval are unknown (NaN)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def summarize(values: Sequence[float]) -> Summary:
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if data.size == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    with _quiet():
        sem = float(stats.sem(data))
        # scipy gives NaN for a zero scale; values all alike have an interval of one point.
        low, high = (
            stats.t.interval(CONFIDENCE, data.size - 1, loc=mean, scale=sem)
            if sem > 0
            else (mean, mean)
        )
    return Summary(int(data.size), mean, float(data.std(ddof=1)), float(low), float(high))


@dataclass(frozen=True)
class Difference:
    """mean(group) − mean(baseline), its 95 % interval and two-sided p-value, and the test used."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str  # PAIRED or WELCH

    @property
    def within_noise(self) -> bool | None:
        """Whether the interval holds 0: the data do not tell the two apart. None where the
        interval is unknown (a group of one run)."""
        if math.isnan(self.ci_low) or math.isnan(self.ci_high):
            return None
        return self.ci_low <= 0 <= self.ci_high


def difference(
    values: Sequence[float],
    baseline: Sequence[float],
    seeds: Sequence[object] | None = None,
    baseline_seeds: Sequence[object] | None = None,
) -> Difference:
    """The difference of two samples. Paired over seeds when both list the same distinct seeds
    (then `values[i]` pairs with the baseline value of the same seed); else Welch's test."""
    with _quiet():
        if (
            seeds is not None
            and baseline_seeds is not None
            and pairs_by_seed(seeds, baseline_seeds)
        ):
            by_seed = dict(zip(_seed_keys(baseline_seeds), baseline, strict=True))
            paired = [by_seed[seed] for seed in _seed_keys(seeds)]
            result = stats.ttest_rel(values, paired)
            return _result(result, np.mean(values) - np.mean(paired), PAIRED)
        result = stats.ttest_ind(values, baseline, equal_var=False)
        return _result(result, np.mean(values) - np.mean(baseline), WELCH)


def pairs_by_seed(seeds: Sequence[object], baseline_seeds: Sequence[object]) -> bool:
    """Both groups ran the same seeds, each once, and at least two of them."""
    if None in seeds or None in baseline_seeds:
        return False
    mine, theirs = _seed_keys(seeds), _seed_keys(baseline_seeds)
    return (
        len(mine) >= 2
        and len(set(mine)) == len(mine)
        and len(set(theirs)) == len(theirs)
        and set(mine) == set(theirs)
    )


def _seed_keys(seeds: Sequence[object]) -> list[str]:
    """Seeds as text, so that the check and the pairing agree on what "the same seed" is."""
    return [str(seed) for seed in seeds]


def _result(result, delta: float, test: str) -> Difference:
    # scipy's interval is right also where the statistic is infinite (differences without
    # spread) and NaN where the samples cannot give one.
    interval = result.confidence_interval(CONFIDENCE)
    low, high = float(interval.low), float(interval.high)
    return Difference(float(delta), low, high, float(result.pvalue), test)


@dataclass(frozen=True)
class PowerLawFit:
    """L = E + A·X^(−alpha), with each parameter's standard error (inf where the fit does not
    determine it, as with exactly three points)."""

    E: float
    A: float
    alpha: float
    E_se: float
    A_se: float
    alpha_se: float

    def estimates(self, digits: int, undetermined: str, alpha: str = "alpha") -> str:
        """`E = 1.23 ± 0.01, A = 45.6 ± 2.1, alpha = 0.31 ± 0.006`; `undetermined` stands for an
        infinite standard error."""
        values = (
            ("E", self.E, self.E_se),
            ("A", self.A, self.A_se),
            (alpha, self.alpha, self.alpha_se),
        )
        return ", ".join(
            f"{name} = {value:.{digits}g} ± {f'{se:.2g}' if math.isfinite(se) else undetermined}"
            for name, value, se in values
        )

    def predict(self, x: np.ndarray | Sequence[float]) -> np.ndarray:
        return power_law(np.asarray(x, dtype=float), self.E, self.A, self.alpha)


def power_law(x: np.ndarray, E: float, A: float, alpha: float) -> np.ndarray:
    return E + A * np.power(x, -alpha)


MIN_FIT_POINTS = 3  # distinct x values: one per parameter
ALPHA_MIN = 1e-6  # alpha > 0: a loss that falls with X
ALPHA_GUESSES = np.geomspace(0.01, 3.0, 25)


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLawFit:
    """Least-squares fit of L = E + A·X^(−alpha) (E ≥ 0, A ≥ 0, alpha > 0) with scipy's
    `curve_fit`; standard errors are sqrt(diag(pcov)). ValueError with fewer than three distinct
    positive x values.

    X may span 1e5..1e15 (parameters, FLOPs), so the fit runs on u = X / g, g the geometric mean
    of X, where all three parameters are of order one: L = E + a·u^(−alpha), and A = a·g^alpha.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    usable = np.isfinite(xs) & np.isfinite(ys) & (xs > 0)
    xs, ys = xs[usable], ys[usable]
    if len(np.unique(xs)) < MIN_FIT_POINTS:
        raise ValueError(
            f"a power-law fit needs {MIN_FIT_POINTS} or more distinct positive x values, "
            f"got {len(np.unique(xs))}"
        )
    log_scale = float(np.mean(np.log(xs)))
    u = xs / math.exp(log_scale)
    with _quiet():
        params, pcov = optimize.curve_fit(
            power_law,
            u,
            ys,
            p0=_initial_guess(u, ys),
            bounds=([0.0, 0.0, ALPHA_MIN], [np.inf, np.inf, np.inf]),
            maxfev=20_000,
        )
    E, a, alpha = (float(value) for value in params)
    E_se, _, alpha_se = _standard_errors(np.diag(pcov))
    # A = a·exp(alpha·log g); its error from a's and alpha's (the delta method, with their
    # covariance): dA/da = exp(alpha·log g), dA/dalpha = A·log g.
    with _quiet():  # a huge alpha·log g overflows to an A of inf, not an error
        factor = float(np.exp(alpha * log_scale))
        A = a * factor
        gradient = np.array([factor, A * log_scale])
        (A_se,) = _standard_errors([gradient @ pcov[1:, 1:] @ gradient])
    # A parameter pinned at its bound is not estimated: its covariance says nothing (flat or
    # rising losses drive A to 0, where alpha is free).
    tolerance = 1e-6 * max(float(np.max(np.abs(ys))), 1e-12)
    if math.isclose(E, 0.0, abs_tol=tolerance):  # E >= 0 by its bound
        E_se = math.inf
    if a <= tolerance or alpha <= ALPHA_MIN * (1 + 1e-6):
        A_se = alpha_se = math.inf
    return PowerLawFit(E, A, alpha, E_se, A_se, alpha_se)


def _standard_errors(variances: Sequence[float] | np.ndarray) -> list[float]:
    """sqrt of each variance; inf where the fit does not determine it (scipy's inf or NaN).
    A variance is never below 0: a tiny negative one is rounding."""
    return [math.sqrt(max(float(v), 0.0)) if math.isfinite(v) else math.inf for v in variances]


def _initial_guess(u: np.ndarray, y: np.ndarray) -> list[float]:
    """For each alpha on a grid the model is linear in E and a; scipy's non-negative least
    squares solves that, and the alpha that fits best starts the full fit."""
    candidates = []
    for alpha in ALPHA_GUESSES:
        design = np.column_stack([np.ones_like(u), np.power(u, -alpha)])
        (E, a), residual = optimize.nnls(design, y)
        candidates.append((residual, E, a, float(alpha)))
    _, E, a, alpha = min(candidates)
    # curve_fit with bounds must start strictly inside them.
    scale = max(float(np.ptp(y)), 1e-12)
    return [max(E, 1e-9 * scale), max(a, 1e-6 * scale), max(alpha, 2 * ALPHA_MIN)]
