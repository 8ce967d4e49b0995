"""Public test helpers for xgamma and its plugins."""

from __future__ import annotations

from xgamma.testing.dask import CountingScheduler, raise_if_dask_computes
from xgamma.testing.maps import assert_maps_allclose
from xgamma.testing.conformance import (
    check_background_estimator,
    check_spatial_model,
    check_spectral_model,
)

__all__ = [
    "CountingScheduler",
    "assert_maps_allclose",
    "check_background_estimator",
    "check_spatial_model",
    "check_spectral_model",
    "raise_if_dask_computes",
]
