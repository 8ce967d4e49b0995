"""Norm fits on the truncated Cash statistic, as Gammapy's flux points make them (few fits, any norm).

Gammapy's ``FluxPointsEstimator`` fits the norm with MINUIT and no bounds: below ``-min(b / m)``
the prediction of some pixels is negative, and its Cash statistic then truncates the prediction
at ``1e-25`` (`MU_MIN`). For a faint bin the best norm can lie there, and its upper limit with it.
To reproduce those points, the fits here minimise that same statistic,

.. math::
    C(x) = 2 \\sum_i \\left[ \\mu_i - n_i \\ln \\mu_i \\right], \\quad \\mu_i = \\max(b_i + x m_i, 10^{-25}),

which is convex on the norms where every pixel with counts keeps a positive prediction. Its
derivative ``dC/dx = 2 [sum_{mu > 1e-25} m - sum n m / mu]`` increases with ``x``; roots of it and
of ``C(x) - C_min - n_sigma**2`` are found for all fits at once by `bracketed_roots`. (TS maps
keep Gammapy's ``TSMapEstimator`` convention instead, the norm >= ``-min(b / m)``:
`xgamma.estimators.norm_fit`.)

Arrays have shape (n_entries, n_fits); padding entries (n = b = m = 0) contribute nothing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from xgamma.estimators.norm_fit import MU_MIN
from xgamma.estimators.roots import bracketed_roots

__all__ = ["TruncatedFits"]


class TruncatedFits:
    """Fits of the norm of ``model`` over ``background`` to ``counts`` (one per column).

    Parameters
    ----------
    counts, background, model : numpy.ndarray
        Shape (n_entries, n_fits).
    """

    def __init__(self, counts: np.ndarray, background: np.ndarray, model: np.ndarray) -> None:
        self.counts = np.asarray(counts, dtype=float)
        self.background = np.asarray(background, dtype=float)
        self.model = np.asarray(model, dtype=float)

    def stat(self, norm: np.ndarray, index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``C``, ``dC/dx`` and ``d2C/dx2`` at ``norm`` for the fits ``index`` (all when None)."""
        n, b, m = (a if index is None else a[:, index] for a in (self.counts, self.background, self.model))
        mu = b + norm * m
        active = mu > MU_MIN
        mu = np.where(active, mu, MU_MIN)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(n > 0, n / mu, 0.0)
            value = 2.0 * np.sum(mu - np.where(n > 0, n * np.log(mu), 0.0), axis=0)
        slope = 2.0 * np.sum(np.where(active, m * (1.0 - ratio), 0.0), axis=0)
        curvature = 2.0 * np.sum(np.where(active, ratio * m**2 / mu, 0.0), axis=0)
        return value, slope, curvature

    def _domain(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pole of the counts, norm where every prediction is truncated, upper bracket)."""
        n, b, m = self.counts, self.background, self.model
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(m > 0, b / m, np.inf)
            pole = -np.min(np.where(n > 0, t, np.inf), axis=0)  # -inf: no counts where m > 0
            floor = -np.max(np.where(m > 0, t, -np.inf), axis=0)
            upper = np.maximum(n.sum(axis=0) / m.sum(axis=0) + pole, -np.min(t, axis=0))
        # The bound is the root itself for a single pixel with counts: widen it past rounding.
        return pole, floor, upper + 1e-6 * (np.abs(upper) + np.abs(pole))

    def best(self) -> dict[str, np.ndarray]:
        """Best-fit norms: ``norm``, ``norm_err`` (curvature), ``ts`` (C(0) - C(best)), ``stat``,
        ``stat_null``, ``success`` (a root was found)."""
        pole, floor, upper = self._domain()
        lower = np.where(np.isfinite(pole), pole + 1e-9 * np.maximum(np.abs(pole), 1e-30), floor)

        def func(x: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            _, slope, curvature = self.stat(x, index)
            return slope, curvature

        norm = bracketed_roots(func, lower, upper, xtol=0.0, rtol=1e-12)
        success = np.isfinite(norm)
        # No counts where the model is > 0: C decreases down to the norm where all is truncated.
        norm = np.where(np.isfinite(pole), norm, floor)
        stat, _, curvature = self.stat(np.where(np.isfinite(norm), norm, 0.0))
        stat_null, _, _ = self.stat(np.zeros_like(norm))
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.sqrt(2.0 / curvature)
        return {"norm": norm, "norm_err": err, "ts": stat_null - stat, "stat": stat, "stat_null": stat_null,
                "success": success | ~np.isfinite(pole)}

    def confidence(self, fit: dict[str, np.ndarray], *, n_sigma: float,
                   side: Literal["upper", "lower"] = "upper") -> np.ndarray:
        """Norm where ``C`` is ``n_sigma**2`` above its minimum, within 100 errors of the best fit
        (NaN beyond, as Gammapy's scipy confidence search)."""
        if side not in ("upper", "lower"):
            raise ValueError(f"side must be 'upper' or 'lower', got {side!r}")
        norm, err = fit["norm"], fit["norm_err"]
        target = fit["stat"] + n_sigma**2
        span = 100.0 * np.where(np.isfinite(err), err, np.abs(norm) + 1.0)
        if side == "upper":
            lower, upper = norm, norm + span
        else:
            pole, _, _ = self._domain()
            lower = np.maximum(norm - span, pole + 1e-9 * np.maximum(np.abs(pole), 1e-30))
            upper = norm

        def func(x: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            value, slope, _ = self.stat(x, index)
            return value - target[index], slope

        return bracketed_roots(func, lower, upper, xtol=0.0, rtol=1e-10)
