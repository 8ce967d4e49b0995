"""Iterative exclusion: background -> significance -> threshold until the mask stops changing."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
import xarray as xr

from xgamma.background import RingBackground
from xgamma.exceptions import EstimatorError
from xgamma.geometry import SkyGeometry
from xgamma.maps import make_map
from xgamma.workflow.exclusion import iterate_exclusion_mask

BINSZ = 0.02


@pytest.fixture
def geometry() -> SkyGeometry:
    return SkyGeometry.create((0, 0), width=[3 * u.deg, 2 * u.deg], binsz=BINSZ * u.deg)


def test_iterative_mask_finds_source(geometry):
    # A bright simulated source on a flat background: the iteration must exclude it and stop.
    rng = np.random.default_rng(7)
    geom3 = geometry.with_energy([1, 10] * u.TeV)
    acceptance = np.full(geom3.data_shape, 2.0)
    expected = acceptance.copy()
    y, x = np.mgrid[: geometry.shape[0], : geometry.shape[1]]
    expected[0] += 30 * np.exp(-((x - 75) ** 2 + (y - 50) ** 2) / (2 * 3.0**2))
    counts = rng.poisson(expected).astype(float)
    ds = xr.Dataset({"counts": make_map(counts, geom3), "background": make_map(acceptance, geom3)})
    mask, n_iter = iterate_exclusion_mask(
        ds, background_estimator=RingBackground(r_in="0.3 deg", width="0.2 deg"),
        correlation_radius="0.1 deg", threshold=5, dilation="0.1 deg", max_iterations=6,
    )
    assert 2 <= n_iter < 6  # converged before the limit
    assert not mask.values[50, 75]  # the source is excluded
    assert mask.values.mean() > 0.9  # and not much else
    with pytest.raises(EstimatorError, match="max_iterations"):
        iterate_exclusion_mask(ds, background_estimator=RingBackground(), max_iterations=0)
