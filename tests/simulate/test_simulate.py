"""The simulator writes a complete GADF data store that xgamma's reader opens; bad input fails."""

from __future__ import annotations

import dataclasses

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from xgamma.exceptions import SimulationError
from xgamma.simulate import (
    DEMO_CONFIG,
    DEMO_TRUTH,
    AnalyticIRF,
    demo_sources,
    disk_source,
    gaussian_source,
    point_source,
    simulate_datastore,
    source_from_dict,
    wobble_pointings,
)

OBS_COLUMNS = ["OBS_ID", "RA_PNT", "DEC_PNT", "GLON_PNT", "GLAT_PNT", "ZEN_PNT", "ALT_PNT", "AZ_PNT",
               "ONTIME", "LIVETIME", "DEADC", "TSTART", "TSTOP", "OBJECT", "N_TELS"]
EVENT_KEYS = ["RA_PNT", "DEC_PNT", "LIVETIME", "ONTIME", "DEADC", "TSTART", "TSTOP", "MJDREFI",
              "MJDREFF", "TIMESYS", "GEOLON", "GEOLAT", "ALTITUDE", "OBS_ID", "HDUCLASS", "HDUCLAS1"]


def _node_grid(irf: AnalyticIRF):
    """Bin centres of the aeff/PSF tables, where readers return the tabulated values."""
    e = irf.energy_edges()
    t = irf.offset_edges()
    return np.meshgrid(np.sqrt(e[1:] * e[:-1]), 0.5 * (t[1:] + t[:-1]), indexing="ij")


def test_demo_store_layout(demo_store):
    hdu = Table.read(demo_store / "hdu-index.fits.gz")
    obs = Table.read(demo_store / "obs-index.fits.gz")
    assert set(OBS_COLUMNS) <= set(obs.colnames)
    assert len(obs) == DEMO_CONFIG["n_observations"]
    classes = ["aeff_2d", "bkg_3d", "edisp_2d", "events", "gti", "psf_3gauss"]
    assert sorted(set(hdu["HDU_CLASS"])) == classes
    for row in obs:
        assert row["LIVETIME"] == pytest.approx(DEMO_CONFIG["livetime_s"])
        assert row["ONTIME"] * row["DEADC"] == pytest.approx(row["LIVETIME"])
        assert row["TSTOP"] - row["TSTART"] == pytest.approx(row["ONTIME"])
        # Observations are scheduled around transit from a southern site: high elevation.
        assert 50 < row["ALT_PNT"] <= 90 and row["ZEN_PNT"] == pytest.approx(90 - row["ALT_PNT"])
    # Pointings lie at the wobble offset from the point source.
    target = SkyCoord(DEMO_TRUTH["point"]["glon"], DEMO_TRUTH["point"]["glat"], unit="deg", frame="galactic")
    pnt = SkyCoord(obs["RA_PNT"], obs["DEC_PNT"], unit="deg")
    assert SkyCoord(obs["RA_OBJ"], obs["DEC_OBJ"], unit="deg").separation(target).deg.max() < 1e-9
    np.testing.assert_allclose(pnt.separation(target).deg, DEMO_CONFIG["wobble_offset_deg"], atol=1e-9)
    for name in set(hdu["FILE_NAME"]):
        with fits.open(demo_store / "data" / name) as hdul:
            header = hdul["EVENTS"].header
            assert all(key in header for key in EVENT_KEYS)
            assert header["HDUCLASS"] == "GADF" and header["HDUCLAS1"] == "EVENTS"
            assert hdul["BACKGROUND"].header["FOVALIGN"] == "RADEC"
            assert hdul["EFFECTIVE AREA"].header["LO_THRES"] == pytest.approx(0.1)
            times = hdul["EVENTS"].data["TIME"]
            assert np.all(np.diff(times) >= 0)
            assert times[0] >= header["TSTART"] and times[-1] <= header["TSTOP"]


