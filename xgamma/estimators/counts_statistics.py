"""Excess errors, upper limits and sensitivities of counts measurements, element-wise on arrays.

Two cases, as in Gammapy's ``WStatCountsStatistic`` / ``CashCountsStatistic`` (same statistics,
search ranges and conventions, so that maps agree with ``ExcessMapEstimator``):

* **on-off** (``n_on``, ``n_off``, ``alpha``): the W statistic, the Poisson likelihood of on and
  off counts with the background profiled out (Cash 1979; XSPEC's W-stat). For a signal
  ``mu`` the background is ``b = (C + D) / (2 alpha (alpha + 1))`` with
  ``C = alpha (n_on + n_off) - (1 + alpha) mu`` and ``D = sqrt(C^2 + 4 alpha (1 + alpha) n_off mu)``, and

  .. math:: W(\\mu) = 2 [\\mu + (1 + \\alpha) b - n_{on} \\ln(\\mu + \\alpha b) - n_{off} \\ln b] ;

  errors and limits are where ``W`` rises by ``n_sigma**2`` above its minimum at the excess
  ``n_on - alpha n_off``, found for all pixels at once by `bracketed_roots`;
* **known background** (``n_on``, ``mu_bkg``): the Cash statistic, whose errors and limits have
  closed forms in the Lambert W function.

All functions take and return numpy arrays (counts, not fluxes); NaN inputs give NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xgamma.estimators.roots import bracketed_roots

__all__ = [
    "wstat",
    "on_off_errors",
    "on_off_upper_limit",
    "on_off_sensitivity",
    "cash_errors",
    "cash_upper_limit",
    "cash_sensitivity",
]


def _arrays(*values: Any) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in np.broadcast_arrays(*values)]


def wstat(n_on: Any, n_off: Any, alpha: Any, mu_sig: Any) -> tuple[np.ndarray, np.ndarray]:
    """The W statistic at signal ``mu_sig`` (background profiled) and its derivative in ``mu_sig``.

    Without the model-independent terms (they cancel in every difference used here).

    Returns
    -------
    stat, derivative : numpy.ndarray
        ``W`` and ``dW / dmu = 2 (1 - n_on / (mu + alpha b))`` (envelope theorem).
    """
    n_on, n_off, alpha, mu = _arrays(n_on, n_off, alpha, mu_sig)
    c = alpha * (n_on + n_off) - (1 + alpha) * mu
    d = np.sqrt(c**2 + 4 * alpha * (alpha + 1) * n_off * mu)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = (c + d) / (2 * alpha * (alpha + 1))
        on = mu + alpha * b
        stat = 2 * (mu + (1 + alpha) * b - np.where(n_on > 0, n_on * np.log(on), 0.0)
                    - np.where(n_off > 0, n_off * np.log(b), 0.0))
        derivative = 2 * (1 - np.where(n_on > 0, n_on / on, 0.0))
    return stat, derivative


def _wstat_root(n_on: np.ndarray, n_off: np.ndarray, alpha: np.ndarray, target: np.ndarray, lower: np.ndarray,
                upper: np.ndarray) -> np.ndarray:
    """Signal where ``W`` equals ``target`` in ``[lower, upper]`` (NaN without a sign change)."""
    def func(x: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stat, slope = wstat(n_on.flat[index], n_off.flat[index], alpha.flat[index], x)
        return stat - target.flat[index], slope

    shape = n_on.shape
    return bracketed_roots(func, lower.ravel(), upper.ravel()).reshape(shape)


def on_off_errors(n_on: Any, n_off: Any, alpha: Any, *, n_sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Negative and positive errors of the excess ``n_on - alpha n_off`` (counts).

    Where ``W`` rises by ``n_sigma**2``, searched within ``2 n_sigma (error + 1)`` of the excess
    (``error = sqrt(n_on + alpha^2 n_off)``). As Gammapy: without a root below the excess the
    negative error is ``n_on``; without one above, the positive error is NaN.

    Returns
    -------
    errn, errp : numpy.ndarray
        Both >= 0.
    """
    n_on, n_off, alpha = _arrays(n_on, n_off, alpha)
    excess = n_on - alpha * n_off
    error = np.sqrt(n_on + alpha**2 * n_off)
    target = wstat(n_on, n_off, alpha, excess)[0] + n_sigma**2
    span = 2 * n_sigma * (error + 1)
    low = _wstat_root(n_on, n_off, alpha, target, excess - span, excess)
    high = _wstat_root(n_on, n_off, alpha, target, excess, excess + span)
    errn = np.where(np.isnan(low), n_on, excess - low)
    return np.where(np.isnan(excess), np.nan, errn), high - excess


