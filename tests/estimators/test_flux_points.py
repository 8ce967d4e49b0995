"""Flux points and light curves of a fitted source: truncated-Cash norm fits, recovery, files Gammapy reads."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from estimator_maps import simulated_maps
from scipy.optimize import brentq, minimize_scalar

from xgamma.estimators import assign_observation_times, flux_points, light_curve, read_flux_points, write_flux_points
from xgamma.estimators.norm_profile import TruncatedFits
from xgamma.exceptions import EstimatorError
from xgamma.fit import MapDataset, fit
from xgamma.models import BackgroundModel, Point, PowerLaw, SkyModel

EDGES = np.geomspace(0.5, 50, 9)


def _truncated_cash(n, b, m, x):
    mu = np.maximum(b + x * m, 1e-25)
    return 2 * np.sum(mu - np.where(n > 0, n * np.log(mu), 0.0))


def test_truncated_fits_minimise_gammapys_statistic():
    rng = np.random.default_rng(2)
    n_entries, n_fits = 200, 40
    m = np.exp(-0.5 * ((np.arange(n_entries) - 100) / 15.0) ** 2)[:, None] * rng.uniform(0.5, 5, n_fits)
    b = rng.uniform(0.001, 0.5, (n_entries, n_fits))  # faint background: negative fluctuations truncate
    n = rng.poisson(b + rng.uniform(-0.5, 2, n_fits).clip(0) * m).astype(float)
    fits = TruncatedFits(n, b, m)
    best = fits.best()
    ul = fits.confidence(best, n_sigma=2)
    assert best["success"].all()
    for j in range(n_fits):
        pole = -np.min(np.where(n[:, j] > 0, b[:, j] / m[:, j], np.inf))
        direct = minimize_scalar(lambda x: _truncated_cash(n[:, j], b[:, j], m[:, j], x),
                                 bounds=(pole + 1e-9, 50), method="bounded", options={"xatol": 1e-10})
        assert best["norm"][j] == pytest.approx(direct.x, abs=1e-5 * max(1, abs(direct.x)))
        c0 = _truncated_cash(n[:, j], b[:, j], m[:, j], 0.0)
        assert best["ts"][j] == pytest.approx(c0 - direct.fun, abs=1e-6)
        target = direct.fun + 4
        expected = brentq(lambda x: _truncated_cash(n[:, j], b[:, j], m[:, j], x) - target, best["norm"][j], 500)
        assert ul[j] == pytest.approx(expected, rel=1e-7)
    # Some best fits lie below -min(b / m), where the prediction of a pixel without counts is < 0.
    assert np.any(best["norm"] < -np.min(b / m, axis=0))


def _fitted(seed=3, flux=3e-12):
    maps, psf = simulated_maps(sources=[(40, 30, flux)], energy_edges=EDGES, seed=seed)
    position = maps.counts.sky.geometry.pixel_to_skycoord(40, 30)
    source = SkyModel(PowerLaw(index=2.2, amplitude="1e-12 TeV-1 cm-2 s-1"),
                      Point(lon_0=position.l, lat_0=position.b, frame="galactic"), name="src")
    dataset = MapDataset.from_maps(maps, psf=psf, models=[source, BackgroundModel(norm={"value": 1, "frozen": True})])
    assert fit(dataset).success
    return dataset, flux


def test_flux_points_recover_the_injected_spectrum(tmp_path):
    dataset, flux = _fitted()
    points = flux_points(dataset, "src", energy_edges=EDGES[::2] * u.TeV)
    amplitude = flux / (1 / EDGES[0] - 1 / EDGES[-1])  # the injected index-2 power law
    truth = amplitude * points.energy.values**-2
    pull = (points.dnde.values - truth) / points.dnde_err.values
    assert np.all(np.abs(pull) < 3), pull
    assert points.dnde.attrs["units"] == "TeV-1 cm-2 s-1" and points.flux_ul.attrs["units"] == "cm-2 s-1"
    np.testing.assert_array_equal(points.is_ul.values, points.sqrt_ts.values < 2)
    assert np.all(points.dnde_ul > points.dnde) and np.all(points.dnde_errn > 0) and np.all(points.dnde_errp > 0)
    assert points.counts.sum() == dataset.counts.values.sum()  # the bins cover the map's energies
    # Round trip through the GADF table.
    path = write_flux_points(points, tmp_path / "sed.fits")
    back = read_flux_points(path)
    for name in ("norm", "norm_ul", "ts", "dnde", "dnde_errp", "counts"):
        np.testing.assert_allclose(back[name].values, points[name].values, rtol=1e-12)
    with pytest.raises(FileExistsError):
        write_flux_points(points, path)


def test_one_bin_norm_is_the_amplitude_fit():
    # One point over all bins: the fitted norm rescales the model as a fit of its amplitude alone does.
    dataset, _ = _fitted(seed=5)
    points = flux_points(dataset, "src", selection_optional=("ul",), energy_edges=EDGES[[0, -1]] * u.TeV)
    source = dataset.models[0]
    amplitude = source.spectral.parameters[1].value
    for p in source.parameters:
        p.frozen = p.name != "amplitude"
    refit = fit(dataset, scan_positions=False)
    assert refit.values["src.amplitude"] == pytest.approx(amplitude * points.norm.item(), rel=1e-4)
    assert refit.errors["src.amplitude"] == pytest.approx(amplitude * points.norm_err.item(), rel=1e-3)


def test_bad_input():
    dataset, _ = _fitted(seed=6)
    with pytest.raises(EstimatorError, match="source 'nope'"):
        flux_points(dataset, "nope")
    with pytest.raises(EstimatorError, match="selection_optional"):
        flux_points(dataset, "src", selection_optional=("scan",))
    with pytest.raises(EstimatorError, match="same map edge"):
        flux_points(dataset, "src", energy_edges=[1, 1.01] * u.TeV)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four simulated 20-min runs on a steady point source, per-run maps with their times, and the fit."""
    from astropy.coordinates import SkyCoord

    from xgamma.fit import psf_kernel_for_geometry
    from xgamma.geometry import SkyGeometry
    from xgamma.io.datastore import DataStore
    from xgamma.makers import make_observation_maps
    from xgamma.simulate import point_source, simulate_datastore, wobble_pointings

    target = SkyCoord(83.63, 22.01, unit="deg")
    truth = point_source(target, 4e-11 * u.Unit("cm-2 s-1"), index=2.5, name="src")
    store = simulate_datastore(tmp_path_factory.mktemp("lc") / "store", observations=wobble_pointings(target, n=4),
                               sources=[truth], livetime=20 * u.min, energy_min=0.3 * u.TeV, seed=4)
    observations = DataStore(store).observations()
    geometry = SkyGeometry.create(target, width=1.6 * u.deg, binsz=0.02 * u.deg, frame="icrs",
                                  energy_edges=np.geomspace(0.5, 20, 5) * u.TeV)
    maps = assign_observation_times(make_observation_maps(observations, geometry, offset_max=2.5 * u.deg).compute(),
                                    observations)
    psf = psf_kernel_for_geometry(observations, geometry, target)
    model = SkyModel(PowerLaw(index=2.3, amplitude="3e-11 TeV-1 cm-2 s-1"),
                     Point(lon_0=target.ra, lat_0=target.dec, frame="icrs"), name="src")
    models = [model, BackgroundModel(norm={"value": 1, "frozen": True})]
    stacked = MapDataset.from_maps(maps.sum("obs_id"), psf=psf, models=models)
    assert fit(stacked).success
    return {"maps": maps, "psf": psf, "models": models, "observations": observations}