def test_xgamma_reader_opens_demo_store(demo_store):
    from xgamma.io.datastore import DataStore

    store = DataStore(demo_store)
    obs_table = Table.read(demo_store / "obs-index.fits.gz")
    assert store.obs_ids == list(obs_table["OBS_ID"])
    irf = AnalyticIRF()
    energy, offset = _node_grid(irf)
    for obs_id in store.obs_ids:
        obs = store.observation(obs_id)
        row = obs_table[obs_table["OBS_ID"] == obs_id][0]
        assert len(obs.events) == row["EVENT_COUNT"]
        assert obs.pointing.separation(SkyCoord(row["RA_PNT"], row["DEC_PNT"], unit="deg")).deg < 1e-9
        assert obs.livetime.to_value("s") == pytest.approx(row["LIVETIME"])
        energies = np.asarray(obs.events.energy)
        assert energies.min() >= 0.1 * (1 - 1e-6) and energies.max() < 100
        # At the table nodes the reader returns the analytic values up to float32 rounding
        # (relative 6e-8; 2e-6 allows for the reader's interpolation arithmetic).
        np.testing.assert_allclose(obs.aeff.evaluate(energy, offset).to_value("m2"),
                                   irf.aeff(energy, offset).to_value("m2"), rtol=2e-6)
        rad = np.array([0.0, 0.05, 0.1, 0.2]) * u.deg
        np.testing.assert_allclose(
            obs.psf.evaluate(energy[..., None], offset[..., None], rad).to_value("sr-1"),
            irf.psf(energy[..., None], offset[..., None], rad).to_value("sr-1"), rtol=2e-6, atol=1e-3)
    # Between nodes the interpolated tables stay within 3e-3 of the formulas (the steepest
    # part, the threshold turn-on, gives 1.7e-3 with 16 bins per decade).
    e_fine = np.geomspace(0.1, 100, 300) * u.TeV
    for t in (0.3, 1.0, 2.5):
        off = np.full(e_fine.shape, t) * u.deg
        np.testing.assert_allclose(obs.aeff.evaluate(e_fine, off).to_value("m2"),
                                   irf.aeff(e_fine, off).to_value("m2"), rtol=3e-3)
    # Background integrated over energy bins: a power law is exact under log-log integration;
    # the log interpolation of the Gaussian FoV profile between 0.15-deg nodes costs at most
    # step**2 / (8 sigma**2) = 4.5e-4 per axis, so 1.5e-3 overall.
    edges = np.geomspace(0.1, 100, 7) * u.TeV
    fov_lon, fov_lat = np.array([0.0, 1.0, 2.5, -3.3]) * u.deg, np.array([0.0, -0.5, 1.0, 2.0]) * u.deg
    rate = obs.bkg.integrate_energy(edges, fov_lon, fov_lat).to_value("s-1 sr-1")
    expected = np.array([irf.bkg_energy_integral(a, b).to_value("s-1 sr-1")
                         for a, b in zip(edges[:-1], edges[1:])])[:, None]
    expected = expected * irf.bkg_offset_profile(np.hypot(fov_lon, fov_lat))[None, :]
    np.testing.assert_allclose(rate, expected, rtol=1.5e-3)


def test_same_seed_same_files_other_seed_other_events(tmp_path):
    target = SkyCoord(10, -30, unit="deg")
    kwargs = dict(observations=[target], sources=[point_source(position=target, flux=1e-11)],
                  livetime=5 * u.min)
    paths = [simulate_datastore(tmp_path / name, seed=seed, **kwargs)
             for name, seed in [("a", 7), ("b", 7), ("c", 8)]]
    data = [fits.getdata(p / "data" / "obs_000001.fits", "EVENTS") for p in paths]
    assert data[0].tobytes() == data[1].tobytes()
    assert data[0].tobytes() != data[2].tobytes()
    for name in ["EFFECTIVE AREA", "BACKGROUND", "POINT SPREAD FUNCTION", "ENERGY DISPERSION"]:
        assert (fits.getdata(paths[0] / "data" / "obs_000001.fits", name).tobytes()
                == fits.getdata(paths[2] / "data" / "obs_000001.fits", name).tobytes())


