"""Flux, error, upper-limit and sensitivity maps from ring ON-OFF and known-background maps."""

from __future__ import annotations

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from xgamma.background import RingBackground, make_exclusion_mask
from xgamma.estimators import significance_maps
from xgamma.estimators.counts_statistics import (
    cash_upper_limit,
    on_off_errors,
    on_off_sensitivity,
    on_off_upper_limit,
)
from xgamma.estimators.flux_maps import flux_maps, survey_flux_maps
from xgamma.exceptions import EstimatorError
from xgamma.geometry import SkyGeometry
from xgamma.maps import make_map
from xgamma.models import PowerLaw
from xgamma.testing import raise_if_dask_computes

EXPOSURE = 2e10  # cm2 s


def _maps(chunks=None, seed=21):
    geometry = SkyGeometry.create((0, 0), width=[4 * u.deg, 3 * u.deg], binsz=0.05 * u.deg,
                                  energy_edges=[1, 10] * u.TeV)
    rng = np.random.default_rng(seed)
    acceptance = np.full(geometry.data_shape, 3.0)
    expected = acceptance.copy()
    expected[0, 30, 40] += 60.0  # a point-like excess
    counts = rng.poisson(expected).astype(float)
    exposure = np.full(geometry.data_shape, EXPOSURE)
    exposure[0, :, :10] = 0  # an edge of the field without exposure
    wrap = (lambda x: da.from_array(x, chunks=chunks)) if chunks else (lambda x: x)  # noqa: E731
    maps = xr.Dataset({"counts": make_map(wrap(counts), geometry),
                       "background": make_map(wrap(acceptance), geometry),
                       "exposure": make_map(wrap(exposure), geometry, units="cm2 s")})
    exclusion = make_exclusion_mask(geometry, "galactic; circle(0, 0, 0.3)")
    ring = RingBackground(r_in="0.3 deg", width="0.2 deg", exclusion=exclusion).run(maps[["counts", "background"]])
    return maps, ring


