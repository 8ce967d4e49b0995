"""Vectorised one-parameter Cash fits (the TS-map core) against the per-fit brentq reference and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from xgamma.estimators import cash_significance
from xgamma.estimators.norm_fit import NormFits, fit_norm, fit_norm_reference, ratio_of


def _footprints(n_fits: int = 400, n_entries: int = 121, seed: int = 1) -> tuple[np.ndarray, ...]:
    """Poisson counts over a Gaussian template: background-only, faint and bright sources, and edge cases."""
    rng = np.random.default_rng(seed)
    profile = np.exp(-0.5 * ((np.arange(n_entries) - n_entries // 2) / 12.0) ** 2)
    model = profile[:, None] / profile.sum() * rng.uniform(20, 400, n_fits)[None]
    background = rng.uniform(0.05, 3.0, (n_entries, n_fits))
    norm = np.where(rng.uniform(size=n_fits) < 0.4, rng.uniform(0, 30, n_fits), 0.0)
    counts = rng.poisson(background + norm * model).astype(float)
    counts[:, :5] = 0  # no counts: the norm stops at norm_min
    counts[:, 5:10] = rng.poisson(0.2 * background[:, 5:10])  # deficits: root below norm_min
    model[:, 10] = 0  # no template: invalid fit
    background[:, 11] = 0  # no background with a template: the norm must stay >= 0
    return counts, background, model


def test_matches_brentq_reference():
    counts, background, model = _footprints()
    fit = fit_norm(counts, background, model)
    fits = NormFits(counts, ratio_of(background, model), model.sum(axis=0))
    upper = fits.confidence(fit, n_sigma=2)
    ref = fit_norm_reference(counts, background, model, n_sigma_ul=2)
    finite = np.isfinite(ref["norm"])
    assert np.array_equal(np.isfinite(fit.norm), finite) and not finite[10]
    sigma = ref["norm_err"][finite]
    # Newton stops when the error left is below 1e-3 of the norm's error (the default tolerance).
    np.testing.assert_array_less(np.abs(fit.norm - ref["norm"])[finite], 2e-3 * np.where(np.isfinite(sigma), sigma, 1))
    np.testing.assert_allclose(fit.ts[finite], ref["ts"][finite], rtol=1e-6, atol=1e-5)
    err = np.isfinite(ref["norm_err"])
    np.testing.assert_allclose(fit.norm_err[err], ref["norm_err"][err], rtol=1e-3)
    ul = np.isfinite(ref["norm_ul"])
    np.testing.assert_allclose(upper[ul], ref["norm_ul"][ul], rtol=0, atol=2e-3 * np.max(ref["norm_err"][ul]))
    assert fit.success[finite].all() and fit.niter.max() < 8
    # No counts: the fit sits at the edge of the allowed domain (all predictions >= 0), as Gammapy's.
    np.testing.assert_allclose(fit.norm[:5], fit.norm_min[:5])
    assert np.all(fit.norm_min[:5] < 0) and np.all(fit.ts[:5] > 0)
    assert fit.norm[11] > 0 and fit.norm_min[11] == pytest.approx(0.0, abs=1e-20)


def test_single_entry_is_the_cash_significance():
    # One entry: n = b + x m at the best fit, TS = 2 (n ln(n / b) - (n - b)).
    n = np.array([[0.0, 1.0, 4.0, 17.0, 250.0]])
    b = np.array([[2.0, 2.0, 2.0, 5.0, 100.0]])
    m = np.array([[1.5, 3.0, 2.0, 0.5, 40.0]])
    fit = fit_norm(n, b, m)
    positive = n[0] > 0
    np.testing.assert_allclose(fit.norm[positive], ((n - b) / m)[0][positive], rtol=1e-9)
    np.testing.assert_allclose(np.sign(fit.norm) * np.sqrt(fit.ts), cash_significance(n[0], b[0]), rtol=1e-7)
    # curvature error: sqrt(n) / m
    np.testing.assert_allclose(fit.norm_err[positive], (np.sqrt(n) / m)[0][positive], rtol=1e-9)


def test_bright_source_converges_in_one_step():
    # Background negligible: F(x) ~ N / x - M has (nearly) a single pole, which the first step
    # solves; the second confirms convergence.
    model = np.array([[10.0], [30.0], [60.0]])
    counts = np.array([[12.0], [31.0], [58.0]])
    fit = fit_norm(counts, np.full_like(model, 1e-12), model)
    assert fit.norm[0] == pytest.approx(counts.sum() / model.sum(), rel=1e-9)
    assert fit.niter[0] <= 2


def test_results_do_not_depend_on_the_other_fits():
    counts, background, model = _footprints(n_fits=60)
    whole = fit_norm(counts, background, model)
    for part in (slice(0, 7), slice(30, 31), slice(13, 60, 3)):
        alone = fit_norm(counts[:, part], background[:, part], model[:, part])
        np.testing.assert_allclose(alone.norm, whole.norm[part], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(alone.ts, whole.ts[part], rtol=1e-12, atol=1e-12)


def test_lower_confidence_and_errors():
    counts, background, model = _footprints(n_fits=200, seed=4)
    fit = fit_norm(counts, background, model)
    fits = NormFits(counts, ratio_of(background, model), model.sum(axis=0))
    low = fits.confidence(fit, n_sigma=1, side="lower")
    high = fits.confidence(fit, n_sigma=1, side="upper")
    ok = np.isfinite(low)
    # The statistic rises by exactly 1 at both ends (checked against a direct evaluation).
    for x in (low, high):
        for j in np.flatnonzero(ok)[:20]:
            mu = np.maximum(background[:, j] + x[j] * model[:, j], 1e-25)
            mu0 = np.maximum(background[:, j] + fit.norm[j] * model[:, j], 1e-25)
            delta = 2 * np.sum(mu - counts[:, j] * np.log(mu)) - 2 * np.sum(mu0 - counts[:, j] * np.log(mu0))
            assert delta == pytest.approx(1.0, abs=1e-3)
    # Strong sources: the profile is nearly parabolic, so both errors approach the curvature error.
    strong = ok & (fit.ts > 400)
    assert strong.sum() > 10
    np.testing.assert_allclose((high - low)[strong] / 2, fit.norm_err[strong], rtol=0.05)
    # Without a root above norm_min the lower end is NaN (the statistic never rises by n_sigma^2).
    assert np.all(np.isnan(low[:5]))
    with pytest.raises(ValueError, match="side"):
        fits.confidence(fit, n_sigma=1, side="middle")
