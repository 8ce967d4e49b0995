"""TS maps: closed forms, injected sources, cubes, fitted models as background, laziness and chunking."""

from __future__ import annotations

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from xgamma.estimators import cash_significance
from xgamma.estimators.norm_fit import fit_norm_reference
from xgamma.estimators.ts_kernel import ts_kernel
from xgamma.estimators.ts_map import TSMapEstimator, ts_map
from xgamma.exceptions import EstimatorError
from xgamma.fit import MapDataset
from xgamma.models import BackgroundModel, Point, PowerLaw, SkyModel
from xgamma.testing import raise_if_dask_computes

from estimator_maps import BINSZ, EXPOSURE, simulated_maps


def test_one_pixel_kernel_gives_the_cash_significance():
    # A perfect PSF: each pixel is its own fit, with TS = 2 (n ln(n / b) - (n - b)) and flux (n - b) / exposure.
    maps, _ = simulated_maps(sources=[(40, 30, 1.5e-12)], seed=2)
    out = ts_map(maps, psf=None, selection_optional=())
    n, b = maps.counts.values, maps.background.values
    positive = n > 0
    np.testing.assert_allclose(out.sqrt_ts.values[positive], cash_significance(n, b)[positive], rtol=1e-7)
    np.testing.assert_allclose(out.flux.values[positive], ((n - b) / (EXPOSURE * 1e4))[positive], rtol=1e-6)
    assert out.flux.attrs["units"] == "cm-2 s-1" and out.sqrt_ts.dims == ("energy", "lat", "lon")
    assert out.energy_min.item() == 1 and out.energy_max.item() == 10


def test_injected_point_source_is_recovered():
    flux = 2e-12
    maps, psf = simulated_maps(sources=[(40, 30, flux)], seed=5)
    out = ts_map(maps, psf=psf, selection_optional=("ul", "errn-errp"))
    peak = np.unravel_index(int(np.nanargmax(out.sqrt_ts.values[0])), out.ts.shape[1:])
    assert abs(peak[0] - 30) <= 1 and abs(peak[1] - 40) <= 1  # the true position, to the noise
    at = {name: float(out[name].values[0, 30, 40]) for name in out.data_vars}
    assert at["sqrt_ts"] > 10 and abs(at["flux"] - flux) < 3 * at["flux_err"]
    assert at["flux"] - at["flux_errn"] < at["flux"] < at["flux"] + at["flux_errp"] < at["flux_ul"]
    # Far from the source the map is background: |sqrt(TS)| mostly below 3, fluxes scatter around 0.
    far = np.abs(out.sqrt_ts.values[0, :, :20])
    assert np.nanmean(far < 3) > 0.99 and np.nanmax(out.niter.values) < 10 and bool(out.success.all())


def test_cube_fit_is_joint_over_energy_bins():
    # Three bins with a PSF narrowing with energy: each pixel's fit uses every bin with its own kernel.
    edges = (0.5, 1, 3, 10)
    maps, psf = simulated_maps(sources=[(30, 25, 2e-12)], shape=(50, 60), energy_edges=edges,
                               psf_sigma=[0.08, 0.05, 0.03], seed=7)
    out = ts_map(maps, psf=psf, selection_optional=())
    kernel = ts_kernel(psf)
    r = kernel.shape[-1] // 2
    pad = [(0, 0), (r, r), (r, r)]
    n = np.pad(maps.counts.values, pad)
    b = np.pad(maps.background.values, pad)
    e_ref = (1 / np.array(edges[:-1]) - 1 / np.array(edges[1:])) * 1e-12  # PowerLaw(index 2) bin fluxes, cm-2 s-1
    m = np.pad(maps.exposure.values * 1e4 * e_ref[:, None, None], pad)
    for y, x in [(25, 30), (25, 33), (10, 50), (0, 0)]:
        window = (slice(None), slice(y, y + 2 * r + 1), slice(x, x + 2 * r + 1))
        ref = fit_norm_reference(n[window].reshape(-1, 1), b[window].reshape(-1, 1),
                                 (m[window] * kernel).reshape(-1, 1))
        assert out.ts.values[0, y, x] == pytest.approx(ref["ts"][0], rel=1e-6, abs=1e-6)
        assert out.norm.values[0, y, x] == pytest.approx(ref["norm"][0], abs=2e-3 * ref["norm_err"][0])
    # Energy groups: each is the fit of its bins alone.
    groups = ts_map(maps, psf=psf, energy_edges=[0.5, 1, 10] * u.TeV, selection_optional=())
    alone = ts_map(maps.isel(energy=slice(1, 3)), psf=psf.data[1:], selection_optional=())
    assert groups.sizes["energy"] == 2
    np.testing.assert_allclose(groups.ts.values[1], alone.ts.values[0], rtol=1e-9, atol=1e-9)
    assert groups.energy_max.values.tolist() == [1, 10]


