"""One-parameter Cash fits of a source norm, many at once (the core of TS maps and flux points).

Each fit (a column of the input arrays) has counts ``n``, background ``b`` (all fitted models,
fixed) and source template ``m`` (predicted counts for norm 1) over the entries of its footprint
(pixels around a position, all energy bins). Its test statistic for norm ``x`` is

.. math::
    TS(x) = C(0) - C(x) = 2 \\left[ \\sum_i n_i \\ln(1 + x r_i) - x M \\right],
    \\qquad r_i = m_i / b_i, \\quad M = \\sum_i m_i ,

(Cash statistic ``C = 2 sum (mu - n ln mu)``) and the best norm is the root of (Stewart 2009,
A&A 495, 989, appendix A)

.. math::
    F(x) = \\sum_i \\frac{n_i r_i}{1 + x r_i} - M = 0 .

``F + M`` is a sum of simple poles, so ``1 / (F + M)`` is concave (a harmonic sum of linear
functions): Newton's method on ``H(x) = 1 / (F + M) - 1 / M`` started left of the root climbs to it
monotonically, exactly in one step where a single pole dominates (a bright source) and
quadratically otherwise. It needs no bracketing nor bisection, so all fits of a block advance
together as array operations (Gammapy runs `scipy.optimize.brentq` pixel by pixel).

Arrays have shape (n_entries, n_fits) so that reductions run over axis 0 on contiguous rows; the
fits only need ``n``, ``r`` and ``M``. `fit_norm_reference` is the plain per-fit version (scipy
``brentq`` on the same equations), kept for testing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["NormFit", "NormFits", "fit_norm", "fit_norm_ratio", "norm_confidence", "fit_norm_reference", "ratio_of",
           "MU_MIN"]

#: Smallest background count (as the truncation of Gammapy's and xgamma's Cash statistic).
MU_MIN = 1e-25
#: ``1 + x r`` is kept above this (it reaches 0 at ``norm_min`` in entries without counts).
_U_MIN = np.finfo(float).eps


@dataclass
class NormFit:
    """Best-fit norms of many one-parameter fits (arrays of shape (n_fits,)).

    Attributes
    ----------
    norm : numpy.ndarray
        Best-fit norm (may be negative, down to ``norm_min``).
    norm_err : numpy.ndarray
        1 sigma error from the curvature, ``1 / sqrt(sum n m^2 / (b + x m)^2)``.
    ts : numpy.ndarray
        ``C(0) - C(norm)`` (>= 0).
    norm_min : numpy.ndarray
        Smallest norm keeping every prediction non-negative: ``-min(b / m)``.
    niter : numpy.ndarray
        Newton iterations used (int).
    success : numpy.ndarray
        Converged within ``max_niter`` (bool).
    """

    norm: np.ndarray
    norm_err: np.ndarray
    ts: np.ndarray
    norm_min: np.ndarray
    niter: np.ndarray
    success: np.ndarray


def ratio_of(background: np.ndarray, model: np.ndarray) -> np.ndarray:
    """``r = m / b`` with the background raised to at least `MU_MIN` (0 where ``m`` is 0)."""
    return np.asarray(model, dtype=float) / np.maximum(np.asarray(background, dtype=float), MU_MIN)


def fit_norm(counts: np.ndarray, background: np.ndarray, model: np.ndarray, *, tolerance: float = 1e-3,
             max_niter: int = 100) -> NormFit:
    """Fit the norm of ``model`` over ``background`` to ``counts``, one fit per column.

    Parameters
    ----------
    counts, background, model : numpy.ndarray
        Shape (n_entries, n_fits): counts, background counts (values below `MU_MIN` are raised to
        it) and source counts for norm 1 (>= 0).
    tolerance, max_niter
        See `NormFits.best`.

    Returns
    -------
    fit : NormFit
    """
    model = np.asarray(model, dtype=float)
    fits = NormFits(counts, ratio_of(background, model), model.sum(axis=0))
    return fits.best(tolerance=tolerance, max_niter=max_niter)


class NormFits:
    """Many one-parameter norm fits sharing work buffers (arrays of shape (n_entries, n_fits)).

    Parameters
    ----------
    counts : numpy.ndarray
        Counts per entry and fit.
    ratio : numpy.ndarray
        ``m / b`` per entry (>= 0; 0 where the template is 0), same shape.
    model_sum : numpy.ndarray
        ``M = sum m`` per fit, shape (n_fits,).
    """

    def __init__(self, counts: np.ndarray, ratio: np.ndarray, model_sum: np.ndarray) -> None:
        self.counts = np.asarray(counts, dtype=float)
        self.ratio = np.asarray(ratio, dtype=float)
        self.model_sum = np.asarray(model_sum, dtype=float)
        self.counts_ratio = self.counts * self.ratio
        self._work = (np.empty_like(self.counts), np.empty_like(self.counts))

    def _columns(self, index: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """(n, r, n r, M, work buffers) of the fits ``index`` (all for None)."""
        arrays = (self.counts, self.ratio, self.counts_ratio)
        if index is not None and index.size < self.counts.shape[1]:
            arrays = tuple(a[:, index] for a in arrays)
            work = tuple(np.empty_like(arrays[0]) for _ in range(2))
            return (*arrays, self.model_sum[index], *work)
        return (*arrays, self.model_sum, *self._work)

    def best(self, *, tolerance: float = 1e-3, max_niter: int = 100) -> NormFit:
        """Best-fit norms, their errors and TS.

        Parameters
        ----------
        tolerance : float
            Stop when the error left after a Newton step (estimated from the quadratic
            convergence) is below ``tolerance`` times the norm's error. Default is 1e-3.
        max_niter : int
            Most Newton iterations per fit. Default is 100.

        Returns
        -------
        fit : NormFit
            NaN for fits whose template is 0. A fit whose root lies below ``norm_min`` (e.g. one
            without counts) has its norm at ``norm_min``, as Gammapy's has.
        """
        n_fits = self.counts.shape[1]
        work = self._work[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            # Poles of F at -1/r: the most negative norm keeping all predictions >= 0, and the
            # pole nearest to 0 among entries with counts. Just right of that pole F > 0: a
            # point left of the root (Stewart 2009 and Gammapy bracket with c/M past it).
            norm_min = -1.0 / self.ratio.max(axis=0)
            np.multiply(self.ratio, self.counts > 0, out=work)
            pole = -1.0 / work.max(axis=0)
        lower = np.maximum(pole * (1.0 - 1e-9), norm_min)
        valid = self.model_sum > 0
        fitted = valid & np.isfinite(pole)  # some counts where the template is > 0: a root exists
        norm = np.where(valid, norm_min, np.nan)
        niter = np.zeros(n_fits, dtype=np.int64)
        success = valid.copy()
        if fitted.any():
            index = np.flatnonzero(fitted)
            norm[index], niter[index], success[index] = self._newton(index, lower[index], tolerance, max_niter)
        x = np.where(valid, norm, 0.0)
        ts, _, curvature = self._profile(x, *self._columns(None))
        with np.errstate(divide="ignore", invalid="ignore"):
            # No counts where the template is > 0: zero curvature, infinite error (as Gammapy).
            norm_err = np.where(valid, 1.0 / np.sqrt(curvature), np.nan)
        return NormFit(norm=norm, norm_err=norm_err, ts=np.where(valid, np.maximum(ts, 0.0), np.nan),
                       norm_min=np.where(valid, norm_min, np.nan), niter=niter, success=success)

    @staticmethod
    def _profile(x: np.ndarray, n: np.ndarray, r: np.ndarray, nr: np.ndarray, big_m: np.ndarray, work: np.ndarray,
                 other: np.ndarray, *, ts: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """``TS(x)``, ``S1 = sum n r / u`` and ``S2 = sum n r^2 / u^2`` with ``u = 1 + x r``.

        ``F = S1 - M`` and ``F' = -S2``; the norm's error is ``1 / sqrt(S2)``. ``u`` is kept above
        `_U_MIN` (it reaches 0 at ``norm_min`` in entries without counts, where terms are 0).
        """
        np.multiply(r, x, out=work)
        work += 1.0
        if np.any(x < 0):  # only below 0 can u reach 0 (at norm_min, in entries without counts)
            np.maximum(work, _U_MIN, out=work)
        value = None
        if ts:
            np.log(work, out=other)
            value = 2.0 * (np.einsum("ij,ij->j", n, other) - x * big_m)
        np.divide(r, work, out=other)  # r / u
        np.divide(nr, work, out=work)  # n r / u
        return value, work.sum(axis=0), np.einsum("ij,ij->j", work, other)

    def _newton(self, index: np.ndarray, lower: np.ndarray, tolerance: float,
                max_niter: int) -> tuple[np.ndarray, ...]:
        """Newton on the concave ``H`` for the fits ``index``; returns (norm, niter, success).

        Started at 0 (or the lower point): right of the root, a Newton step on H lands left of
        it (kept above ``lower``, which is left of it too); from there the steps climb
        monotonically. From 0 the first step is the single-pole estimate, exact for a bright
        source. A fit's norm is stored at its own convergence (later steps of its column are
        ignored), so its result does not depend on the other fits: any blocks give the same maps.
        """
        n_fits = index.size
        norm = np.empty(n_fits)
        niter = np.full(n_fits, max_niter, dtype=np.int64)
        success = np.zeros(n_fits, dtype=bool)
        n, r, nr, big_m, work, other = self._columns(index)
        x = np.maximum(0.0, lower)
        where = np.arange(n_fits)
        done = np.zeros(n_fits, dtype=bool)
        for iteration in range(1, max_niter + 1):
            _, s1, s2 = self._profile(x, n, r, nr, big_m, work, other, ts=False)
            work *= other
            s3 = np.einsum("ij,ij->j", work, other)  # sum n r^3 / u^3 = F'' / 2
            with np.errstate(divide="ignore", invalid="ignore"):
                new_x = np.maximum(x + (s1 / s2) * (s1 / big_m - 1.0), lower)
                step = new_x - x
                # Quadratic convergence: the error left is ~ |H'' / 2 H'| step^2 = |S2/S1 - S3/S2| step^2
                # (a step stopped at the lower point is final: the root lies below norm_min).
                left = np.abs(s2 / s1 - s3 / s2) * step**2
                new = ~done & ((left <= tolerance / np.sqrt(s2)) | (step == 0))
            x = new_x
            norm[where[new]] = x[new]
            niter[where[new]] = iteration
            success[where[new]] = True
            done |= new
            if done.all():
                break
            if done.mean() > 0.5:  # drop converged fits (their later steps would be wasted)
                keep = ~done
                n, r, nr, work, other = (a[:, keep] for a in (n, r, nr, work, other))
                where, x, big_m, lower, done = where[keep], x[keep], big_m[keep], lower[keep], done[keep]
        else:
            norm[where[~done]] = x[~done]
        return norm, niter, success

    def confidence(self, fit: NormFit, *, n_sigma: float, side: Literal["upper", "lower"] = "upper",
                   tolerance: float = 1e-3, max_niter: int = 100) -> np.ndarray:
        """Norm where the statistic is ``n_sigma**2`` above its minimum, above or below the best fit.

        ``side="upper"`` gives an upper limit (``n_sigma=2`` is Gammapy's default) or, minus the
        norm, the positive error; ``side="lower"`` the end of the negative error. ``C`` is convex;
        Halley's method on ``C(x) - C_min - n_sigma**2`` from ``norm +- n_sigma norm_err``
        converges in two or three steps; below the best fit the search stays above ``norm_min``.

        Parameters
        ----------
        fit : NormFit
            The best fits of these arrays.
        n_sigma : float
            Statistic difference ``n_sigma**2`` (> 0).
        side : {"upper", "lower"}
            Which side of the best fit. Default is "upper".
        tolerance, max_niter
            Convergence as for `best`.

        Returns
        -------
        norm : numpy.ndarray
            Shape (n_fits,); NaN where the fit is invalid or, below the best fit, where the
            statistic stays within ``n_sigma**2`` of its minimum down to ``norm_min``.
        """
        if side not in ("upper", "lower"):
            raise ValueError(f"side must be 'upper' or 'lower', got {side!r}")
        if not n_sigma > 0:
            raise ValueError(f"n_sigma must be positive, got {n_sigma!r}")
        out = np.full(np.shape(fit.norm), np.nan)
        index = np.flatnonzero(np.isfinite(fit.norm) & np.isfinite(fit.norm_err) & (fit.norm_err > 0))
        if index.size == 0:
            return out
        n, r, nr, big_m, work, other = self._columns(index)
        norm, sigma, lowest = fit.norm[index], fit.norm_err[index], fit.norm_min[index]
        target = fit.ts[index] - n_sigma**2  # TS(x) = TS(best) - n_sigma^2 at the solution
        if side == "upper":
            x = norm + n_sigma * sigma
            done = np.zeros(index.size, dtype=bool)
        else:
            x = np.where(norm - n_sigma * sigma > lowest, norm - n_sigma * sigma, 0.5 * (norm + lowest))
            edge, _, _ = self._profile(lowest, n, r, nr, big_m, work, other)
            done = edge >= target  # TS stays above the target down to norm_min: no root
        for _ in range(max_niter):
            if done.all():
                break
            ts, s1, s2 = self._profile(x, n, r, nr, big_m, work, other)
            g, slope, curve = target - ts, 2.0 * (big_m - s1), 2.0 * s2  # C - C_min - n^2 and its derivatives
            with np.errstate(divide="ignore", invalid="ignore"):
                new = x - 2.0 * g * slope / (2.0 * slope**2 - g * curve)
            if side == "lower":
                new = np.where(new > lowest, new, 0.5 * (x + lowest))  # stay inside the domain
            converged = ~done & (np.abs(new - x) <= tolerance * sigma)
            x = np.where(done, x, new)
            out[index[converged]] = x[converged]
            done |= converged
        return out


def fit_norm_ratio(counts: np.ndarray, ratio: np.ndarray, model_sum: np.ndarray, *, tolerance: float = 1e-3,
                   max_niter: int = 100) -> NormFit:
    """`NormFits.best` of counts, ratios ``m / b`` and template sums ``M`` (see `NormFits`)."""
    return NormFits(counts, ratio, model_sum).best(tolerance=tolerance, max_niter=max_niter)


def norm_confidence(counts: np.ndarray, ratio: np.ndarray, model_sum: np.ndarray, fit: NormFit, *,
                    n_sigma: float, side: Literal["upper", "lower"] = "upper", tolerance: float = 1e-3,
                    max_niter: int = 100) -> np.ndarray:
    """`NormFits.confidence` of counts, ratios ``m / b`` and template sums ``M`` (see `NormFits`)."""
    return NormFits(counts, ratio, model_sum).confidence(fit, n_sigma=n_sigma, side=side, tolerance=tolerance,
                                                         max_niter=max_niter)


def fit_norm_reference(counts: np.ndarray, background: np.ndarray, model: np.ndarray, *,
                       n_sigma_ul: float = 2.0) -> dict[str, np.ndarray]:
    """Per-fit reference of `fit_norm` and `norm_confidence` (scipy ``brentq``, one fit at a time).

    The equations as written (Stewart 2009 appendix A, the Cash statistic with Gammapy's
    truncation); slow, for tests only.

    Returns
    -------
    result : dict
        ``norm``, ``norm_err``, ``ts``, ``norm_ul`` arrays of shape (n_fits,).
    """
    from scipy.optimize import brentq

    out = {key: np.full(counts.shape[1], np.nan) for key in ("norm", "norm_err", "ts", "norm_ul")}
    for j in range(counts.shape[1]):
        use = model[:, j] > 0
        n, b, m = counts[use, j], np.maximum(background[use, j], MU_MIN), model[use, j]
        if m.sum() <= 0:
            continue

        def stat(x: float) -> float:
            mu = np.maximum(b + x * m, MU_MIN)
            return 2.0 * float(np.sum(mu - n * np.log(mu)))

        def derivative(x: float) -> float:
            return float(np.sum(n * m / (b + x * m)) - m.sum())

        norm_min = -np.min(b / m)
        x = norm_min
        if n.sum() > 0:
            t = np.where(n > 0, b / m, np.inf)
            lo, hi = n[np.argmin(t)] / m.sum() - t.min(), n.sum() / m.sum() - t.min()
            if derivative(lo) > 0 > derivative(hi):
                x = max(brentq(derivative, lo, hi, xtol=1e-14, rtol=1e-14), norm_min)
            else:
                x = max(lo if derivative(lo) <= 0 else hi, norm_min)
        with np.errstate(divide="ignore"):
            err = 1.0 / np.sqrt(np.sum(n * m**2 / np.maximum(b + x * m, MU_MIN) ** 2))
        best = stat(x)
        out["norm"][j], out["norm_err"][j], out["ts"][j] = x, err, max(stat(0.0) - best, 0.0)
        hi = x + 100 * err
        if np.isfinite(err) and stat(hi) > best + n_sigma_ul**2:
            out["norm_ul"][j] = brentq(lambda v: stat(v) - best - n_sigma_ul**2, x, hi, xtol=1e-14, rtol=1e-14)
    return out