def test_light_curve_of_a_steady_source(runs, tmp_path):
    curve = light_curve(runs["maps"], runs["models"], "src", psf=runs["psf"])
    assert curve.sizes == {"time": 4, "energy": 1} and curve.n_runs.values.tolist() == [1, 1, 1, 1]
    starts = [o.tstart.tt.mjd for o in runs["observations"]]
    np.testing.assert_allclose(curve.time_min.values, starts)
    norm, err = curve.norm.values[:, 0], curve.norm_err.values[:, 0]
    assert np.all(np.abs(norm - 1) < 3 * err) and np.all(curve.sqrt_ts.values > 5)  # steady: the fitted flux
    # Two bins of two runs: each is the joint fit of its runs (the sum of their statistics).
    t = curve.time_min.values
    stop = curve.time_max.values
    intervals = [(f"{t[0]}", f"{stop[1]}"), (f"{t[2]}", f"{stop[3]}")]
    from astropy.time import Time

    pairs = light_curve(runs["maps"], runs["models"], "src", psf=runs["psf"], energy_edges=[0.5, 3.15, 20] * u.TeV,
                        time_intervals=[(Time(a, format="mjd", scale="tt"), Time(b, format="mjd", scale="tt"))
                                        for a, b in intervals])
    assert pairs.sizes == {"time": 2, "energy": 2} and pairs.n_runs.values.tolist() == [2, 2]
    single = light_curve(runs["maps"].isel(obs_id=[0, 1]), runs["models"], "src", psf=runs["psf"],
                         energy_edges=[0.5, 3.15, 20] * u.TeV,
                         time_intervals=[(Time(t[0], format="mjd", scale="tt"), Time(stop[1], format="mjd", scale="tt"))])
    np.testing.assert_allclose(pairs.norm.values[0], single.norm.values[0], rtol=1e-10)
    path = write_flux_points(pairs, tmp_path / "lc.fits")
    back = read_flux_points(path)
    np.testing.assert_allclose(back.norm.values, pairs.norm.values, rtol=1e-12)
    np.testing.assert_allclose(back.time_min.values, pairs.time_min.values)
    with pytest.raises(EstimatorError, match="no run"):
        light_curve(runs["maps"], runs["models"], "src", psf=runs["psf"],
                    time_intervals=[(Time(t[0] - 10, format="mjd"), Time(t[0] - 9, format="mjd"))])


