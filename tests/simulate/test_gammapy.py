"""Cross-checks of simulated data stores against Gammapy 2.1 (the reference implementation)."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from scipy import integrate

from xgamma.simulate import AnalyticIRF, simulate_datastore

pytestmark = pytest.mark.gammapy

IRF = AnalyticIRF()


def _centres(edges, log=False):
    return np.sqrt(edges[1:] * edges[:-1]) if log else 0.5 * (edges[1:] + edges[:-1])


def test_gammapy_reads_every_hdu_and_matches_formulas(demo_store):
    from gammapy.data import DataStore

    store = DataStore.from_dir(demo_store)
    assert len(store.obs_table) == 4
    e = _centres(IRF.energy_edges(), log=True)
    t = _centres(IRF.offset_edges())
    ee, tt = np.meshgrid(e, t, indexing="ij")
    for obs in store.get_observations():
        assert len(obs.events.table) > 0
        livetime = obs.observation_live_time_duration.to_value("s")
        assert obs.gti.time_sum.to_value("s") == pytest.approx(livetime / 0.98)
        assert obs.aeff.meta["LO_THRES"] == pytest.approx(IRF.lo_threshold_tev)
        # Nodes of the tables: Gammapy returns the analytic value up to float32 rounding.
        np.testing.assert_allclose(obs.aeff.evaluate(energy_true=ee, offset=tt).to_value("m2"),
                                   IRF.aeff(ee, tt).to_value("m2"), rtol=2e-6)
        rad = np.array([0.0, 0.05, 0.1, 0.3]) * u.deg
        psf = obs.psf.evaluate(energy_true=ee[..., None], offset=tt[..., None], rad=rad)
        np.testing.assert_allclose(psf.to_value("sr-1"),
                                   IRF.psf(ee[..., None], tt[..., None], rad).to_value("sr-1"),
                                   rtol=2e-6, atol=1e-3)
        m_edges = IRF.migra_edges()
        migra = _centres(m_edges)
        edisp = obs.edisp.evaluate(energy_true=1.0 * u.TeV, offset=1.5 * u.deg, migra=migra)
        # Gammapy interpolates the float32 table in float32 and at float32 bin centres, where
        # the narrow Gaussian is steep (d ln f / d migra ~ 300): 1e-4 relative.
        np.testing.assert_allclose(edisp.to_value(""), IRF.edisp_migration_density(m_edges[:-1], m_edges[1:]),
                                   rtol=1e-4, atol=1e-9)
        eb = _centres(IRF.energy_edges(IRF.bkg_bins_per_decade), log=True)
        fov = _centres(IRF.fov_edges())
        e3, y3, x3 = np.meshgrid(eb, fov[::7], fov[::5], indexing="ij")
        bkg = obs.bkg.evaluate(energy=e3, fov_lon=x3, fov_lat=y3)
        np.testing.assert_allclose(bkg.to_value("MeV-1 s-1 sr-1"),
                                   IRF.bkg(e3, x3, y3).to_value("MeV-1 s-1 sr-1"), rtol=2e-6)


def test_gammapy_background_map_matches_analytic_expectation(tmp_path):
    """Gammapy's background prediction integrates to the simulator's analytic expectation."""
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker
    from gammapy.maps import MapAxis, WcsGeom

    pointing = SkyCoord(10, -30, unit="deg")
    path = simulate_datastore(tmp_path / "bkg", observations=[pointing], livetime=1 * u.h, seed=2)
    obs = DataStore.from_dir(path).obs(1)
    axis = MapAxis.from_energy_bounds(0.1, 100, 3, unit="TeV")
    geom = WcsGeom.create(skydir=pointing, width=7, binsz=0.05, axes=[axis], proj="TAN")
    dataset = MapDatasetMaker(selection=["counts", "background"]).run(MapDataset.create(geom), obs)
    sep = geom.separation(pointing).to_value("deg")
    ontime = obs.observation_time_duration.to_value("s")
    for t1, t2 in [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]:
        inside = (sep >= t1) & (sep < t2)
        omega = integrate.quad(lambda t: IRF.bkg_offset_profile(t * u.deg) * np.sin(np.deg2rad(t)),
                               t1, t2)[0] * 2 * np.pi * np.pi / 180
        for k, (e1, e2) in enumerate(zip(axis.edges[:-1], axis.edges[1:])):
            expected = ontime * IRF.bkg_energy_integral(e1, e2).to_value("s-1 sr-1") * omega
            predicted = dataset.background.data[k][inside].sum()
            # Deterministic: pixelisation of the annuli (0.05 deg pixels on 1 deg annuli)
            # and the log interpolation of the tabulated Gaussian profile (< 5e-4) stay < 1 %.
            assert predicted == pytest.approx(expected, rel=0.01), (t1, k)
    counts = dataset.counts.data.sum()
    background = dataset.background.data.sum()
    assert abs(counts - background) < 4 * np.sqrt(background)


def test_gammapy_point_source_fit_recovers_truth(point_store, point_truth):
    """A Gammapy 3D fit (index frozen) of the simulated point source finds the injected values."""
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom
    from gammapy.modeling import Fit
    from gammapy.modeling.models import (
        FoVBackgroundModel,
        Models,
        PointSpatialModel,
        PowerLaw2SpectralModel,
        SkyModel,
    )

    target, flux, index = point_truth["position"], point_truth["flux"], point_truth["index"]
    store = DataStore.from_dir(point_store)
    # Reconstructed = true energy axis (the 1 % edisp is negligible): 5 bins per decade.
    axis = MapAxis.from_energy_bounds(0.1, 10, 10, unit="TeV")
    geom = WcsGeom.create(skydir=target, width=1.6, binsz=0.04, axes=[axis], frame="icrs")
    stacked = MapDataset.create(geom, energy_axis_true=axis.copy(name="energy_true"), name="stacked")
    maker = MapDatasetMaker(selection=["counts", "exposure", "background", "psf"])
    safe = SafeMaskMaker(methods=["offset-max"], offset_max=4 * u.deg)
    for obs in store.get_observations():
        stacked.stack(safe.run(maker.run(stacked.copy(name=f"obs{obs.obs_id}"), obs), obs))

    spatial = PointSpatialModel(lon_0=target.ra + 0.05 * u.deg, lat_0=target.dec - 0.05 * u.deg,
                                frame="icrs")
    spectral = PowerLaw2SpectralModel(amplitude="1e-11 cm-2 s-1", index=index,
                                      emin=0.1 * u.TeV, emax=10 * u.TeV)
    spectral.index.frozen = True
    stacked.models = Models([SkyModel(spatial_model=spatial, spectral_model=spectral, name="pt"),
                             FoVBackgroundModel(dataset_name="stacked")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Fit().run([stacked])
    assert result.success
    par = stacked.models.parameters
    amp, lon, lat = par["amplitude"], par["lon_0"], par["lat_0"]
    norm = stacked.models["stacked-bkg"].spectral_model.norm
    print(f"amplitude {amp.value:.4g} +- {amp.error:.2g} (true {flux.value:.4g}); "
          f"lon {lon.value:.4f} +- {lon.error:.4f}; lat {lat.value:.4f} +- {lat.error:.4f}; "
          f"bkg norm {norm.value:.4f} +- {norm.error:.4f}")
    # Within 3 sigma of the injected truth.
    assert abs(amp.value - flux.to_value("cm-2 s-1")) < 3 * amp.error
    assert abs(lon.value - target.ra.deg) < 3 * lon.error
    assert abs(lat.value - target.dec.deg) < 3 * lat.error
    assert abs(norm.value - 1) < 3 * norm.error
    # The fit is informative: errors are a few percent of the flux, arcminutes in position.
    assert amp.error < 0.1 * amp.value and lat.error < 0.02
