"""Significance distribution: histogram of finite pixels (all, and outside the exclusion), normal fit.

Plotted by `xgamma.plotting.plot_significance_distribution`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from xgamma.exceptions import EstimatorError

__all__ = [
    "SignificanceDistribution",
    "significance_distribution",
    "significance_summary",
]


@dataclass(frozen=True)
class SignificanceDistribution:
    """Result of `significance_distribution`.

    Attributes
    ----------
    mean, std : float
        Normal fit (maximum likelihood: sample mean and standard deviation) of the off pixels, sigma.
    n_pixels : int
        Number of finite off pixels.
    edges : `numpy.ndarray`
        Histogram bin edges (sigma).
    counts_all, counts_off : `numpy.ndarray`
        Pixel counts per bin, for all finite pixels and for finite pixels outside the exclusion.
    """

    mean: float
    std: float
    n_pixels: int
    edges: np.ndarray
    counts_all: np.ndarray
    counts_off: np.ndarray

    def to_dict(self) -> dict[str, float | int]:
        """``{"mean", "std", "n_pixels"}`` as plain Python numbers (for JSON)."""
        return {"mean": float(self.mean), "std": float(self.std), "n_pixels": int(self.n_pixels)}


def _values(da_: Any) -> np.ndarray:
    return np.asarray(da_.values if isinstance(da_, xr.DataArray) else da_)


def significance_distribution(
    significance: xr.DataArray,
    *,
    exclusion: xr.DataArray | None = None,
    bins: Any = None,
) -> SignificanceDistribution:
    """Histogram the significance of all finite pixels and of those outside the exclusion; fit a normal.

    This computes the (lazy) significance map.

    Parameters
    ----------
    significance : `xarray.DataArray`
        Significance map, dims (..., "lat", "lon").
    exclusion : `xarray.DataArray`, optional
        Exclusion mask (lat, lon), True = outside excluded regions; broadcast over other dims.
        Default: all pixels are "off" pixels.
    bins : int or array_like, optional
        Histogram bins. Default: 0.1 sigma bins over [-5, 10] sigma, widened to the data.

    Returns
    -------
    distribution : `SignificanceDistribution`

    Raises
    ------
    EstimatorError
        When no finite pixel is left outside the exclusion.
    """
    from scipy.stats import norm

    values = _values(significance).astype(float)
    finite = np.isfinite(values)
    off = finite.copy()
    if exclusion is not None:
        mask = exclusion
        if isinstance(significance, xr.DataArray) and isinstance(exclusion, xr.DataArray):
            mask = exclusion.astype(bool).broadcast_like(significance).transpose(*significance.dims)
        off &= np.broadcast_to(_values(mask).astype(bool), values.shape)
    if not off.any():
        raise EstimatorError("significance distribution: no finite pixel outside the exclusion mask")
    if bins is None:
        low = min(-5.0, np.floor(values[finite].min()))
        high = max(10.0, np.ceil(values[finite].max()))
        bins = np.arange(low, high + 0.05, 0.1)
    counts_all, edges = np.histogram(values[finite], bins=bins)
    counts_off, _ = np.histogram(values[off], bins=edges)
    mean, std = norm.fit(values[off])
    return SignificanceDistribution(
        mean=float(mean),
        std=float(std),
        n_pixels=int(off.sum()),
        edges=edges,
        counts_all=counts_all,
        counts_off=counts_off,
    )


def significance_summary(maps: xr.Dataset) -> dict[str, Any]:
    """Peak significance, its sky position and the off-pixel distribution, as plain Python data.

    The layout of the ``significance.json`` file of the ``significance`` stage::

        {"max_significance": float,
         "max_position": {"lon": deg, "lat": deg, "frame": "galactic" | "icrs"},  # RA in [0, 360)
         "off_distribution": {"mean": float, "std": float, "n_pixels": int}}

    Parameters
    ----------
    maps : `xarray.Dataset`
        Output of `~xgamma.estimators.significance_maps` (``significance`` and, optionally,
        ``exclusion``). This computes the significance map.

    Returns
    -------
    summary : dict
    """
    from xgamma.geometry.sky import wrap_longitude
    from xgamma.maps import map_geometry

    if "significance" not in maps:
        raise EstimatorError("significance summary needs a 'significance' variable")
    sig = maps["significance"]
    other = [d for d in sig.dims if d not in ("lat", "lon")]
    values = np.asarray(sig.transpose(*other, "lat", "lon").values, dtype=float)
    if not np.isfinite(values).any():
        raise EstimatorError("significance map has no finite pixel")
    flat = np.nanargmax(values)
    iy, ix = np.unravel_index(flat, values.shape)[-2:]
    geometry = map_geometry(sig)
    position = geometry.pixel_to_skycoord(float(ix), float(iy))
    # The frame's usual range: RA in [0, 360), Galactic longitude in [-180, 180).
    lon, lat = wrap_longitude(position.spherical.lon.deg, geometry.frame), position.spherical.lat.deg
    exclusion = maps["exclusion"] if "exclusion" in maps else None
    distribution = significance_distribution(sig, exclusion=exclusion)
    return {
        "max_significance": float(values.reshape(-1)[flat]),
        "max_position": {"lon": float(lon), "lat": float(lat), "frame": geometry.frame},
        "off_distribution": distribution.to_dict(),
    }