@pytest.mark.gammapy
def test_gammapy_reads_the_tables(runs, tmp_path):
    from gammapy.estimators import FluxPoints

    dataset, _ = _fitted(seed=7)
    points = flux_points(dataset, "src", energy_edges=EDGES[::2] * u.TeV)
    sed = FluxPoints.read(write_flux_points(points, tmp_path / "sed.fits"))
    assert sed.sed_type_init == "likelihood" and sed.n_sigma_ul == 2
    np.testing.assert_allclose(sed.dnde.quantity.to_value("TeV-1 cm-2 s-1").ravel(), points.dnde.values, rtol=1e-6)
    np.testing.assert_allclose(sed.flux_ul.quantity.to_value("cm-2 s-1").ravel(), points.flux_ul.values, rtol=1e-6)
    curve = light_curve(runs["maps"], runs["models"], "src", psf=runs["psf"], energy_edges=[0.5, 3.15, 20] * u.TeV)
    lc = FluxPoints.read(write_flux_points(curve, tmp_path / "lc.fits"), format="lightcurve")
    assert lc.geom.axes.names[-2:] == ["energy", "time"]
    np.testing.assert_allclose(lc.norm.data[..., 0, 0], curve.norm.values, rtol=1e-6)  # (time, energy)
    np.testing.assert_allclose(lc.geom.axes["time"].time_min.tt.mjd, curve.time_min.values, atol=1e-9)