def test_ring_flux_maps_follow_the_counts_statistics():
    maps, ring = _maps()
    out = flux_maps(ring, exposure=maps.exposure, correlation_radius="0.1 deg",
                    selection_optional=("errn-errp", "ul", "sensitivity"))
    sig = significance_maps(ring, correlation_radius="0.1 deg")
    for name in ("counts", "off", "alpha", "excess", "significance"):
        np.testing.assert_array_equal(out[name].values, sig[name].values)
    n_on, n_off, alpha = (out[name].values for name in ("counts", "off", "alpha"))
    exposure = out["exposure"].values
    inside = np.isfinite(out["significance"].values) & (exposure > 0)
    exposure = np.where(inside, exposure, 1.0)
    # Flux = excess / exposure (the map band is the flux band); errors from the W statistic.
    np.testing.assert_allclose(out.flux.values[inside], (out.excess.values / exposure)[inside], rtol=1e-12)
    errn, errp = on_off_errors(n_on, n_off, alpha)
    np.testing.assert_allclose(out.flux_errn.values[inside], (errn / exposure)[inside], rtol=1e-12)
    np.testing.assert_allclose(out.flux_errp.values[inside], (errp / exposure)[inside], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(out.flux_ul.values[inside], (on_off_upper_limit(n_on, n_off, alpha) / exposure)[inside],
                               rtol=1e-12)
    np.testing.assert_allclose(out.flux_sensitivity.values[inside],
                               (on_off_sensitivity(n_off, alpha) / exposure)[inside], rtol=1e-12)
    # Full exposure inside: the top-hat mean is the exposure; at the field edge only measured pixels count.
    assert np.allclose(exposure[0, 5:-5, 20:-5], EXPOSURE)
    # The injected source: its flux matches the injected excess (60 counts) within errors.
    at = {name: out[name].values[0, 30, 40] for name in out.data_vars}
    assert abs(at["flux"] - 60 / EXPOSURE) < 2 * at["flux_err"] and at["flux_ul"] > at["flux"] > 0
    assert out.flux.attrs["units"] == "cm-2 s-1" and out.exposure.attrs["units"] == "cm2 s"


def test_known_background_and_energy_band():
    maps, _ = _maps()
    out = flux_maps(maps, correlation_radius="0.1 deg", selection_optional=("ul",))
    n_on, mu = out["counts"].values, out["background"].values
    ok = np.isfinite(out.flux_ul.values)
    assert np.all(out.exposure.values[ok] > 0) and np.all(np.isnan(out.flux.values[0, :, :5]))  # no exposure
    np.testing.assert_allclose(out.flux_ul.values[ok], cash_upper_limit(n_on, mu)[ok] / out.exposure.values[ok],
                               rtol=1e-12)
    # The flux quoted above 1 TeV for an index 2.3 spectrum: (1 TeV)^-1.3 / (1^-1.3 - 10^-1.3) x the band flux.
    above = flux_maps(maps, spectrum=PowerLaw(index=2.3), energy_range=("1 TeV", None), selection_optional=())
    np.testing.assert_allclose(above.flux.values[ok], out.flux.values[ok] / (1 - 10**-1.3), rtol=1e-9)


def test_survey_flux_maps_have_both_radii():
    maps, ring = _maps()
    out = survey_flux_maps(ring, exposure=maps.exposure)
    assert out.correlation_radius.values.tolist() == [0.1, 0.2]
    assert set(out.data_vars) >= {"flux", "flux_err", "flux_errn", "flux_errp", "flux_ul", "flux_sensitivity"}
    small = flux_maps(ring, exposure=maps.exposure, correlation_radius="0.1 deg", correlate_off=False,
                      spectrum=PowerLaw(index=2.3), energy_range=("1 TeV", None))
    xr.testing.assert_allclose(out.flux.sel(correlation_radius=0.1, drop=True), small.flux)
    # The one-pixel excess is inside both top-hats: the same flux, with the larger error of the larger one
    # (more background counts).
    at = out.isel(energy=0, lat=30, lon=40)
    assert abs(at.flux[1] - at.flux[0]) < at.flux_err[1] and at.flux_err[1] > at.flux_err[0]


@pytest.mark.parametrize("chunks", [(1, 7, 9), (1, 60, 2)])
@pytest.mark.parametrize("block_size", [None, 0], ids=["merged", "overlap"], indirect=True)
def test_lazy_and_chunk_invariant(block_size, chunks):
    maps, ring = _maps()
    reference = flux_maps(ring, exposure=maps.exposure, selection_optional=("errn-errp", "ul", "sensitivity"))
    lazy_maps, lazy_ring = _maps(chunks=chunks)
    with raise_if_dask_computes():
        lazy = flux_maps(lazy_ring, exposure=lazy_maps.exposure, selection_optional=("errn-errp", "ul", "sensitivity"))
    assert isinstance(lazy.flux.data, da.Array)
    computed = lazy.compute()
    for name in reference.data_vars:
        # FFT rounding of the correlation sums (1e-12 of the block's sum) only
        scale = np.nanmax(np.abs(reference[name].values))
        np.testing.assert_allclose(computed[name].values, reference[name].values, rtol=1e-9, atol=1e-9 * scale,
                                   equal_nan=True, err_msg=name)


def test_bad_input():
    maps, ring = _maps()
    with pytest.raises(EstimatorError, match="exposure"):
        flux_maps(ring)
    with pytest.raises(EstimatorError, match="units"):
        flux_maps(ring, exposure=maps.exposure.assign_attrs(units="TeV"))
    with pytest.raises(EstimatorError, match="selection_optional"):
        flux_maps(ring, exposure=maps.exposure, selection_optional=("stat_scan",))
    with pytest.raises(EstimatorError, match="energy_range"):
        flux_maps(ring, exposure=maps.exposure, energy_range=("10 TeV", "1 TeV"))
    with pytest.raises(EstimatorError, match="acceptance_off"):
        flux_maps(ring.drop_vars("acceptance_off"), exposure=maps.exposure)


@pytest.mark.gammapy
def test_msh_15_52_flux_maps_match_gammapy(hess_datastore_dir):
    """Flux, error, UL and sensitivity maps of MSH 15-52 (2 H.E.S.S. DR1 runs) against ``ExcessMapEstimator``.

    Both tools get the same per-run counts, background and exposure arrays (Gammapy's makers, one
    1-10 TeV bin, 3 x 3 deg at 0.02 deg), the same ring (r_in 0.5 deg, width 0.3 deg, exclusion
    0.4 deg around the source, offset cut 2 deg) and a 0.1 deg correlation. Gammapy's estimator
    solves pixel by pixel in Python (~20 ms per pixel and quantity), so the comparison runs on the
    0.4 x 0.4 deg around the source (both tools on the same cutout of the stacked ring maps).
    Measured: < 4e-5 relative on every map (the issue asks for 3 %).
    """
    import warnings

    from astropy.coordinates import SkyCoord
    from gammapy.data import DataStore
    from gammapy.estimators import ExcessMapEstimator
    from gammapy.makers import MapDatasetMaker, RingBackgroundMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom
    from gammapy_ring import stack_ring_datasets
    from regions import CircleSkyRegion

    target = SkyCoord(228.529, -59.157, unit="deg")
    width, cut = 3 * u.deg, 0.4 * u.deg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        observations = DataStore.from_dir(hess_datastore_dir).get_observations([20136, 20137])
        axis = MapAxis.from_energy_bounds(1, 10, 1, unit="TeV")
        geom = WcsGeom.create(skydir=target, frame="icrs", binsz=0.02, width=width, proj="CAR", axes=[axis])
        maker = MapDatasetMaker(selection=["counts", "background", "exposure"])
        safe = SafeMaskMaker(methods=["offset-max"], offset_max=2 * u.deg)
        exclusion = ~geom.to_image().region_mask([CircleSkyRegion(target, 0.4 * u.deg)])
        ring = RingBackgroundMaker(r_in="0.5 deg", width="0.3 deg", exclusion_mask=exclusion)
        runs = stack_ring_datasets(observations, geom, maker, safe, ring, true_axis=axis.copy(name="energy_true"))
        stacked, per_run, pointings = runs.stacked, runs.arrays, runs.pointings
        reference = ExcessMapEstimator(correlation_radius="0.1 deg",
                                       selection_optional=["errn-errp", "ul", "sensitivity"]).run(
            stacked.cutout(target, cut))

    geometry = SkyGeometry.create(target, width=width, binsz=0.02 * u.deg, frame="icrs", energy_edges=[1, 10] * u.TeV)
    assert np.allclose(geometry.wcs.wcs.crpix, geom.wcs.wcs.crpix)
    ours_exclusion = make_exclusion_mask(geometry, f"icrs; circle({target.ra.deg}, {target.dec.deg}, 0.4)")
    assert np.array_equal(ours_exclusion.values, exclusion.data)
    runs = xr.Dataset({name: xr.concat([make_map(a, geometry) for a in arrays], "obs_id")
                       for name, arrays in per_run.items() if name != "exposure"})
    ring_maps = RingBackground(r_in="0.5 deg", width="0.3 deg", exclusion=ours_exclusion, offset_max="2 deg").run(
        runs, pointing=pointings)
    exposure = make_map(np.sum(per_run["exposure"], axis=0), geometry, units="cm2 s")
    lat, lon = geometry.cutout_slices(target, cut)
    ours = flux_maps(ring_maps.isel(lat=lat, lon=lon), exposure=exposure.isel(lat=lat, lon=lon),
                     correlation_radius="0.1 deg", selection_optional=("errn-errp", "ul", "sensitivity"))
    assert ours.flux.shape == reference.flux.data.shape
    np.testing.assert_allclose(ours.significance.values, reference.sqrt_ts.data, atol=1e-5)
    for name in ("flux", "flux_err", "flux_errn", "flux_errp", "flux_ul", "flux_sensitivity"):
        expected = getattr(reference, name).quantity.to_value("cm-2 s-1")
        assert np.array_equal(np.isnan(ours[name].values), np.isnan(expected)), name
        print(f"MSH 15-52 {name}: max rel diff {np.nanmax(np.abs(ours[name].values / expected - 1)):.2e}")
        np.testing.assert_allclose(ours[name].values, expected, rtol=1e-3, err_msg=name)  # issue: 3 %
