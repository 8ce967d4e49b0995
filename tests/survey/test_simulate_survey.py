"""The survey simulator: tiling, shared IRFs, reproducibility, source normalisation, Gammapy readback."""

from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from xgamma.exceptions import SimulationError
from xgamma.simulate import gaussian_source, point_source, galactic_catalogue, survey, survey_pointings
from xgamma.simulate.events import sample_source
from xgamma.simulate.survey import HESS_LIKE_IRF, ZENITH_BANDS, sample_model, survey_irf


def test_pointings_tile_the_plane_column_by_column():
    glon, glat = survey_pointings(1000)
    # 10 rows 0.7 deg apart inside |b| < 3.5 deg, columns 0.7 deg apart from l = 250 deg.
    assert np.allclose(np.unique(glat), (np.arange(10) - 4.5) * 0.7)
    assert np.all(np.abs(glat) < 3.5)
    columns = np.unique(glon)
    assert columns.size == 100
    assert columns[0] == pytest.approx(250.0 + 0.35, abs=0.01)
    assert np.allclose(np.diff(columns), 0.7, atol=0.01)
    # The whole H.E.S.S. range (250 .. 65 deg through 0) is 250 columns; more runs revisit it.
    glon, glat = survey_pointings(2600)
    assert np.unique(glon).size == 250
    assert ((glon > 65.0) & (glon < 250.0)).sum() == 0
    np.testing.assert_array_equal(glon[2500:], glon[:100])
    np.testing.assert_array_equal(glat[2500:], glat[:100])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_runs": 0}, "n_runs"),
    ({"n_runs": 10, "l_range": (10, 10)}, "l_range"),
    ({"n_runs": 10, "b_max": 0.0}, "b_max"),
    ({"n_runs": 10, "spacing": -1}, "spacing"),
])
def test_bad_tiling_parameters_name_the_parameter(kwargs, match):
    with pytest.raises(SimulationError, match=match):
        survey_pointings(**kwargs)


def test_survey_layout_shares_a_few_irf_files(survey_store):
    hdu = Table.read(survey_store / "hdu-index.fits.gz")
    hdu.convert_bytestring_to_unicode()
    obs = Table.read(survey_store / "obs-index.fits.gz")
    assert len(obs) == 30
    irf_rows = hdu[np.isin(hdu["HDU_TYPE"], ["aeff", "psf", "edisp", "bkg"])]
    files = set(zip(irf_rows["FILE_DIR"], irf_rows["FILE_NAME"]))
    assert 1 <= len(files) <= len(ZENITH_BANDS)
    assert all(d == "irfs" for d, _ in files)
    event_files = hdu[hdu["HDU_TYPE"] == "events"]["FILE_NAME"]
    assert len(set(event_files)) == 30
    # Zenith angles vary, and each run points at the IRF file of its nearest zenith band.
    zenith = np.asarray(obs["ZEN_PNT"])
    assert zenith.max() - zenith.min() > 10
    for obs_id, z in zip(obs["OBS_ID"], zenith):
        name = irf_rows[(irf_rows["OBS_ID"] == obs_id) & (irf_rows["HDU_TYPE"] == "aeff")]["FILE_NAME"][0]
        nearest = ZENITH_BANDS[int(np.argmin(np.abs(np.asarray(ZENITH_BANDS) - z)))]
        assert name == f"irf_zd{nearest:02.0f}.fits"
    # 28-min runs with ~1e4 events, as H.E.S.S. DL3 DR1 runs.
    assert np.allclose(obs["LIVETIME"], 28 * 60)
    assert 5_000 < np.median(obs["EVENT_COUNT"]) < 30_000
    parameters = json.loads((survey_store / "survey.json").read_text())
    assert parameters["n_runs"] == 30 and parameters["seed"] == 4


def test_same_seed_same_runs_whatever_the_number_of_runs(tmp_path):
    common = {"l_range": (300.0, 302.1), "seed": 11, "diffuse": False}
    small = survey(tmp_path / "a", n_runs=3, **common)
    large = survey(tmp_path / "b", n_runs=5, **common)
    other = survey(tmp_path / "c", n_runs=3, **{**common, "seed": 12})
    for k in (1, 2, 3):
        name = f"data/run_{k:06d}.fits"
        a, b, c = (fits.getdata(store / name, "EVENTS") for store in (small, large, other))
        np.testing.assert_array_equal(a, b)
        assert len(a) != len(c) or not np.array_equal(a["RA"], c["RA"])
    assert (small / "models.yaml").read_text() == (large / "models.yaml").read_text()


