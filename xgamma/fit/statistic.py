"""The Cash statistic and a picklable likelihood of free parameter values.

``cash`` is C = 2 (mu - n ln mu) per pixel (Cash 1979, without the model-independent n ln n - n
term; the same convention as Gammapy, so statistic values compare directly). ``Likelihood`` is a
plain object holding numpy arrays and model copies: ``Likelihood(values) -> float`` runs anywhere
(e.g. a dask worker) without xarray or the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xgamma.fit.npred import DatasetArrays, add_box, npred_background, npred_source
from xgamma.models.background_model import BackgroundModel
from xgamma.models.parameter import Parameter
from xgamma.models.sky_model import SkyModel

__all__ = ["cash", "cash_sum", "cash_significance", "Likelihood", "model_parameters"]

_MU_MIN = 1e-25  # clip of the prediction inside the log (empty model pixels)


def cash(counts: np.ndarray, npred: np.ndarray) -> np.ndarray:
    """Per-pixel Cash statistic 2 (mu - n ln mu) (dimensionless array)."""
    mu = np.maximum(npred, _MU_MIN)
    return 2.0 * (mu - counts * np.log(mu))


def cash_sum(counts: np.ndarray, npred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Sum of :func:`cash` over ``mask`` (all pixels when None)."""
    c = cash(counts, npred)
    return float(c[mask].sum() if mask is not None else c.sum())


def cash_significance(n_on: Any, mu_bkg: Any) -> np.ndarray:
    r"""Significance of ``n_on`` counts over a known background ``mu_bkg`` (Cash statistic).

    The one per-pixel Cash significance (residual maps of the fit, the known-background
    significance maps of `xgamma.estimators`): NaN where ``mu_bkg`` is not positive or an input
    is not finite (undefined there).

    .. math::
        S = \mathrm{sign}(N_{on} - \mu) \sqrt{2 \left[ N_{on} \ln(N_{on} / \mu) - (N_{on} - \mu)
        \right]}

    Examples
    --------
    >>> round(float(cash_significance(5, 1)), 7)
    2.8450622
    """
    from scipy.special import xlogy

    n_on, mu = (np.asarray(x, dtype=float) for x in (n_on, mu_bkg))
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = 2 * (xlogy(n_on, n_on / mu) - (n_on - mu))
        sig = np.sign(n_on - mu) * np.sqrt(np.clip(ts, 0, None))
    valid = (mu > 0) & np.isfinite(mu) & (n_on >= 0) & np.isfinite(n_on)
    return np.where(valid, sig, np.nan)


def model_parameters(models: list) -> list[tuple[str, Parameter]]:
    """All parameters of ``models`` as ``("<model>.<name>", Parameter)`` pairs, in order."""
    out = []
    for m in models:
        for p in m.parameters:
            out.append((f"{m.name}.{p.name}", p))
    return out


@dataclass
class Likelihood:
    """Cash statistic of a dataset as a function of the free parameter values.

    Parameters
    ----------
    arrays : DatasetArrays
        The dataset's numpy arrays.
    models : list
        SkyModel / BackgroundModel objects (owned by the likelihood: pass copies).
    """

    arrays: DatasetArrays
    models: list
    nfev: int = 0
    _free: list = field(default_factory=list, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)  # quantities of ``arrays`` only

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Re-read which parameters are free (after freezing or thawing one)."""
        self._free = [p for _, p in model_parameters(self.models) if not p.frozen]
        self._bkg = next((m for m in self.models if isinstance(m, BackgroundModel)), None)
        self._sources = [m for m in self.models if isinstance(m, SkyModel)]

    def with_models(self, models: list) -> Likelihood:
        """A likelihood of the same arrays with other models (sharing the per-pixel terms)."""
        return Likelihood(self.arrays, models, _cache=self._cache)

    @property
    def free_labels(self) -> list[str]:
        return [label for label, p in model_parameters(self.models) if not p.frozen]

    def _terms(self) -> dict[str, np.ndarray]:
        """Per-pixel pieces of the background-only statistic (computed once).

        Where the background map ``b`` is positive, the statistic of a scaled background
        ``s b`` is ``2 s b - 2 n ln s - 2 n ln b``: its sums over the mask, per energy bin, give
        the statistic of the whole map for any background scale ``s`` in O(n_energy). Masked-in
        pixels without background hold the constant ``cash(n, 0)``.
        """
        if "terms" not in self._cache:
            a = self.arrays
            b = np.zeros(a.shape) if a.background is None else np.asarray(a.background, dtype=float)
            positive = a.mask & (b > 0)
            terms = {
                "b": np.where(positive, b, 0.0),
                "n": np.where(positive, a.counts, 0.0),
                "n_ln_b": np.where(positive, a.counts * np.log(np.where(positive, b, 1.0)), 0.0),
                "empty": np.where(a.mask & ~positive, cash(a.counts, np.zeros(a.shape)), 0.0),
            }
            self._cache["terms"] = terms
            self._cache["totals"] = {k: v.sum(axis=(1, 2)) for k, v in terms.items()}
        return self._cache["terms"]

    def _background_statistic(self, scale: np.ndarray, sums: dict[str, np.ndarray]) -> float:
        """Background-only statistic from per-energy sums (see :meth:`_terms`), scale > 0."""
        return float(np.sum(2.0 * scale * sums["b"] - 2.0 * np.log(scale) * sums["n"] - 2.0 * sums["n_ln_b"]
                            + sums["empty"]))

    def set_values(self, values: np.ndarray) -> None:
        """Set the free parameters (canonical units, order of :attr:`free_labels`)."""
        for p, v in zip(self._free, values):
            p.value = v

    def __call__(self, values: np.ndarray) -> float:
        """Cash statistic for the free parameter ``values``.

        Outside the union of the sources' cutouts only the background scale changes the
        statistic: that part comes from per-energy sums (:meth:`_terms`), so a call costs the
        cutout pixels, not the map, whether the background norm is free or not.
        """
        self.nfev += 1
        self.set_values(values)
        a = self.arrays
        scale = (np.ones(a.shape[0]) if self._bkg is None or a.background is None
                 else np.asarray(self._bkg.scale(a.energy_centers), dtype=float))
        parts = [npred_source(a, m) for m in self._sources]
        parts = [(b, v) for b, v in parts if b is not None]
        if not np.all(scale > 0):  # a non-positive background: the clipped log needs every pixel
            total = np.array(npred_background(a, self._bkg), dtype=float, copy=True)
            for b, v in parts:
                add_box(total, b, v)
            return cash_sum(a.counts, total, a.mask)
        terms = self._terms()
        statistic = self._background_statistic(scale, self._cache["totals"])
        if not parts:
            return statistic
        ylo = min(b[0].start for b, _ in parts)
        yhi = max(b[0].stop for b, _ in parts)
        xlo = min(b[1].start for b, _ in parts)
        xhi = max(b[1].stop for b, _ in parts)
        union = (slice(None), slice(ylo, yhi), slice(xlo, xhi))
        local = (np.zeros((a.shape[0], yhi - ylo, xhi - xlo)) if a.background is None
                 else a.background[union] * scale[:, None, None])
        for b, v in parts:
            local[:, b[0].start - ylo:b[0].stop - ylo, b[1].start - xlo:b[1].stop - xlo] += v
        inside = {k: v[union].sum(axis=(1, 2)) for k, v in terms.items()}
        mask = a.mask[union]
        return statistic - self._background_statistic(scale, inside) + float(cash(a.counts[union], local)[mask].sum())