def on_off_upper_limit(n_on: Any, n_off: Any, alpha: Any, *, n_sigma: float = 2.0) -> np.ndarray:
    """Upper limit on the excess (counts): ``W`` rises by ``n_sigma**2`` above its value at the excess.

    Searched within ``2 n_sigma (error + 1)`` above the excess (NaN beyond, as Gammapy).
    """
    n_on, n_off, alpha = _arrays(n_on, n_off, alpha)
    excess = n_on - alpha * n_off
    error = np.sqrt(n_on + alpha**2 * n_off)
    target = wstat(n_on, n_off, alpha, excess)[0] + n_sigma**2
    return _wstat_root(n_on, n_off, alpha, target, excess, excess + 2 * n_sigma * (error + 1))


def on_off_sensitivity(n_off: Any, alpha: Any, *, n_sigma: float = 5.0) -> np.ndarray:
    """Excess (counts) that would have a Li & Ma significance of ``n_sigma`` over ``alpha n_off``.

    The root of ``S(n_off alpha + s, n_off, alpha) = n_sigma`` in ``s`` (``S`` increases with the
    on counts), as Gammapy's ``n_sig_matching_significance``.
    """
    from xgamma.estimators.significance import li_ma_significance

    n_off, alpha = _arrays(n_off, alpha)
    background = alpha * n_off

    def func(x: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        off, a = n_off.flat[index], alpha.flat[index]
        on = background.flat[index] + x
        sig = li_ma_significance(on, off, a)
        with np.errstate(divide="ignore", invalid="ignore"):
            # dS/dn_on = ln((1 + a) / a * n_on / (n_on + n_off)) / S
            slope = np.log((1 + a) / a * on / (on + off)) / sig
        return sig - n_sigma, slope

    # S <= s / sqrt(alpha n_off) (Gaussian limit); the excess at least doubles it, plus a few counts.
    upper = 2 * n_sigma * np.sqrt(background * (1 + alpha)) + n_sigma**2 + 10
    lower = np.full(upper.shape, 1e-9 * np.maximum(background, 1.0))
    return bracketed_roots(func, lower.ravel(), upper.ravel()).reshape(upper.shape)


def _lambert(n_on: np.ndarray, n_sigma: float, branch: int) -> np.ndarray:
    """``n_on (W_k(-exp(-c / n_on - 1)) + 1)`` with ``c = n_sigma^2 / 2`` (0 where n_on <= 0)."""
    from scipy.special import lambertw

    c = n_sigma**2 / 2
    on = np.where(n_on > 0, n_on, 1.0)
    return np.where(n_on > 0, on * (lambertw(-np.exp(-c / on - 1), k=branch).real + 1), 0.0)


def cash_errors(n_on: Any, *, n_sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Negative and positive errors of an excess over a known background (Cash; counts).

    Closed forms: the Cash statistic rises by ``n_sigma**2`` at ``n_on (W_0 + 1)`` below and
    ``-n_on (W_-1 + 1)`` above (Lambert W of ``-exp(-c / n_on - 1)``, ``c = n_sigma**2 / 2``);
    for ``n_on = 0``: 0 and ``c``.
    """
    (n_on,) = _arrays(n_on)
    c = n_sigma**2 / 2
    return _lambert(n_on, n_sigma, 0), np.where(n_on > 0, -_lambert(n_on, n_sigma, -1), c)


def cash_upper_limit(n_on: Any, mu_bkg: Any, *, n_sigma: float = 2.0) -> np.ndarray:
    """Upper limit on the excess over a known background (counts): excess + positive error."""
    n_on, mu_bkg = _arrays(n_on, mu_bkg)
    return cash_errors(n_on, n_sigma=n_sigma)[1] + np.where(n_on > 0, n_on - mu_bkg, 0.0)


def cash_sensitivity(mu_bkg: Any, *, n_sigma: float = 5.0) -> np.ndarray:
    """Excess over a known background ``mu_bkg`` with a Cash significance of ``n_sigma`` (counts).

    ``mu (exp(W(((c / mu) - 1) / e) + 1) - 1)`` with ``c = n_sigma^2 / 2`` (NaN where ``mu <= 0``).
    """
    from scipy.special import lambertw

    (mu,) = _arrays(mu_bkg)
    c = n_sigma**2 / 2
    safe = np.where(mu > 0, mu, 1.0)
    branch = 0 if n_sigma > 0 else -1
    res = lambertw((c / safe - 1) / np.e, k=branch).real
    return np.where(mu > 0, safe * (np.exp(res + 1) - 1), np.nan)