def test_existing_path_is_refused_without_overwrite(tmp_path):
    path = survey(tmp_path / "s", n_runs=1, l_range=(10, 11), diffuse=False)
    with pytest.raises(SimulationError, match="already exists"):
        survey(path, n_runs=1, l_range=(10, 11))
    survey(path, n_runs=2, l_range=(10, 11), overwrite=True)
    assert len(Table.read(path / "obs-index.fits.gz")) == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(SimulationError, match="not a simulated survey"):
        survey(tmp_path / "other", n_runs=1, overwrite=True)


def test_catalogue_is_made_of_xgamma_models_and_depends_on_the_seed():
    from xgamma.models import Disk, Gaussian, Point, SkyModel, Template

    models = galactic_catalogue(seed=3)
    assert all(isinstance(m, SkyModel) for m in models)
    kinds = {type(m.spatial) for m in models}
    assert {Point, Gaussian, Disk, Template} <= kinds
    # HGPS-like density: ~0.45 sources per degree over the 175 deg of longitude.
    assert 50 < len(models) < 110
    assert models[-1].name == "diffuse"
    again = galactic_catalogue(seed=3)
    assert [m.to_dict() for m in models[:-1]] == [m.to_dict() for m in again[:-1]]
    assert galactic_catalogue(seed=4)[0].to_dict() != models[0].to_dict()


def _count_within(ra, dec, centre, radius_deg):
    return int((SkyCoord(ra, dec, unit="deg").separation(centre).deg < radius_deg).sum())


@pytest.mark.parametrize("kind", ["point", "gaussian"])
def test_sample_model_matches_the_simulator_source_specs(kind):
    """xgamma.models sources and the simulator's own source specs give the same event rates."""
    from xgamma.models import Gaussian, Point, PowerLaw2, SkyModel

    pointing = SkyCoord(266.4, -28.9, unit="deg")
    position = pointing.directional_offset_by(0 * u.deg, 0.7 * u.deg)
    flux, index = 2e-10, 2.3
    spatial = (Point if kind == "point" else Gaussian)(
        lon_0=position.ra.deg, lat_0=position.dec.deg, frame="icrs", **({} if kind == "point" else {"sigma": 0.2}))
    model = SkyModel(PowerLaw2(amplitude=flux, index=index, emin=0.1, emax=100), spatial, name=kind)
    spec_args = dict(position=position, flux=flux * u.Unit("cm-2 s-1"), index=index, flux_energy_min=0.1 * u.TeV,
                     flux_energy_max=100 * u.TeV)
    spec = point_source(**spec_args) if kind == "point" else gaussian_source(sigma=0.2 * u.deg, **spec_args)
    common = dict(pointing=pointing, livetime=4 * u.h, energy_min=0.3 * u.TeV, energy_max=100 * u.TeV,
                  max_offset=3 * u.deg)
    irf = survey_irf(20.0)
    ra1, dec1, e1 = sample_model(np.random.default_rng(1), irf, model, **common)
    ra2, dec2, e2 = sample_source(np.random.default_rng(2), irf, spec, **common)
    # Both are Poisson draws of the same mean (~1e4 events): within 5 sigma of each other.
    assert abs(ra1.size - ra2.size) < 5 * np.sqrt(ra1.size + ra2.size)
    n1, n2 = _count_within(ra1, dec1, position, 0.3), _count_within(ra2, dec2, position, 0.3)
    assert abs(n1 - n2) < 5 * np.sqrt(n1 + n2)
    assert np.median(e1) == pytest.approx(np.median(e2), rel=0.05)