def test_fitted_models_are_the_background():
    flux = 1.5e-12
    maps, psf = simulated_maps(sources=[(40, 30, flux)], seed=11)
    position = maps.counts.sky.geometry.pixel_to_skycoord(40, 30)
    source = SkyModel(PowerLaw(index={"value": 2, "frozen": True}, amplitude=f"{flux} cm-2 s-1 TeV-1"),
                      Point(lon_0=position.l, lat_0=position.b, frame="galactic"), name="src")
    # PowerLaw amplitude x 1 TeV x (1/1 - 1/10) / 1 = the integral flux 1-10 TeV: rescale to the injected one.
    source.spectral.parameters[1].value = flux / 0.9
    empty = MapDataset.from_maps(maps, psf=psf, models=[BackgroundModel()])
    full = MapDataset.from_maps(maps, psf=psf, models=[BackgroundModel(), source])
    without = ts_map(empty, selection_optional=())
    with_source = ts_map(full, selection_optional=())
    assert without.ts.values[0, 30, 40] > 100
    assert with_source.ts.values[0, 30, 40] < 16  # the model explains the source: what is left is noise
    far = (slice(None), slice(0, 10), slice(0, 10))
    np.testing.assert_allclose(with_source.ts.values[far], without.ts.values[far], rtol=1e-9)


def test_gaussian_kernel_prefers_an_extended_source():
    from scipy.signal import fftconvolve

    maps, psf = simulated_maps(seed=3)
    sigma_pix = 0.1 / BINSZ
    y, x = np.mgrid[-20:21, -20:21]
    blob = np.exp(-0.5 * (x**2 + y**2) / sigma_pix**2)
    blob *= 5e-12 * EXPOSURE * 1e4 / blob.sum()
    extra = np.zeros(maps.counts.shape[1:])
    extra[30 - 20:30 + 21, 40 - 20:40 + 21] = fftconvolve(blob, psf.data[0], mode="same")
    counts = np.random.default_rng(8).poisson(maps.background.values + extra[None]).astype(float)
    maps = maps.assign(counts=maps.counts.copy(data=counts))
    point = ts_map(maps, psf=psf, selection_optional=())
    gauss = ts_map(maps, psf=psf, morphology="gaussian", sigma="0.1 deg", selection_optional=())
    assert gauss.ts.values[0, 30, 40] > 1.3 * point.ts.values[0, 30, 40]
    assert gauss.flux.values[0, 30, 40] == pytest.approx(5e-12, rel=0.15)
    assert gauss.attrs["morphology"] == "gaussian"


