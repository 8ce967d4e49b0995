"""Field-of-view background: scale the background model by a norm fitted outside the exclusion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import xarray as xr

from xgamma.exceptions import EstimatorError

__all__ = ["FoVBackground", "SPATIAL_DIMS"]

#: The image dims of a map (the norm is fitted over them).
SPATIAL_DIMS = ("lat", "lon")


@dataclass(frozen=True, eq=False)
class FoVBackground:
    """Field-of-view background estimator (``name = "fov"``).

    For each observation (each entry of an ``obs_id`` dim, or the whole map without one) and
    each energy bin, the background model ``b`` is scaled by the norm that maximises the
    Poisson likelihood of the counts ``n`` in the usable pixels (exclusion True)::

        norm = sum(n * mask) / sum(b * mask)

    (the zero of d/dnorm of the Cash statistic sum(norm b - n ln(norm b))). Where the model
    has no acceptance in the usable pixels the norm is NaN.

    Parameters
    ----------
    exclusion : xarray.DataArray, optional
        Boolean image (lat, lon), True where a pixel may be used. Default: the dataset's
        ``exclusion`` variable, else every pixel.
    per_energy : bool, optional
        Fit one norm per energy bin (True, default) or one per observation (False).
    """

    name: ClassVar[str] = "fov"

    exclusion: xr.DataArray | None = None
    per_energy: bool = True

    def run(self, dataset: xr.Dataset) -> xr.Dataset:
        """Return a new Dataset with ``background`` scaled and ``background_norm`` added (lazy).

        Raises
        ------
        EstimatorError
            If ``counts`` or ``background`` is missing, or the exclusion does not match the map.
        """
        missing = {"counts", "background"} - set(dataset.data_vars)
        if missing:
            raise EstimatorError(f"fov background needs dataset variables {sorted(missing)}")
        counts, model = dataset["counts"], dataset["background"]
        if counts.sizes != model.sizes:
            raise EstimatorError(f"counts {dict(counts.sizes)} and background {dict(model.sizes)} differ")
        mask = self.usable_pixels(dataset)
        reduce_dims = [d for d in counts.dims if d in SPATIAL_DIMS or (d == "energy" and not self.per_energy)]
        n_sum = counts.where(mask, 0.0).sum(reduce_dims)
        b_sum = model.where(mask, 0.0).sum(reduce_dims)
        norm = (n_sum / b_sum.where(b_sum > 0)).drop_vars("wcs", errors="ignore")
        norm.attrs = {"units": ""}
        background = model * norm
        background.attrs = dict(model.attrs)  # same units as the model (counts)
        return dataset.assign(background=background, background_norm=norm)

    def usable_pixels(self, dataset: xr.Dataset) -> Any:
        """The pixels the norm is fitted on: the exclusion mask (True = usable), or True for all."""
        exclusion = self.exclusion
        if exclusion is None and "exclusion" in dataset:
            exclusion = dataset["exclusion"]
        if exclusion is None:
            return True
        exclusion = exclusion.squeeze([d for d in exclusion.dims if d not in SPATIAL_DIMS and exclusion.sizes[d] == 1])
        if exclusion.dims != SPATIAL_DIMS:
            raise EstimatorError(f"fov background: exclusion must have dims {SPATIAL_DIMS}, got {exclusion.dims}")
        shape = tuple(dataset["counts"].sizes[d] for d in SPATIAL_DIMS)
        if exclusion.shape != shape:
            raise EstimatorError(f"fov background: exclusion shape {exclusion.shape} != map shape {shape}")
        return exclusion.astype(bool).variable  # positional: ignore coordinate round-off
