"""Energy squashing with per-pixel valid energy ranges: exact image = cube predictions for the weighting spectrum."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
import xarray as xr

from xgamma.fit import MapDataset
from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.maps import make_map
from xgamma.makers import squash_energy
from xgamma.models import Gaussian, PowerLaw2, SkyModel
from xgamma.testing import raise_if_dask_computes

EDGES = energy_edges(0.1 * u.TeV, 10 * u.TeV, 4)


@pytest.fixture(scope="module")
def masked_cube():
    """40 x 40 cube; the left half has exposure in all 4 bins, the right half only above 1 TeV
    (its observations' safe range), one column nowhere (out of the field), and a gap."""
    geometry = SkyGeometry.create((0, 0), width=0.8 * u.deg, binsz=0.02 * u.deg, frame="galactic",
                                  energy_edges=EDGES)
    rng = np.random.default_rng(3)
    exposure = rng.uniform(1e9, 2e9, geometry.data_shape)
    exposure[:2, :, 20:] = 0.0  # right half: bins 0, 1 outside the safe range
    exposure[:, :, 39] = 0.0  # out of the field
    exposure[1, :5, :20] = 0.0  # a gap: bin 1 missing between valid bins 0 and 2
    counts = rng.poisson(2.0, geometry.data_shape) * (exposure > 0)
    return xr.Dataset({
        "counts": make_map(counts.astype(float), geometry, name="counts"),
        "exposure": make_map(exposure, geometry, name="exposure", units="cm2 s"),
        "background": make_map(np.where(exposure > 0, 1.5, 0.0), geometry, name="background"),
    })


def _source(index: float) -> SkyModel:
    # A Gaussian straddling the two halves, in the map's flux band convention of PowerLaw2.
    return SkyModel(PowerLaw2(amplitude="1e-9 cm-2 s-1", index={"value": index, "frozen": True}, emin="0.1 TeV",
                              emax="10 TeV"), Gaussian(lon_0=0.0, lat_0=0.05, sigma=0.15, frame="galactic"), name="g")


def test_valid_range_and_weighted_exposure(masked_cube):
    images = squash_energy(masked_cube, spectrum={"type": "powerlaw", "index": 2})
    edges = EDGES.to_value("TeV")
    lo, hi = images.safe_energy_min.values[0], images.safe_energy_max.values[0]
    assert images.safe_energy_min.attrs["units"] == "TeV"
    np.testing.assert_allclose(lo[:, :20], edges[0])
    np.testing.assert_allclose(lo[:, 20:39], edges[2])
    np.testing.assert_allclose(hi[:, :39], edges[-1])
    # Per pixel: the index-2 flux fractions of the bins inside its range, normalised there (the
    # gap's bin counts in the normalisation: its flux is in the range, its exposure is zero).
    flux = 1 / edges[:-1] - 1 / edges[1:]
    cube = masked_cube.exposure.values
    for y, x, bins in ((10, 5, [0, 1, 2, 3]), (10, 30, [2, 3]), (2, 5, [0, 1, 2, 3])):
        expected = (flux[bins] * cube[bins, y, x]).sum() / flux[bins].sum()
        assert images.exposure.values[0, y, x] == pytest.approx(expected, rel=1e-12)
    assert (images.exposure.values[0, :, 39] == 0).all()
    np.testing.assert_array_equal(images.counts.values[0], masked_cube.counts.values.sum(axis=0))


def test_image_fit_predicts_the_cube_counts_for_the_weighting_spectrum(masked_cube):
    # For a source whose spectrum is the weighting spectrum, the squashed image predicts exactly
    # the cube's counts summed over energy, pixel by pixel (no PSF: a pure exposure identity).
    cube = MapDataset.from_maps(masked_cube, models=[_source(2.3)])
    expected = cube.npred_source("g").values.sum(axis=0)
    images = squash_energy(masked_cube, spectrum={"type": "powerlaw", "index": 2.3})
    image = MapDataset.from_maps(images, models=[_source(2.3)])
    np.testing.assert_allclose(image.npred_source("g").values[0], expected, rtol=1e-12, atol=1e-12 * expected.max())
    # A different weighting spectrum is biased where the range is not the full band ...
    soft = MapDataset.from_maps(squash_energy(masked_cube, spectrum={"type": "powerlaw", "index": 3.0}),
                                models=[_source(2.3)])
    ratio = soft.npred_source("g").values[0] / np.where(expected > 0, expected, np.inf)
    assert abs(ratio[20:, 20:35] - 1).max() > 1e-3
    # ... while the per-source weighting of MapDataset.to_image is exact for any spectrum.
    np.testing.assert_allclose(cube.to_image().npred_source("g").values[0], expected, rtol=1e-12,
                               atol=1e-12 * expected.max())


def test_squash_is_lazy(masked_cube):
    lazy = masked_cube.chunk({"lat": 16, "lon": 16})
    with raise_if_dask_computes():
        images = squash_energy(lazy)
    xr.testing.assert_allclose(images.compute(), squash_energy(masked_cube), rtol=1e-13)
    assert images.exposure.chunks is not None


def test_full_band_exposure_is_per_unit_flux_in_the_whole_band(masked_cube):
    # What flux maps quote: the exposure per unit flux of the whole 0.1-10 TeV band, i.e. the
    # index-2 weights normalised over all bins (bins without exposure contribute nothing).
    from xgamma.makers.squash import full_band_exposure, spectral_weights

    images = squash_energy(masked_cube)
    weights = spectral_weights(EDGES.to_value("TeV"))
    expected = (weights[:, None, None] * masked_cube.exposure.values).sum(axis=0)
    np.testing.assert_allclose(full_band_exposure(images).values[0], expected, rtol=1e-12)
    plain = images.drop_vars(["safe_energy_min", "safe_energy_max"])  # images made otherwise: unchanged
    xr.testing.assert_identical(full_band_exposure(plain), images.exposure)
