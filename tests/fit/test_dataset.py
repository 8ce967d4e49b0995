"""MapDataset: npred against analytic expectations, statistic, residuals, laziness, errors."""

from __future__ import annotations

import math
import pickle

import dask.array as da
import numpy as np
import pytest

from xgamma.exceptions import FitError, GeometryError, UnitError
from xgamma.estimators import cash_significance
from xgamma.fit import MapDataset, cash
from xgamma.maps import make_map
from xgamma.models import BackgroundModel, Gaussian, Point, PowerLaw, PowerLaw2, SkyModel
from xgamma.testing import raise_if_dask_computes


def _point(lon=0.013, lat=-0.007, amplitude="5e-8 cm-2 s-1", emin="1 TeV", emax="10 TeV"):
    return SkyModel(PowerLaw2(amplitude=amplitude, index={"value": 2, "frozen": True}, emin=emin, emax=emax),
                    Point(lon_0=lon, lat_0=lat, frame="galactic"), name="src")


def test_point_source_npred_sums_to_flux_times_exposure(flat_image):
    m = _point()
    for psf, method in ((None, "exact"), (flat_image["psf"], "bilinear"), (flat_image["psf"], "exact")):
        ds = MapDataset(flat_image["counts"], flat_image["exposure"], flat_image["background"], psf=psf, models=[m],
                        point_method=method)
        npred = ds.npred_source("src")
        # 5e-8 cm-2 s-1 x 1e6 m2 s = 5e-8 x 1e10 = 500 counts, of which a kernel cut at 3 sigma
        # holds its enclosed fraction (98 %); source far from the edges: exact to float rounding.
        enclosed = 1.0 if psf is None else psf.enclosed[0]
        assert npred.values.sum() == pytest.approx(500.0 * enclosed, rel=1e-10)
        assert npred.attrs["units"] == "" and npred.dims == ("energy", "lat", "lon")
    # With the PSF the counts are centred on the source.
    x, y = ds.arrays.grid.to_pixel(0.013, -0.007)
    yy, xx = np.indices(npred.shape[1:])
    total = npred.values.sum()
    assert (npred.values[0] * xx).sum() / total == pytest.approx(x, abs=1e-3)
    assert (npred.values[0] * yy).sum() / total == pytest.approx(y, abs=1e-3)


def test_cube_npred_per_bin_is_bin_integral_flux_times_exposure(flat_cube):
    spectral = PowerLaw(index=2.5, amplitude="1e-11 TeV-1 cm-2 s-1")
    gauss = SkyModel(spectral, Gaussian(lon_0=0.05, lat_0=0.0, sigma=0.05, frame="galactic"), name="g")
    ds = MapDataset(flat_cube["counts"], flat_cube["exposure"], flat_cube["background"], models=[gauss])
    per_bin = ds.npred_source("g").values.sum(axis=(1, 2))
    edges = flat_cube["geometry"].energy_edges
    expected = spectral.integral(edges[:-1], edges[1:]).to_value("cm-2 s-1") * 5e9
    # Gaussian of 2.5 pixels fully inside the map: its pixel fractions sum to 1 to < 1e-3.
    np.testing.assert_allclose(per_bin, expected, rtol=1e-3)


def test_background_model_scales_with_norm_and_tilt(flat_cube):
    bkg = BackgroundModel(norm=1.5, tilt=0.3)
    ds = MapDataset(flat_cube["counts"], flat_cube["exposure"], flat_cube["background"], models=[bkg])
    e = flat_cube["geometry"].energy_centers.to_value("TeV")
    np.testing.assert_allclose(ds.npred_background().values[:, 0, 0], 1.5 * e**-0.3, rtol=1e-12)
    np.testing.assert_allclose(ds.npred().values, ds.npred_background().values)


def test_likelihood_matches_stat_sum_and_is_picklable(flat_image):
    rng = np.random.default_rng(1)
    counts = make_map(rng.poisson(3.0, flat_image["counts"].shape).astype(float), flat_image["geometry"],
                      name="counts")
    mask = make_map(np.ones(counts.shape, bool), flat_image["geometry"], name="mask_fit")
    mask[:, :5, :] = False
    for bkg in (BackgroundModel(norm={"value": 1.1, "frozen": True}), BackgroundModel(norm=1.1)):
        ds = MapDataset(counts, flat_image["exposure"], flat_image["background"], psf=flat_image["psf"],
                        models=[_point(), bkg], mask_fit=mask)
        direct = ds.stat_sum()
        expected = float(cash(ds.arrays.counts, ds.npred().values)[ds.arrays.mask].sum())
        assert direct == pytest.approx(expected, rel=1e-12)
        lik = ds.likelihood()
        x = [p.value for _, p in zip(lik.free_labels, [q for m in lik.models for q in m.parameters if not q.frozen])]
        # The cutout shortcut (fixed background) and the full sum agree to float rounding.
        assert lik(np.array(x)) == pytest.approx(direct, rel=1e-12)
        assert pickle.loads(pickle.dumps(lik))(np.array(x)) == pytest.approx(direct, rel=1e-12)


