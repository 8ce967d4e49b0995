"""Iterative exclusion masks: background -> significance -> threshold, until the mask stops changing.

A workflow step (it runs a background estimator and the significance estimator, and computes):
it sits above both layers, so that neither imports the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr

from xgamma.background.exclusion import threshold_exclusion_mask
from xgamma.estimators.significance import significance_maps
from xgamma.exceptions import EstimatorError

__all__ = ["iterate_exclusion_mask"]


def iterate_exclusion_mask(
    dataset: xr.Dataset,
    *,
    background_estimator: Any,
    correlation_radius: Any = "0.1 deg",
    threshold: float = 5.0,
    dilation: Any = "0.2 deg",
    exclusion: xr.DataArray | None = None,
    max_iterations: int = 5,
) -> tuple[xr.DataArray, int]:
    """Iterate background -> significance -> threshold mask until the mask stops changing.

    As ctools' ``ctskymap`` iterative mode: start from ``exclusion`` (or nothing excluded), run the
    background estimator with the current mask, compute the correlated significance, exclude
    pixels above ``threshold`` (grown by ``dilation``) on top of ``exclusion``, and repeat until the
    mask is unchanged or ``max_iterations`` is reached. This computes (it must, to iterate).

    Parameters
    ----------
    dataset : `xarray.Dataset`
        Maps with ``counts`` and ``background`` (the acceptance model).
    background_estimator : `~xgamma.background.RingBackground` or `~xgamma.background.AdaptiveRingBackground`
        The estimator; its ``exclusion`` is replaced at each step (a copy is used).
    correlation_radius : str or `~astropy.units.Quantity`
        Top-hat radius of the significance. Default is 0.1 deg.
    threshold, dilation :
        See `threshold_exclusion_mask`.
    exclusion : `xarray.DataArray`, optional
        Initial (and always kept) exclusion mask.
    max_iterations : int
        Maximum number of background estimations. Default is 5.

    Returns
    -------
    mask : `xarray.DataArray`
        Final exclusion mask (True = usable).
    n_iterations : int
        Number of background estimations run.
    """
    if int(max_iterations) < 1:
        raise EstimatorError(f"max_iterations must be >= 1, got {max_iterations!r}")
    current = exclusion
    for iteration in range(1, int(max_iterations) + 1):
        estimator = dataclasses.replace(background_estimator, exclusion=current)
        result = significance_maps(estimator.run(dataset), correlation_radius=correlation_radius)
        new = threshold_exclusion_mask(
            result["significance"], threshold=threshold, dilation=dilation, base=exclusion
        )
        if current is not None and np.array_equal(np.asarray(current.values), np.asarray(new.values)):
            return new, iteration
        current = new
    return current, int(max_iterations)