@pytest.mark.gammapy
@pytest.mark.slow  # ~20 s: Gammapy's cube with a fine PSF axis, its fit and five MINUIT flux points
def test_crab_flux_points_match_gammapy(hess_datastore_dir):
    """Crab flux points from the 4 H.E.S.S. DR1 runs against Gammapy 2.1's ``FluxPointsEstimator``.

    Each tool makes its own 2 x 2 deg cube (0.02 deg, 1-50 TeV in 10 bins, safe energies from the
    effective area, offset cut 2.5 deg, no energy dispersion: Gammapy's diagonal default),
    fits a point source with a power law (background norm frozen) and estimates 5 points. Gammapy's
    PSF map has a fine radius axis (0.002 deg; its default 0.01 deg underestimates the PSF peak).

    Measured: the four significant points agree to 2.3 % (< 0.15 sigma), their ULs to 2 %; the
    faint last point (TS ~ 2, a negative norm in both tools) to 0.17 sigma, its UL to 18 % relative,
    i.e. 0.02 sigma: with a negative best fit the UL lies near 0 and follows small differences of
    the PSF kernel and of the fitted model. The assertions: every point within 5 % or 0.2 sigma
    (the issue's), ULs within 5 % or 0.05 sigma.
    """
    import warnings

    from astropy.coordinates import SkyCoord
    from gammapy.data import DataStore as GammapyDataStore
    from gammapy.datasets import MapDataset as GammapyMapDataset
    from gammapy.estimators import FluxPointsEstimator
    from gammapy.makers import MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom
    from gammapy.modeling import Fit
    from gammapy.modeling.models import FoVBackgroundModel, Models, PointSpatialModel, PowerLawSpectralModel
    from gammapy.modeling.models import SkyModel as GammapySkyModel

    from xgamma.fit import psf_kernel_for_geometry
    from xgamma.geometry import SkyGeometry
    from xgamma.io.datastore import DataStore
    from xgamma.makers import make_maps

    obs_ids = [23523, 23526, 23559, 23592]
    crab = SkyCoord(83.633, 22.014, unit="deg")
    edges = np.geomspace(1, 50, 11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axis = MapAxis.from_energy_edges(edges * u.TeV)
        rad = MapAxis.from_bounds(0, 0.66, nbin=330, node_type="edges", name="rad", unit="deg")
        geom = WcsGeom.create(skydir=crab, binsz=0.02, width=2, frame="icrs", proj="CAR", axes=[axis])
        stacked = GammapyMapDataset.create(geom, energy_axis_true=axis.copy(name="energy_true"), rad_axis=rad,
                                           name="stacked")
        maker = MapDatasetMaker(selection=["counts", "exposure", "background", "psf"])
        safe = SafeMaskMaker(methods=["aeff-default", "offset-max"], offset_max=2.5 * u.deg)
        for obs in GammapyDataStore.from_dir(hess_datastore_dir).get_observations(obs_ids):
            stacked.stack(safe.run(maker.run(stacked.copy(name="obs"), obs), obs))
        background = FoVBackgroundModel(dataset_name="stacked")
        background.spectral_model.norm.frozen = True
        stacked.models = Models([GammapySkyModel(
            spatial_model=PointSpatialModel(lon_0="83.633 deg", lat_0="22.014 deg", frame="icrs"),
            spectral_model=PowerLawSpectralModel(index=2.6, amplitude="4e-11 cm-2 s-1 TeV-1"), name="crab"),
            background])
        assert Fit().run(stacked).success
        reference = FluxPointsEstimator(energy_edges=edges[::2] * u.TeV, source="crab",
                                        selection_optional=["errn-errp", "ul"]).run(stacked)
    reference = reference.to_table(sed_type="dnde")

    observations = DataStore(hess_datastore_dir).observations(obs_ids)
    geometry = SkyGeometry.create(crab, width=2 * u.deg, binsz=0.02 * u.deg, frame="icrs", energy_edges=edges * u.TeV)
    cube = make_maps(observations, geometry, offset_max=2.5 * u.deg, safe_energy="aeff-default").compute()
    source = SkyModel(PowerLaw(index=2.6, amplitude="4e-11 cm-2 s-1 TeV-1"),
                      Point(lon_0="83.633 deg", lat_0="22.014 deg", frame="icrs"), name="crab")
    dataset = MapDataset.from_maps(cube, psf=psf_kernel_for_geometry(observations, geometry, crab),
                                   models=[source, BackgroundModel(norm={"value": 1, "frozen": True})])
    assert fit(dataset).success
    ours = flux_points(dataset, "crab", energy_edges=edges[::2] * u.TeV)

    def column(name):
        return np.asarray(reference[name].quantity.to_value("TeV-1 cm-2 s-1"))

    np.testing.assert_array_equal(ours.counts.values, np.asarray(reference["counts"]).ravel())
    sigma = column("dnde_err")
    print("Crab flux points vs Gammapy: dnde rel " + " ".join(f"{v:+.4f}" for v in ours.dnde.values / column("dnde") - 1)
          + "; in sigma " + " ".join(f"{v:+.3f}" for v in (ours.dnde.values - column("dnde")) / sigma)
          + "; UL rel " + " ".join(f"{v:+.4f}" for v in ours.dnde_ul.values / column("dnde_ul") - 1)
          + "; sqrt(TS) " + " ".join(f"{v:.1f}" for v in ours.sqrt_ts.values))
    close = np.abs(ours.dnde.values / column("dnde") - 1) < 0.05
    assert np.all(close | (np.abs(ours.dnde.values - column("dnde")) < 0.2 * sigma)), ours.dnde.values
    assert np.sum(ours.sqrt_ts.values > 4) >= 4  # most points are significant, and those agree to 5 %
    close_ul = np.abs(ours.dnde_ul.values / column("dnde_ul") - 1) < 0.05
    assert np.all(close_ul | (np.abs(ours.dnde_ul.values - column("dnde_ul")) < 0.05 * column("dnde_errp")))
    np.testing.assert_array_equal(ours.is_ul.values, np.asarray(reference["is_ul"]))
