"""Excess errors, upper limits and sensitivities: definitions, limits, and Gammapy's counts statistics."""

from __future__ import annotations

import numpy as np
import pytest

from xgamma.estimators import li_ma_significance
from xgamma.estimators.counts_statistics import (
    cash_errors,
    cash_sensitivity,
    cash_upper_limit,
    on_off_errors,
    on_off_sensitivity,
    on_off_upper_limit,
    wstat,
)
from xgamma.estimators.roots import bracketed_roots


def _on_off(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(0.01, 0.5, n)
    n_off = rng.poisson(rng.uniform(0, 200, n)).astype(float)
    signal = rng.uniform(0, 30, n) * (rng.uniform(size=n) < 0.5)
    n_on = rng.poisson(alpha * n_off + signal).astype(float)
    n_on[:10], n_off[10:20] = 0, 0  # no on counts; no off counts
    return n_on, n_off, alpha


def test_wstat_rises_by_n_sigma_squared_at_the_errors_and_limits():
    n_on, n_off, alpha = _on_off()
    excess = n_on - alpha * n_off
    best = wstat(n_on, n_off, alpha, excess)[0]
    errn, errp = on_off_errors(n_on, n_off, alpha, n_sigma=1)
    ul = on_off_upper_limit(n_on, n_off, alpha, n_sigma=2)
    ok = np.isfinite(errp) & (errn != n_on)
    np.testing.assert_allclose(wstat(n_on, n_off, alpha, excess - errn)[0][ok] - best[ok], 1.0, atol=1e-7)
    np.testing.assert_allclose(wstat(n_on, n_off, alpha, excess + errp)[0][ok] - best[ok], 1.0, atol=1e-7)
    np.testing.assert_allclose(wstat(n_on, n_off, alpha, ul)[0] - best, 4.0, atol=1e-7)
    # The W statistic is minimal at the excess (its derivative vanishes there).
    np.testing.assert_allclose(wstat(n_on, n_off, alpha, excess)[1][n_on > 0], 0.0, atol=1e-9)
    # Many counts: the errors approach the Gaussian error sqrt(n_on + alpha^2 n_off).
    big = on_off_errors(1e6, 2e6, 0.5)
    assert np.allclose(big, np.sqrt(1e6 + 0.25 * 2e6), rtol=2e-3)


def test_sensitivity_has_the_requested_significance():
    _, n_off, alpha = _on_off()
    excess = on_off_sensitivity(n_off, alpha, n_sigma=5)
    ok = n_off > 0
    np.testing.assert_allclose(li_ma_significance(alpha * n_off + excess, n_off, alpha)[ok], 5.0, rtol=1e-8)


def test_cash_closed_forms():
    n_on = np.array([0.0, 1.0, 7.0, 120.0])
    mu = np.array([0.5, 2.0, 3.0, 100.0])
    errn, errp = cash_errors(n_on, n_sigma=1)
    # C(mu) = 2 (mu - n ln mu) rises by 1 at n - errn and n + errp (the best fit is mu = n).
    def cash(n, m):
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2 * (m - np.where(n > 0, n * np.log(m), 0.0))
    positive = n_on > 0
    for end in (n_on - errn, n_on + errp):
        np.testing.assert_allclose((cash(n_on, end) - cash(n_on, n_on))[positive], 1.0, rtol=1e-9)
    assert errn[0] == 0 and errp[0] == 0.5  # n_on = 0: the one-sided interval [0, n_sigma^2 / 2]
    np.testing.assert_allclose(cash_upper_limit(n_on, mu, n_sigma=2)[positive],
                               (n_on - mu + cash_errors(n_on, n_sigma=2)[1])[positive])
    s = cash_sensitivity(mu, n_sigma=5)
    from xgamma.estimators import cash_significance

    np.testing.assert_allclose(cash_significance(mu + s, mu), 5.0, rtol=1e-9)


def test_bracketed_roots():
    targets = np.array([2.0, 9.0, 0.25, 1e6])

    def func(x, index):
        return x**3 - targets[index], 3 * x**2

    roots = bracketed_roots(func, np.zeros(4), np.array([3.0, 2.0, 1.0, 1e3]))
    np.testing.assert_allclose(roots[[0, 2, 3]], np.cbrt(targets[[0, 2, 3]]), rtol=1e-10)
    assert np.isnan(roots[1])  # no sign change in [0, 2]
    assert np.isnan(bracketed_roots(func, np.array([np.nan]), np.array([1.0]))[0])


@pytest.mark.gammapy
def test_match_gammapy_counts_statistics():
    from gammapy.stats import CashCountsStatistic, WStatCountsStatistic

    n_on, n_off, alpha = _on_off(n=100)  # Gammapy solves pixel by pixel: ~20 ms each
    reference = WStatCountsStatistic(n_on, n_off, alpha)
    errn, errp = on_off_errors(n_on, n_off, alpha, n_sigma=1)
    # Gammapy's brentq stops at its default xtol of 2e-12 counts; ours at 1e-10 relative.
    np.testing.assert_allclose(errn, reference.compute_errn(1), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(errp, reference.compute_errp(1), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(on_off_upper_limit(n_on, n_off, alpha, n_sigma=2), reference.compute_upper_limit(2),
                               rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(on_off_sensitivity(n_off, alpha, n_sigma=5),
                               reference.n_sig_matching_significance(5), rtol=1e-7, equal_nan=True)
    mu = alpha * n_off + 0.1
    cash = CashCountsStatistic(n_on, mu)
    np.testing.assert_allclose(cash_errors(n_on)[0], cash.compute_errn(1), rtol=1e-12)
    np.testing.assert_allclose(cash_errors(n_on)[1], cash.compute_errp(1), rtol=1e-12)
    np.testing.assert_allclose(cash_upper_limit(n_on, mu), cash.compute_upper_limit(2), rtol=1e-12)
    np.testing.assert_allclose(cash_sensitivity(mu), cash.n_sig_matching_significance(5), rtol=1e-12)