@pytest.mark.parametrize("chunks", [{"lat": 7, "lon": 9}, {"lat": 60, "lon": 3}])
@pytest.mark.parametrize("block_size", [None, 0], ids=["merged", "overlap"], indirect=True)
def test_lazy_and_chunk_invariant(block_size, chunks):
    # Chunks of 3-9 pixels, smaller than the kernel radius (10 pixels).
    maps, psf = simulated_maps(sources=[(40, 30, 1e-12)], seed=4)
    reference = ts_map(maps, psf=psf, selection_optional=("ul",))
    with raise_if_dask_computes():
        lazy = ts_map(maps.chunk(chunks), psf=psf, selection_optional=("ul",))
        estimator = TSMapEstimator(selection_optional=("ul",)).run(maps.chunk(chunks), psf=psf)
        accessor = maps.chunk(chunks).sky.ts_map(psf=psf, selection_optional=())
    assert isinstance(lazy.ts.data, da.Array) and isinstance(estimator.flux.data, da.Array)
    computed = lazy.compute()
    for name in ("ts", "sqrt_ts", "niter"):
        np.testing.assert_allclose(computed[name], reference[name], rtol=1e-9, atol=1e-9)
    # Only the FFT of the template sums depends on the blocks (1e-16): fits stop within 1e-3 sigma.
    for name in ("flux", "flux_ul"):
        np.testing.assert_allclose(computed[name], reference[name], rtol=0, atol=1e-3 * float(reference.flux_err.max()))
    xr.testing.assert_allclose(estimator.compute().ts, computed.ts)
    xr.testing.assert_allclose(accessor.compute().ts, computed.ts)


def test_bad_input():
    maps, psf = simulated_maps()
    with pytest.raises(EstimatorError, match="background"):
        ts_map(maps.drop_vars("background"), psf=psf)
    with pytest.raises(EstimatorError, match="selection_optional"):
        ts_map(maps, psf=psf, selection_optional=("sensitivity",))
    with pytest.raises(EstimatorError, match="energy_edges"):
        ts_map(maps, psf=psf, energy_edges=[1, 5] * u.TeV)
    with pytest.raises(EstimatorError, match="exposure: units"):
        ts_map(maps.assign(exposure=maps.exposure.assign_attrs(units="TeV")), psf=psf)
    with pytest.raises(EstimatorError, match="sigma"):
        ts_map(maps, psf=psf, morphology="gaussian")
    with pytest.raises(EstimatorError, match="morphology"):
        ts_map(maps, psf=psf, morphology="disk")
    with pytest.raises(EstimatorError, match="dims"):
        ts_map(maps.transpose("lat", "lon", "energy"), psf=psf)


def test_ts_follows_chi2_in_empty_fields():
    """Wilks: without a source, TS of a free norm (both signs) follows chi2 with one degree of freedom.

    A 1000 x 1000 empty field (Poisson background of 2 counts per pixel) and a 7 x 7 Gaussian kernel
    (a disk of radius 3 pixels): pixels 7 apart have disjoint footprints, so the TS values on that
    grid are 20164 independent trials. Expected above TS = 9, 4, 1: 0.27 %, 4.55 %, 31.7 %.
    """
    from scipy.stats import chi2

    from xgamma.geometry import SkyGeometry
    from xgamma.maps import make_map

    n = 1000
    geometry = SkyGeometry.create((0, 0), width=n * BINSZ * u.deg, binsz=BINSZ * u.deg, frame="galactic",
                                  energy_edges=[1, 10] * u.TeV)
    y, x = np.mgrid[-3:4, -3:4]
    kernel = np.exp(-0.5 * (x**2 + y**2)) * (x**2 + y**2 <= 9)
    background = np.full(geometry.data_shape, 2.0)
    maps = xr.Dataset({"counts": make_map(np.random.default_rng(1).poisson(background).astype(float), geometry),
                       "background": make_map(background, geometry),
                       "exposure": make_map(np.full(geometry.data_shape, EXPOSURE), geometry, units="m2 s")})
    ts = ts_map(maps, kernel=kernel, selection_optional=()).ts.values[0, 3:-3:7, 3:-3:7].ravel()
    assert ts.size > 2e4
    for level, tolerance in ((9, 0.3), (4, 0.1), (1, 0.05)):
        expected = chi2.sf(level, 1) * ts.size
        print(f"TS > {level}: {np.sum(ts > level)} of {ts.size} trials, chi2(1) expects {expected:.1f}")
        assert abs(np.sum(ts > level) - expected) < tolerance * expected, (level, np.sum(ts > level), expected)
