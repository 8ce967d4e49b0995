"""Predicted counts per energy bin against the exact integral of flux x effective area (simulated
instrument): with ``spectral_exposure`` exact, at the bin centres (Gammapy's convention) biased."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from xgamma.fit import MapDataset, source_kernels
from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.makers import make_maps
from xgamma.simulate import AnalyticIRF, point_source

TARGET = SkyCoord(0, 0, unit="deg", frame="galactic")


@pytest.fixture(scope="module")
def setup(simulated_observations):
    # 41 pixels of 0.05 deg: the source sits on a pixel centre (the exposure map is exact there) and
    # the widest PSF kernel (0.7 deg at 0.3 TeV) stays inside the map.
    geometry = SkyGeometry.create((0, 0), width=2.05 * u.deg, binsz=0.05 * u.deg, frame="galactic",
                                  energy_edges=energy_edges(0.3 * u.TeV, 10 * u.TeV, 6))
    maps = make_maps(simulated_observations, geometry, offset_max=2 * u.deg).compute()
    source = point_source(TARGET, 2e-10 * u.Unit("cm-2 s-1"), index=2.3, name="src")
    # Exact counts per bin: the integral of flux x A(E, offset) x livetime over each bin.
    irf, edges = AnalyticIRF(), geometry.energy_edges.to_value("TeV")
    expected = np.zeros(len(edges) - 1)
    for obs in simulated_observations:
        offset = obs.pointing.separation(TARGET)
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            grid = np.geomspace(lo, hi, 4001)
            mid, width = np.sqrt(grid[1:] * grid[:-1]), np.diff(grid)
            rate = source.spectral(mid * u.TeV).to_value("cm-2 s-1 TeV-1") * irf.aeff(mid * u.TeV, offset).to_value("cm2")
            expected[i] += np.sum(rate * width) * obs.livetime.to_value("s")
    return simulated_observations, geometry, maps, source, expected


def _counts_per_bin(setup, spectral_exposure: bool) -> np.ndarray:
    observations, geometry, maps, source, _ = setup
    psf, _ = source_kernels(observations, geometry, [source], offset_max=2 * u.deg, spectral_exposure=spectral_exposure)
    npred = MapDataset.from_maps(maps, psf=psf, models=[source]).npred_source("src").values.sum(axis=(1, 2))
    return npred / psf["src"].enclosed  # the flux the truncated kernel does not hold is not predicted


def test_spectral_exposure_predicts_the_integral_of_flux_times_area(setup):
    expected = setup[-1]
    # Tolerance: the DL3 tables reproduce the analytic area to < 1e-3 (xgamma.simulate.irfs; measured
    # here: -6e-4 to -2e-4 per bin).
    np.testing.assert_allclose(_counts_per_bin(setup, True), expected, rtol=1e-3)


def test_bin_centre_exposure_overpredicts_where_the_area_is_concave(setup):
    ratio = _counts_per_bin(setup, False) / setup[-1] - 1
    # 6 bins of factor 1.8 above a threshold at 0.08 TeV: +0.5 % in the first bin, falling with
    # energy (docs/validation.md); the fitted amplitude comes out ~0.3 % low.
    assert ratio[0] > 4e-3
    assert np.all(np.diff(ratio) < 1e-3)
