"""compare's statistics: scipy's figures, the right test for the seeds, and the power-law fit."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from chargpt.compare.stats import (
    PAIRED,
    WELCH,
    Difference,
    PowerLawFit,
    difference,
    fit_power_law,
    summarize,
)

VALUES = [2.0, 2.1, 2.3]
BASELINE = [1.9, 2.05, 2.1]


def test_a_summary_is_scipys_mean_std_and_student_t_interval():
    summary = summarize(VALUES)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(VALUES), scale=stats.sem(VALUES))
    assert summary.n == 3
    assert summary.mean == pytest.approx(np.mean(VALUES))
    assert summary.std == pytest.approx(np.std(VALUES, ddof=1))
    assert (summary.ci_low, summary.ci_high) == pytest.approx((low, high))


def test_one_value_has_no_spread_and_values_alike_have_an_interval_of_one_point():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quiet: no warning from scipy either
        one = summarize([2.5])
        alike = summarize([2.5, 2.5, 2.5])
    assert one.n == 1 and one.mean == 2.5
    assert math.isnan(one.std) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    assert (alike.std, alike.ci_low, alike.ci_high) == (0.0, 2.5, 2.5)
    assert summarize([]).n == 0


def test_groups_that_ran_the_same_seeds_are_compared_pair_by_pair():
    # The baseline lists its seeds in another order: values pair by seed, not by position.
    found = difference(VALUES, BASELINE[::-1], seeds=[1, 2, 3], baseline_seeds=[3, 2, 1])
    expected = stats.ttest_rel(VALUES, BASELINE)
    interval = expected.confidence_interval(0.95)
    assert found.test == PAIRED
    assert found.delta == pytest.approx(np.mean(VALUES) - np.mean(BASELINE))
    assert found.p_value == pytest.approx(expected.pvalue)
    assert (found.ci_low, found.ci_high) == pytest.approx((interval.low, interval.high))


@pytest.mark.parametrize(
    ("seeds", "baseline_seeds"),
    [
        ([1, 2, 3], [4, 5, 6]),  # different seeds
        ([1, 2, 3], [1, 2, 4]),  # partly the same
        ([1, 1, 2], [1, 1, 2]),  # a seed repeated: which run pairs with which?
        ([1, 2, 3], [1, 2, 2]),
        ([None, None, None], [None, None, None]),  # seeds unknown
        (None, None),
    ],
    ids=["different", "partly", "repeated", "repeated-in-baseline", "unknown", "not given"],
)
def test_other_seeds_are_compared_as_independent_samples_with_welchs_test(seeds, baseline_seeds):
    found = difference(VALUES, BASELINE, seeds, baseline_seeds)
    expected = stats.ttest_ind(VALUES, BASELINE, equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert found.test == WELCH
    assert found.p_value == pytest.approx(expected.pvalue)
    assert (found.ci_low, found.ci_high) == pytest.approx((interval.low, interval.high))


def test_a_single_shared_seed_is_no_pairing_and_gives_no_interval():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = difference([2.0], [1.9], seeds=[1], baseline_seeds=[1])
    assert found.test == WELCH
    assert found.delta == pytest.approx(0.1)
    assert math.isnan(found.ci_low) and math.isnan(found.p_value)
    assert found.within_noise is None  # unknown, not "within noise"


def test_within_noise_is_marked_exactly_when_the_interval_holds_zero():
    noisy = difference([2.0, 2.4, 2.1], [2.1, 2.0, 2.3], [1, 2, 3], [1, 2, 3])
    clear = difference([2.3, 2.4, 2.35], [2.0, 2.1, 2.05], [1, 2, 3], [1, 2, 3])
    assert noisy.ci_low < 0 < noisy.ci_high and noisy.within_noise is True
    assert clear.ci_low > 0 and clear.within_noise is False
    assert Difference(-0.2, -0.3, -0.1, 0.01, PAIRED).within_noise is False
    assert Difference(0.0, 0.0, 0.2, 0.05, PAIRED).within_noise is True  # 0 is on the edge


@pytest.mark.parametrize(
    ("xs", "E", "A", "alpha"),
    [
        (np.geomspace(1e5, 1e8, 6), 1.5, 40.0, 0.3),  # parameters
        (np.geomspace(1e9, 1e15, 7), 1.7, 400.0, 0.2),  # FLOPs
        (np.array([10.0, 20.0, 40.0, 80.0, 160.0]), 0.8, 3.0, 0.7),
    ],
    ids=["params", "flops", "small x"],
)
def test_the_fit_recovers_a_noiseless_power_law(xs, E, A, alpha):
    fit = fit_power_law(xs, E + A * xs**-alpha)
    assert (fit.E, fit.A, fit.alpha) == pytest.approx((E, A, alpha), rel=1e-4)
    assert all(math.isfinite(se) and se < 1e-3 * abs(v) for se, v in _errors(fit))
    np.testing.assert_allclose(fit.predict(xs), E + A * xs**-alpha, rtol=1e-6)


def test_the_fit_errors_are_scipys_on_noisy_data():
    from scipy.optimize import curve_fit

    xs = np.array([10.0, 20.0, 40.0, 80.0, 160.0, 320.0])
    ys = 1.5 + 4 * xs**-0.5 + np.random.default_rng(1).normal(0, 0.01, len(xs))
    fit = fit_power_law(xs, ys)
    # At these x the unscaled problem is well conditioned: scipy fits it directly.
    params, pcov = curve_fit(lambda x, e, a, k: e + a * x**-k, xs, ys, p0=[1.5, 4.0, 0.5])
    assert (fit.E, fit.A, fit.alpha) == pytest.approx(tuple(params), rel=1e-4)
    assert (fit.E_se, fit.A_se, fit.alpha_se) == pytest.approx(
        tuple(np.sqrt(np.diag(pcov))), rel=1e-3
    )


def test_three_points_are_fitted_but_leave_the_errors_undetermined():
    xs = np.array([1e5, 1e6, 1e7])
    fit = fit_power_law(xs, 1.5 + 40 * xs**-0.3)
    assert fit.alpha == pytest.approx(0.3, rel=1e-3)
    assert all(not math.isfinite(se) for se, _ in _errors(fit))


def test_fewer_than_three_distinct_x_values_cannot_be_fitted():
    with pytest.raises(ValueError, match="3 or more distinct"):
        fit_power_law([1e5, 1e5, 1e6, 1e6], [2.0, 2.1, 1.9, 1.8])


def _errors(fit: PowerLawFit) -> list[tuple[float, float]]:
    return [(fit.E_se, fit.E), (fit.A_se, fit.A), (fit.alpha_se, fit.alpha)]


@pytest.mark.parametrize(
    "losses", [(2.0, 2.0, 2.0, 2.0), (1.9, 2.0, 2.1, 2.2)], ids=["flat", "rising"]
)
def test_a_fit_to_losses_that_do_not_fall_leaves_alpha_undetermined(losses):
    fit = fit_power_law([1e5, 1e6, 1e7, 1e8], losses)
    assert fit.alpha > 0
    assert math.isinf(fit.alpha_se) and math.isinf(fit.A_se)  # not a confident 0