def test_overwrite_replaces_a_store(tmp_path):
    target = SkyCoord(10, -30, unit="deg")
    path = simulate_datastore(tmp_path / "s", observations=[target], livetime=1 * u.min, seed=1)
    first = Table.read(path / "obs-index.fits.gz")["EVENT_COUNT"][0]
    simulate_datastore(path, observations=[target, target], livetime=1 * u.min, seed=2, overwrite=True)
    assert len(Table.read(path / "obs-index.fits.gz")) == 2
    assert first > 0
    # No temporary folder is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_source_from_dict_and_demo_sources():
    """Simulator sources are xgamma.models sky models: the analysis's own model classes."""
    from xgamma.models import Disk, Gaussian, PowerLaw2, SkyModel

    src = source_from_dict({"type": "gaussian", "lon": 1.0, "lat": 0.5, "frame": "galactic",
                            "flux": "2e-12 cm-2 s-1", "index": 2.4, "sigma": "0.3 deg"})
    assert isinstance(src, SkyModel) and isinstance(src.spatial, Gaussian) and isinstance(src.spectral, PowerLaw2)
    assert src.spatial.sigma.value == pytest.approx(0.3)
    assert src.spectral.amplitude.value == pytest.approx(2e-12)
    assert (src.spatial.frame, src.spatial.lon_0.value, src.spatial.lat_0.value) == ("galactic", 1.0, 0.5)
    # PowerLaw2 normalisation: the integral over the reference range is the flux.
    assert src.spectral.integral(0.1 * u.TeV, 10 * u.TeV).to_value("cm-2 s-1") == pytest.approx(2e-12)
    disk = disk_source(TARGET.galactic, 1e-12 * u.Unit("cm-2 s-1"), radius="0.2 deg")
    assert isinstance(disk.spatial, Disk) and disk.spatial.edge_width.value == 0.0 and disk.spatial.frame == "galactic"
    names = [s.name for s in demo_sources()]
    assert names == list(DEMO_TRUTH)


def test_any_sky_model_is_simulated(tmp_path):
    """A shape without an exact sampler (a shell) is drawn from its pixels; its events follow it."""
    from xgamma.models import PowerLaw2, Shell, SkyModel

    shell = SkyModel(PowerLaw2(amplitude=2e-10, index=2.0, emin=0.1, emax=100),
                     Shell(lon_0=TARGET.ra.deg, lat_0=TARGET.dec.deg, radius=0.3, width=0.1, frame="icrs"),
                     name="shell")
    path = simulate_datastore(tmp_path / "s", observations=[TARGET], sources=[shell], background=False,
                              livetime=10 * u.min, seed=4)
    events = Table.read(next((path / "data").glob("*.fits*")), hdu="EVENTS")
    sep = SkyCoord(events["RA"], events["DEC"], unit="deg").separation(TARGET).deg
    # Most photons come from the shell's projection (r < 0.4 deg), smeared by the PSF.
    assert len(sep) > 100 and np.median(sep) == pytest.approx(0.3, abs=0.06)


def test_wobble_pointings_geometry():
    target = SkyCoord(30, 60, unit="deg")
    pnts = wobble_pointings(target, n=3, offset=0.5 * u.deg)
    assert len(pnts) == 3
    np.testing.assert_allclose([p.separation(target).deg for p in pnts], 0.5, atol=1e-9)
    angles = sorted(target.position_angle(p).deg % 360 for p in pnts)
    np.testing.assert_allclose(np.diff(angles), 120, atol=1e-6)


TARGET = SkyCoord(10, -30, unit="deg")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"livetime": -5 * u.min}, r"livetime: must be positive"),
        ({"livetime": 5 * u.m}, r"livetime: expected units of time"),
        ({"deadc": 1.5}, r"deadc: must be in \(0, 1\]"),
        ({"observations": []}, r"observations: need at least one"),
        ({"observations": [(10, -30)]}, r"observations\[0\]: expected a scalar SkyCoord"),
        ({"sources": [{"type": "blob", "lon": 0, "lat": 0}]}, r"sources\[\]\.type: unknown source type 'blob'"),
        ({"sources": ["point"]}, r"sources\[0\]: unknown source type str; use an xgamma.models.SkyModel"),
        ({"sources": [{"type": "point", "lat": 0}]}, r"sources\[\]\.lon: missing"),
        ({"energy_min": 0.001 * u.TeV}, r"energy_min/energy_max"),
        ({"energy_min": 10 * u.TeV, "energy_max": 1 * u.TeV}, r"energy_min/energy_max"),
        ({"max_offset": 8 * u.deg}, r"max_offset: must be in"),
        ({"irf": "cta"}, r"irf: expected an AnalyticIRF"),
        ({"first_obs_id": -3}, r"first_obs_id"),
        ({"target": "Crab"}, r"target: expected a scalar SkyCoord"),
        ({"background_norm": -1.0}, r"background_norm: must be >= 0"),
    ],
)
def test_bad_input_raises_simulation_error(tmp_path, kwargs, match):
    args = {"observations": [TARGET], "livetime": 1 * u.min, **kwargs}
    with pytest.raises(SimulationError, match=match):
        simulate_datastore(tmp_path / "s", **args)
    assert not (tmp_path / "s").exists()


