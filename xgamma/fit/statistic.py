"""The Cash statistic and a picklable likelihood of free parameter values.

``cash`` is C = 2 (mu - n ln mu) per pixel (Cash 1979, without the model-independent n ln n - n
term; the same convention as Gammapy, so statistic values compare directly). ``Likelihood`` is a
plain object holding numpy arrays and model copies: ``Likelihood(values) -> float`` runs anywhere
(e.g. a dask worker) without xarray or the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xgamma.fit.npred import DatasetArrays, add_box, npred_background, npred_source
from xgamma.models.background_model import BackgroundModel
from xgamma.models.parameter import Parameter
from xgamma.models.sky_model import SkyModel

__all__ = ["cash", "cash_sum", "Likelihood", "model_parameters"]

_MU_MIN = 1e-25  # clip of the prediction inside the log (empty model pixels)


def cash(counts: np.ndarray, npred: np.ndarray) -> np.ndarray:
    """Per-pixel Cash statistic 2 (mu - n ln mu) (dimensionless array)."""
    mu = np.maximum(npred, _MU_MIN)
    return 2.0 * (mu - counts * np.log(mu))


def cash_sum(counts: np.ndarray, npred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Sum of :func:`cash` over ``mask`` (all pixels when None)."""
    c = cash(counts, npred)
    return float(c[mask].sum() if mask is not None else c.sum())


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
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Re-read which parameters are free (after freezing or thawing one)."""
        self._free = [p for _, p in model_parameters(self.models) if not p.frozen]
        self._bkg = next((m for m in self.models if isinstance(m, BackgroundModel)), None)
        self._sources = [m for m in self.models if isinstance(m, SkyModel)]

    @property
    def free_labels(self) -> list[str]:
        return [label for label, p in model_parameters(self.models) if not p.frozen]

    def _background_fixed(self) -> bool:
        return self._bkg is None or all(p.frozen for p in self._bkg.parameters)

    def _base(self) -> tuple[np.ndarray, np.ndarray, float]:
        # With a fixed background, the statistic outside the sources' cutouts never changes:
        # cache the background-only per-pixel statistic and its total once.
        if "base" not in self._cache:
            a = self.arrays
            bkg = np.asarray(npred_background(a, self._bkg), dtype=float)
            c = np.where(a.mask, cash(a.counts, bkg), 0.0)
            self._cache["base"] = (bkg, c, float(c.sum()))
        return self._cache["base"]

    def set_values(self, values: np.ndarray) -> None:
        """Set the free parameters (canonical units, order of :attr:`free_labels`)."""
        for p, v in zip(self._free, values):
            p.value = v

    def __call__(self, values: np.ndarray) -> float:
        """Cash statistic for the free parameter ``values``."""
        self.nfev += 1
        self.set_values(values)
        a = self.arrays
        parts = [npred_source(a, m) for m in self._sources]
        parts = [(b, v) for b, v in parts if b is not None]
        if not self._background_fixed():
            total = np.array(npred_background(a, self._bkg), dtype=float, copy=True)
            for b, v in parts:
                add_box(total, b, v)
            return cash_sum(a.counts, total, a.mask)
        bkg, base_c, base_sum = self._base()
        if not parts:
            return base_sum
        # Union box of all source cutouts; the statistic changes only there.
        ylo = min(b[0].start for b, _ in parts)
        yhi = max(b[0].stop for b, _ in parts)
        xlo = min(b[1].start for b, _ in parts)
        xhi = max(b[1].stop for b, _ in parts)
        union = (slice(ylo, yhi), slice(xlo, xhi))
        local = bkg[:, union[0], union[1]].copy()
        for b, v in parts:
            local[:, b[0].start - ylo:b[0].stop - ylo, b[1].start - xlo:b[1].stop - xlo] += v
        mask = a.mask[:, union[0], union[1]]
        new = cash(a.counts[:, union[0], union[1]], local)[mask].sum()
        return base_sum - float(base_c[:, union[0], union[1]].sum()) + float(new)
