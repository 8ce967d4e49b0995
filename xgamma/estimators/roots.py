"""Roots of many monotone one-dimensional functions at once (safeguarded Newton in brackets)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["bracketed_roots"]


def bracketed_roots(
    func: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    xtol: float = 1e-10,
    rtol: float = 1e-10,
    max_iter: int = 100,
) -> np.ndarray:
    """Element-wise roots of ``func`` in ``[lower, upper]`` (NaN where its sign does not change there).

    Newton steps that leave the current bracket are replaced by bisection, so every element
    converges (the bracket shrinks at least by half each such step); for the smooth convex
    statistics of this package Newton steps are taken almost always.

    Parameters
    ----------
    func : callable
        ``func(x, index) -> (value, derivative)`` for the elements ``index`` (an int array into
        ``lower``) at points ``x`` (same length).
    lower, upper : numpy.ndarray
        Bracket ends, 1-D, ``lower <= upper``.
    xtol, rtol : float
        Stop when a step is below ``xtol + rtol * |x|``. Default is 1e-10 for both.
    max_iter : int
        Most iterations. Default is 100.

    Returns
    -------
    roots : numpy.ndarray
        Same shape as ``lower``; NaN where ``func`` has the same sign at both ends (as
        `scipy.optimize.brentq` would refuse the bracket) or a bound is not finite.

    Examples
    --------
    >>> f = lambda x, i: (x**2 - np.array([2.0, 9.0])[i], 2 * x)
    >>> bracketed_roots(f, np.array([0.0, 0.0]), np.array([2.0, 2.0])).round(9).tolist()
    [1.414213562, nan]
    """
    lower = np.asarray(lower, dtype=float).copy()
    upper = np.asarray(upper, dtype=float).copy()
    out = np.full(lower.shape, np.nan)
    index = np.flatnonzero(np.isfinite(lower) & np.isfinite(upper))
    if index.size == 0:
        return out
    f_lo, _ = func(lower[index], index)
    f_hi, _ = func(upper[index], index)
    exact_lo, exact_hi = f_lo == 0, f_hi == 0
    out[index[exact_lo]] = lower[index[exact_lo]]
    out[index[exact_hi & ~exact_lo]] = upper[index[exact_hi & ~exact_lo]]
    keep = (np.sign(f_lo) * np.sign(f_hi) < 0)
    index, lo, hi, rising = index[keep], lower[index[keep]], upper[index[keep]], f_lo[keep] < 0
    x = 0.5 * (lo + hi)
    for _ in range(max_iter):
        if index.size == 0:
            break
        value, slope = func(x, index)
        below = (value < 0) == rising  # the root lies above x
        lo, hi = np.where(below, x, lo), np.where(below, hi, x)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = x - value / slope
        outside = ~((new > lo) & (new < hi))
        new = np.where(outside, 0.5 * (lo + hi), new)
        done = (np.abs(new - x) <= xtol + rtol * np.abs(new)) | (value == 0)
        out[index[done]] = np.where(value[done] == 0, x[done], new[done])
        keep = ~done
        index, lo, hi, rising, x = index[keep], lo[keep], hi[keep], rising[keep], new[keep]
    return out