def test_residual_maps(flat_image):
    rng = np.random.default_rng(2)
    ds = MapDataset(flat_image["counts"], flat_image["exposure"], flat_image["background"], psf=flat_image["psf"],
                    models=[_point()])
    mu = ds.npred().values
    counts = make_map(rng.poisson(mu).astype(float), flat_image["geometry"], name="counts")
    ds = MapDataset(counts, flat_image["exposure"], flat_image["background"], psf=flat_image["psf"],
                    models=[_point()])
    res = ds.residual_maps()
    np.testing.assert_allclose(res["residual"].values, counts.values - mu)
    sig = res["residual_significance"].values
    assert np.all(np.sign(sig) == np.sign(counts.values - mu))
    # Pure Poisson noise of the true model. At ~2 counts per pixel the signed significance is
    # biased low; its exact expectation over the Poisson distribution (background pixels,
    # mu = 2) is the reference: the sample mean of 3600 pixels agrees within 4 standard errors.
    n = np.arange(40.0)
    logp = n * np.log(2.0) - 2.0 - np.array([math.lgamma(k + 1) for k in n])
    z = cash_significance(n, np.full_like(n, 2.0))
    mean = float((np.exp(logp) * z).sum())
    std = float(np.sqrt((np.exp(logp) * (z - mean) ** 2).sum()))
    far = mu[0] < 2.0 + 1e-3  # pixels where the source adds < 1e-3 counts
    assert sig[0][far].mean() == pytest.approx(mean, abs=4 * std / np.sqrt(far.sum()))
    assert cash_significance(np.array([4.0]), np.array([4.0]))[0] == 0.0
    # Where nothing is predicted the significance is undefined: NaN, in the residual maps too.
    assert np.isnan(cash_significance(np.array([3.0]), np.array([0.0]))[0])


def test_dataset_from_dask_maps_builds_lazily(flat_image):
    lazy = {k: flat_image[k].copy(data=da.from_array(flat_image[k].values, chunks=(1, 30, 30)))
            for k in ("counts", "exposure", "background")}
    with raise_if_dask_computes():
        ds = MapDataset(lazy["counts"], lazy["exposure"], lazy["background"], psf=flat_image["psf"],
                        models=[_point()])
    assert ds.npred().values.sum() == pytest.approx(2.0 * 3600 + 500.0 * flat_image["psf"].enclosed[0], rel=1e-10)


def test_nan_exposure_inside_fit_mask_is_a_fit_error(flat_image):
    exposure = flat_image["exposure"].copy(deep=True)
    exposure[0, 10, 10] = np.nan
    ds = MapDataset(flat_image["counts"], exposure, flat_image["background"], models=[_point()])
    with pytest.raises(FitError, match=r"exposure map has 1 NaN/inf pixels inside the fit mask"):
        ds.stat_sum()
    mask = make_map(np.ones(exposure.shape, bool), flat_image["geometry"], name="mask_safe")
    mask[0, 10, 10] = False
    ok = MapDataset(flat_image["counts"], exposure, flat_image["background"], mask_safe=mask, models=[_point()])
    assert np.isfinite(ok.stat_sum())  # masked NaN pixels are harmless


def test_bad_inputs(flat_image):
    with pytest.raises(UnitError, match=r"exposure: units 'TeV'"):
        MapDataset(flat_image["counts"], flat_image["exposure"].assign_attrs(units="TeV"))
    with pytest.raises(GeometryError, match="no 'energy' dim"):
        MapDataset(flat_image["counts"][0], flat_image["exposure"])
    with pytest.raises(FitError, match="point_method 'nearest'"):
        MapDataset(flat_image["counts"], flat_image["exposure"], point_method="nearest")
    with pytest.raises(FitError, match="no sky model 'nope'"):
        MapDataset(flat_image["counts"], flat_image["exposure"], models=[_point()]).npred_source("nope")