def test_bad_source_parameters():
    with pytest.raises(SimulationError, match=r"source 'x'\.flux: must be >= 0"):
        point_source(position=TARGET, flux=-1e-12, name="x")
    with pytest.raises(SimulationError, match=r"source 'g'\.sigma: must be in"):
        gaussian_source(position=TARGET, flux=1e-12, sigma=-0.1 * u.deg, name="g")
    with pytest.raises(SimulationError, match=r"source 'p'\.position: expected a scalar SkyCoord"):
        point_source(position=(1, 2), flux=1e-12, name="p")
    with pytest.raises(SimulationError, match=r"offset: must be in"):
        wobble_pointings(TARGET, offset=-1 * u.deg)


def test_existing_path_needs_overwrite(tmp_path):
    path = simulate_datastore(tmp_path / "s", observations=[TARGET], livetime=1 * u.min)
    with pytest.raises(SimulationError, match=r"path: .* already exists; pass overwrite=True"):
        simulate_datastore(path, observations=[TARGET], livetime=1 * u.min)
    other = tmp_path / "not-a-store"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(SimulationError, match=r"path: .* is not a data store"):
        simulate_datastore(other, observations=[TARGET], livetime=1 * u.min, overwrite=True)
    assert (other / "precious.txt").read_text() == "keep me"


def test_irf_parameters_flow_into_the_files(tmp_path):
    irf = dataclasses.replace(AnalyticIRF(), lo_threshold_tev=0.3, aeff_max_m2=1e5)
    path = simulate_datastore(tmp_path / "s", observations=[TARGET], livetime=1 * u.min, irf=irf)
    with fits.open(path / "data" / "obs_000001.fits") as hdul:
        assert hdul["EFFECTIVE AREA"].header["LO_THRES"] == pytest.approx(0.3)
        assert hdul["EFFECTIVE AREA"].data["EFFAREA"].max() <= 1e5


def test_demo_sources_stand_out_of_the_background(demo_store):
    """ON-region counts around each demo source exceed the analytic background by > 20 sigma."""
    irf = AnalyticIRF()
    obs = Table.read(demo_store / "obs-index.fits.gz")
    for name, radius, min_sigma in [("point", 0.15, 20.0), ("extended", 0.4, 20.0)]:
        truth = DEMO_TRUTH[name]
        centre = SkyCoord(truth["glon"], truth["glat"], unit="deg", frame="galactic")
        n_on, b_on = 0, 0.0
        omega = 2 * np.pi * (1 - np.cos(np.deg2rad(radius)))  # sr
        for row in obs:
            data = fits.getdata(demo_store / "data" / f"obs_{row['OBS_ID']:06d}.fits", "EVENTS")
            events = SkyCoord(data["RA"].astype(float), data["DEC"].astype(float), unit="deg")
            n_on += int(np.sum(events.separation(centre).deg < radius))
            pointing = SkyCoord(row["RA_PNT"], row["DEC_PNT"], unit="deg")
            # The profile varies by < 2 % across the ON region: evaluate it at the centre.
            profile = irf.bkg_offset_profile(pointing.separation(centre))
            rate = irf.bkg_energy_integral(0.1 * u.TeV, 100 * u.TeV).to_value("s-1 sr-1")
            b_on += row["ONTIME"] * rate * profile * omega
        significance = (n_on - b_on) / np.sqrt(b_on)
        print(f"{name}: {n_on} ON events, {b_on:.1f} background, {significance:.1f} sigma")
        assert significance > min_sigma


def test_background_norm_scales_events_not_irf(tmp_path):
    base = dict(observations=[TARGET], livetime=20 * u.min, seed=4)
    n = {}
    for norm in (1.0, 1.5):
        path = simulate_datastore(tmp_path / f"n{norm}", background_norm=norm, **base)
        n[norm] = Table.read(path / "obs-index.fits.gz")["EVENT_COUNT"][0]
        bkg = fits.getdata(path / "data" / "obs_000001.fits", "BACKGROUND")["BKG"]
        if norm == 1.0:
            bkg_ref = bkg
    np.testing.assert_array_equal(bkg, bkg_ref)  # the IRF in the files is unchanged
    # Poisson: 1.5x the mean within 4 sigma of the difference.
    assert abs(n[1.5] - 1.5 * n[1.0]) < 4 * np.sqrt(n[1.5] + 2.25 * n[1.0])
    assert n[1.0] > 1000