def test_diffuse_template_rate_matches_its_surface_brightness():
    """A flat template seen on axis: events = brightness x solid angle x A x livetime (Poisson)."""
    from astropy.wcs import WCS

    from xgamma.models import PowerLaw2, SkyModel, Template

    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.cdelt, wcs.wcs.crval, wcs.wcs.crpix = ["GLON-CAR", "GLAT-CAR"], [-0.05, 0.05], [0, 0], [
        81, 81]
    template = Template(np.ones((161, 161)), wcs, frame="galactic")  # 8 x 8 deg, flat
    flux = 1e-8
    model = SkyModel(PowerLaw2(amplitude=flux, index=2.0, emin=1, emax=100), template, name="flat")
    irf = HESS_LIKE_IRF
    pointing = SkyCoord(0, 0, unit="deg", frame="galactic")
    livetime = 10 * u.h
    ra, dec, energy = sample_model(np.random.default_rng(5), irf, model, pointing=pointing, livetime=livetime,
                                   energy_min=1.2 * u.TeV, energy_max=90 * u.TeV, max_offset=3 * u.deg)
    inside = _count_within(ra, dec, pointing, 0.5)
    # Expected within 0.5 deg: brightness x solid angle x integral of dN/dE x A(E, offset) dE x
    # livetime, the area averaged over the disk; PSF spill-over at the edge cancels on a flat sky.
    brightness = 1.0 / (161 * 161 * np.deg2rad(0.05) ** 2)  # fraction of the flux per sr
    e = np.geomspace(1.2, 90, 2001)
    dnde = flux * e**-2 / (1 - 1 / 100)  # PowerLaw2 between 1 and 100 TeV
    r = np.linspace(0, 0.5, 201)
    area = irf.aeff(e[:, None] * u.TeV, r[None, :] * u.deg).to_value("cm2")
    mean_area = np.trapezoid(area * 2 * np.pi * np.deg2rad(r), np.deg2rad(r), axis=1)  # cm2 sr
    expected = brightness * np.trapezoid(dnde * mean_area, e) * livetime.to_value("s")
    assert inside == pytest.approx(expected, rel=4 * expected**-0.5)  # 4 Poisson sigma
    assert inside > 2000


@pytest.mark.gammapy
def test_gammapy_reads_the_survey_runs(survey_store):
    import warnings

    from gammapy.data import DataStore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = DataStore.from_dir(survey_store)
        observations = store.get_observations([1, 15, 30])
    obs_table = Table.read(survey_store / "obs-index.fits.gz")
    for obs in observations:
        row = obs_table[obs_table["OBS_ID"] == obs.obs_id][0]
        assert len(obs.events.table) == row["EVENT_COUNT"]
        assert obs.observation_live_time_duration.to_value("s") == pytest.approx(28 * 60)
        irf = survey_irf(ZENITH_BANDS[int(np.argmin(np.abs(np.asarray(ZENITH_BANDS) - row["ZEN_PNT"])))])
        energy = [0.5, 2.0, 10.0] * u.TeV
        np.testing.assert_allclose(obs.aeff.evaluate(energy_true=energy, offset=1.0 * u.deg).to_value("m2"),
                                   irf.aeff(energy, 1.0 * u.deg).to_value("m2"), rtol=2e-3)
        assert obs.aeff.meta["LO_THRES"] == pytest.approx(irf.lo_threshold_tev)
        bkg = obs.bkg.evaluate(energy=1 * u.TeV, fov_lon=0.3 * u.deg, fov_lat=-0.4 * u.deg)
        assert bkg.to_value("MeV-1 s-1 sr-1") == pytest.approx(
            irf.bkg(1 * u.TeV, 0.3 * u.deg, -0.4 * u.deg).to_value("MeV-1 s-1 sr-1"), rel=2e-3)
        assert obs.psf is not None and obs.edisp is not None
        separation = obs.events.radec.separation(obs.get_pointing_icrs(obs.tmid)).deg
        assert separation.max() < 4.0  # simulated to 3 deg, plus the PSF


def test_cli_simulate_survey(tmp_path, capsys):
    from xgamma.cli.main import main

    out = tmp_path / "gps"
    assert main(["simulate", "survey", "--runs", "2", "--output", str(out), "--l-range", "20", "21.4",
                 "--seed", "3", "--no-diffuse"]) == 0
    assert "2 runs written" in capsys.readouterr().out
    obs = Table.read(out / "obs-index.fits.gz")
    assert list(obs["OBS_ID"]) == [1, 2]
    assert np.all(np.abs(obs["GLON_PNT"] - 20.7) < 0.01)
    assert json.loads((out / "survey.json").read_text())["seed"] == 3
    # A second call into the same folder fails with one line naming the fix.
    assert main(["simulate", "survey", "--runs", "2", "--output", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
