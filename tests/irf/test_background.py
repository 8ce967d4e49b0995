"""Background IRFs: evaluation and energy integration vs Gammapy 2.1 and analytic power laws;
field-of-view coordinates (RADEC and ALTAZ) vs Gammapy's FoV frames."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from irf_files import copy_hdu_without_column, table_hdu, write
from xgamma.exceptions import IRFError
from xgamma.io.datastore import DataStore
from xgamma.irf.background import (
    Background2D,
    Background3D,
    fov_coordinates,
    fov_coordinates_radec,
    fov_rotation_times,
    integrate_loglog,
)

RNG = np.random.default_rng(42)
LON = RNG.uniform(-7, 7, 3000)  # beyond the CTA (+-6 deg) and HESS (+-2.5 deg) edges too
LAT = RNG.uniform(-7, 7, 3000)
ENERGY = np.geomspace(0.005, 300, 45)
EDGES = np.geomspace(0.1, 10, 11)
BKG_UNIT = "s-1 MeV-1 sr-1"


def _both(path, hdu, gammapy_irf):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gammapy warns about the 1DC unit string
        ref = gammapy_irf.Background3D.read(path, hdu=hdu)
    return ref, Background3D.read(path, hdu)


@pytest.mark.gammapy
@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning:gammapy.*")  # Gammapy's own
@pytest.mark.parametrize("which", ["cta", "hess"])
@pytest.mark.parametrize("edges", [EDGES, np.geomspace(0.1, 10, 41)], ids=["10-bins", "40-bins"])
def test_evaluate_and_integrate_match_gammapy(which, edges, cta_irf_file, hess_run_file, gammapy_irf):
    """10 bins: fewer edges than the tables' 20-21 energy nodes (energy interpolated first);
    40 bins: more edges than nodes (field of view interpolated on the nodes first, `nodes_first`)."""
    path, hdu = (cta_irf_file, "BACKGROUND") if which == "cta" else (hess_run_file, "BKG")
    ref, ours = _both(path, hdu, gammapy_irf)
    expected = ref.evaluate(energy=ENERGY[:, None] * u.TeV, fov_lon=LON * u.deg, fov_lat=LAT * u.deg).to_value(BKG_UNIT)
    got = ours.evaluate(ENERGY[:, None], LON, LAT).to_value(BKG_UNIT)
    # Gammapy takes the log of the float32 table in float32 (|log| ~ 30 -> ~3e-6 relative);
    # we take it in float64: budget 1e-5 relative. Zeros (outside the edges) coincide.
    assert np.array_equal(got == 0, expected == 0) and (got > 0).any() and (got == 0).any()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=0)

    expected = ref.integrate_log_log(
        energy=edges[:, None] * u.TeV, fov_lon=LON * u.deg, fov_lat=LAT * u.deg, axis_name="energy"
    ).to_value("s-1 sr-1")
    got = ours.integrate_energy(edges * u.TeV, LON * u.deg, LAT * u.deg)
    assert got.unit == u.Unit("s-1 sr-1") and got.shape == (edges.size - 1, LON.size)
    # Exponentials taken in float32 (~1e-6): budget 1e-4 relative, requirement 1e-3.
    np.testing.assert_allclose(got.value, expected, rtol=1e-4, atol=1e-12 * expected.max())


def test_nodes_first_is_the_same_interpolation(cta_irf_file):
    """Field of view on the energy nodes first, then energy (more edges than nodes) gives the
    energy-first log values to rounding, including extrapolation beyond the nodes and the edges."""
    bkg = Background3D.read(cta_irf_file, "BACKGROUND")
    interp = bkg._interp
    edges = np.geomspace(0.005, 300, 60)  # 59 bins: beyond the first and last node and edge
    assert interp.axes[0].nbin < edges.size and interp.node_cells() is not None
    spatial = bkg._spatial(LON, LAT)
    first = list(interp.outer_blocks(edges, spatial, block=1000))
    nodes = list(interp.outer_blocks(edges, spatial, block=1000, nodes_first=True))
    assert len(first) == len(nodes) == 3
    for (sl_a, a, valid_a), (sl_b, b, valid_b) in zip(first, nodes):
        assert sl_a == sl_b and np.array_equal(valid_a, valid_b)
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-12)
    # A table of a single energy node has no node cells: nodes_first falls back to the same values.
    from xgamma.irf._grid import IRFAxis

    one_node = IRFAxis("energy", bkg.axes[0].edges[:2], bkg.axes[0].unit, "log")
    single = Background3D((one_node, *bkg.axes[1:]), bkg.data[:1])
    assert single._interp.node_cells() is None
    for (_, a, _), (_, b, _) in zip(single._interp.outer_blocks(edges, spatial),
                                    single._interp.outer_blocks(edges, spatial, nodes_first=True)):
        assert np.array_equal(a, b)


def test_integrate_some_bins_is_the_whole_axis_bit_for_bit(cta_irf_file):
    """`integrate_energy(bins=)` (map making: a run's safe bins) gives exactly the rows of the whole axis
    and zeros elsewhere, whichever interpolation order the whole axis takes (more edges than nodes or
    not), with out-of-range bins and points beyond the field-of-view edges among them."""
    bkg = Background3D.read(cta_irf_file, "BACKGROUND")
    for edges in (np.geomspace(0.005, 300, 60), np.geomspace(0.1, 10, 6)):  # nodes first, energy first
        whole = bkg.integrate_energy(edges, LON, LAT)
        for bins in (slice(0, 3), slice(2, 5), slice(1, None), slice(4, 4)):
            part = bkg.integrate_energy(edges * u.TeV, LON * u.deg, LAT * u.deg, bins=bins)
            start, stop, _ = bins.indices(edges.size - 1)
            assert part.unit == whole.unit and part.shape == whole.shape
            assert np.array_equal(part.value[start:stop].view(np.uint64), whole.value[start:stop].view(np.uint64))
            assert not part.value[:start].any() and not part.value[stop:].any()
    with pytest.raises(IRFError, match="step 1"):
        bkg.integrate_energy(EDGES, LON, LAT, bins=slice(0, 4, 2))


def test_integrate_shapes_and_out_of_range_bins(cta_irf_file):
    bkg = Background3D.read(cta_irf_file, "BACKGROUND")
    lon = np.zeros((3, 4))
    rate = bkg.integrate_energy([0.005, 0.05, 1.0, 500.0], lon, lon)
    assert rate.shape == (3, 3, 4)
    # Bins with an edge outside the IRF energy range (0.0126-200 TeV) integrate to 0 (Gammapy).
    assert np.all(rate[0] == 0) and np.all(rate[2] == 0) and np.all(rate[1] > 0)


def _powerlaw_bkg(tmp_path, index, *, kind="bkg_3d", header=None, unit=BKG_UNIT):
    energy = np.geomspace(0.05, 50, 31)
    det = np.linspace(-3, 3, 13)
    centers = np.sqrt(energy[:-1] * energy[1:])
    amplitude = 1e-6  # s-1 MeV-1 sr-1 at 1 TeV
    spectrum = amplitude * centers**-index
    cols = {"ENERG_LO": (energy[:-1], "TeV"), "ENERG_HI": (energy[1:], "TeV")}
    if kind == "bkg_3d":
        cols |= {"DETX_LO": (det[:-1], "deg"), "DETX_HI": (det[1:], "deg"),
                 "DETY_LO": (det[:-1], "deg"), "DETY_HI": (det[1:], "deg")}
        data = np.broadcast_to(spectrum[:, None, None], (30, 12, 12))
    else:
        theta = np.linspace(0, 3, 7)
        cols |= {"THETA_LO": (theta[:-1], "deg"), "THETA_HI": (theta[1:], "deg")}
        data = spectrum[None, :] * np.exp(-0.5 * (((theta[:-1] + theta[1:]) / 2) / 1.5) ** 2)[:, None]
    cols["BKG"] = (data, unit)
    write(tmp_path / "bkg.fits", table_hdu(cols, "BACKGROUND", header or {}))
    return tmp_path / "bkg.fits", amplitude


@pytest.mark.parametrize("index", [2.7, 1.0, 1.02, 0.0])
def test_power_law_integral_is_exact(tmp_path, index):
    """Log-log integration is exact for a power law: compare with the closed form.

    Index 1 and 1.02 exercise the logarithmic limit and the small-|1 - index| series.
    """
    path, amplitude = _powerlaw_bkg(tmp_path, index)
    bkg = Background3D.read(path, "BACKGROUND")
    edges = np.geomspace(0.1, 10, 9)
    got = bkg.integrate_energy(edges * u.TeV, [0.0, 1.3], [0.0, -2.0]).to_value("s-1 sr-1")
    e0, e1 = edges[:-1], edges[1:]
    if index == 1.0:
        expected = amplitude * np.log(e1 / e0)
    else:
        expected = amplitude * (e1 ** (1 - index) - e0 ** (1 - index)) / (1 - index)
    expected *= 1e6  # the rate is per MeV, the energies in TeV
    # float32 table values and float32 exponentials: 1e-5 relative.
    np.testing.assert_allclose(got, np.stack([expected, expected], axis=1), rtol=1e-5)


def test_integrate_loglog_reference_function():
    e0, e1 = 1.0, 2.0
    v0 = np.array([4.0, 4.0, 0.0, 4.0])
    v1 = np.array([1.0, 2.0, 1.0, 0.0])  # index 2, index 1, zero ends
    got = integrate_loglog(v0, v1, e0, e1)
    np.testing.assert_allclose(got[:2], [4 * (1 - 0.5), 4 * np.log(2)], rtol=1e-12)
    assert got[2] == 0 and got[3] == 0


@pytest.mark.gammapy
def test_background2d_matches_gammapy(tmp_path, gammapy_irf):
    path, _ = _powerlaw_bkg(tmp_path, 2.5, kind="bkg_2d")
    ref = gammapy_irf.Background2D.read(path, hdu="BACKGROUND")
    ours = Background2D.read(path, "BACKGROUND")
    lon, lat = LON / 2, LAT / 2
    offset = np.degrees(np.arccos(np.cos(np.radians(lon)) * np.cos(np.radians(lat))))  # great circle
    expected = ref.evaluate(energy=ENERGY[:, None] * u.TeV, offset=offset * u.deg).to_value(BKG_UNIT)
    np.testing.assert_allclose(ours.evaluate(ENERGY[:, None], lon, lat).to_value(BKG_UNIT), expected, rtol=1e-5)
    np.testing.assert_allclose(ours.evaluate_offset(ENERGY[:, None], offset).to_value(BKG_UNIT), expected, rtol=1e-5)
    expected = ref.integrate_log_log(energy=EDGES[:, None] * u.TeV, offset=offset * u.deg, axis_name="energy")
    got = ours.integrate_energy(EDGES, lon, lat)
    np.testing.assert_allclose(got.value, expected.to_value("s-1 sr-1"), rtol=1e-4)


@pytest.mark.gammapy
def test_fov_coordinates_radec_match_gammapy(hess_datastore_dir):
    from gammapy.utils.coordinates import FoVICRSFrame

    obs = DataStore(hess_datastore_dir).observation(23523)
    pnt = obs.pointing
    sky = SkyCoord(pnt.ra + RNG.uniform(-3, 3, 500) * u.deg, pnt.dec + RNG.uniform(-3, 3, 500) * u.deg).galactic
    ref = sky.transform_to(FoVICRSFrame(origin=pnt))
    lon, lat = fov_coordinates(obs, sky)
    # Same rotation, float64 maths: 1e-9 deg.
    np.testing.assert_allclose(lon, ref.fov_lon.deg, atol=1e-9)
    np.testing.assert_allclose(lat, ref.fov_lat.deg, atol=1e-9)
    # Convention check: fov_lon grows towards decreasing RA.
    east = fov_coordinates_radec(pnt.ra.deg + 1.0, pnt.dec.deg, pnt.ra.deg, pnt.dec.deg)
    assert east[0] < 0 and abs(east[1]) < 0.01


@pytest.mark.gammapy
def test_fov_coordinates_altaz_match_gammapy(hess_datastore_dir):
    from astropy.coordinates.erfa_astrom import ErfaAstromInterpolator, erfa_astrom
    from gammapy.data import DataStore as GammapyDataStore
    from gammapy.makers.utils import _compute_rotation_time_steps
    from gammapy.utils.coordinates import FoVAltAzFrame

    obs = DataStore(hess_datastore_dir).observation(23523)
    gobs = GammapyDataStore.from_dir(hess_datastore_dir).obs(23523)
    time = obs.tstart + 0.3 * obs.ontime
    pnt = obs.pointing
    sky = SkyCoord(pnt.ra + RNG.uniform(-2, 2, 300) * u.deg, pnt.dec + RNG.uniform(-2, 2, 300) * u.deg)
    origin = gobs.pointing.get_altaz(time, gobs.observatory_earth_location)
    frame = FoVAltAzFrame(origin=origin, location=origin.location, obstime=time)
    with erfa_astrom.set(ErfaAstromInterpolator(1000 * u.s)):
        ref = sky.transform_to(frame)
    lon, lat = fov_coordinates(obs, sky, alignment="ALTAZ", time=time)
    # Same AltAz transforms; the pointing comes from float32 obs-index values: 1e-5 deg.
    np.testing.assert_allclose(lon, ref.fov_lon.deg, atol=1e-5)
    np.testing.assert_allclose(lat, ref.fov_lat.deg, atol=1e-5)
    # The frame rotates with the sky: coordinates differ half an hour later.
    lon_late, _ = fov_coordinates(obs, sky, alignment="ALTAZ", time=time + 0.5 * u.h)
    assert np.max(np.abs(lon_late - lon)) > 0.05

    times = fov_rotation_times(obs, step=1 * u.deg)
    ref_times = _compute_rotation_time_steps(
        gobs.tstart, gobs.tstart + gobs.observation_time_duration, 1 * u.deg, gobs.pointing,
        gobs.observatory_earth_location,
    )
    assert len(times) == len(ref_times) > 2
    np.testing.assert_allclose((times - ref_times).to_value("s"), 0, atol=1e-2)


def test_bad_background_files(tmp_path):
    path, _ = _powerlaw_bkg(tmp_path, 2.0, header={"FOVALIGN": "GALACTIC"})
    with pytest.raises(IRFError, match=r"FOVALIGN = 'GALACTIC' in HDU 'BACKGROUND' of .*bkg.fits"):
        Background3D.read(path, "BACKGROUND")
    path, _ = _powerlaw_bkg(tmp_path, 2.0, unit="m2")
    with pytest.raises(IRFError, match=r"column 'BKG' in HDU 'BACKGROUND' of .*bkg.fits has unit 'm2'"):
        Background3D.read(path, "BACKGROUND")
    path, _ = _powerlaw_bkg(tmp_path, 2.0)
    broken = copy_hdu_without_column(path, "BACKGROUND", "BKG", tmp_path / "nobkg.fits")
    with pytest.raises(IRFError, match=r"column 'BKG' or 'BGD' missing in HDU 'BACKGROUND' of .*nobkg.fits"):
        Background3D.read(broken, "BACKGROUND")
    with pytest.raises(IRFError, match="energy_edges must be 1-D with at least 2 values"):
        Background3D.read(path, "BACKGROUND").integrate_energy([1.0], 0.0, 0.0)


@pytest.mark.gammapy
def test_legacy_hess_longitude_flip_as_gammapy(hess_datastore_dir, cta_datastore_dir):
    """Old H.E.S.S. files (SASH writer, HDUVERS 0.2) get a reversed fov_lon, like Gammapy's
    REVERSE_LON_RADEC; CTA files do not."""
    from gammapy.data import DataStore as GammapyDataStore

    gbkg = GammapyDataStore.from_dir(hess_datastore_dir).obs(23523).bkg
    assert gbkg.fov_alignment.value == "REVERSE_LON_RADEC"
    bkg = DataStore(hess_datastore_dir).observation(23523).bkg
    assert bkg.reverse_lon and bkg.fov_alignment == "RADEC"
    assert not DataStore(cta_datastore_dir).observation(110380).bkg.reverse_lon
    lon, lat = LON / 3, LAT / 3
    # Our lookup at (lon, lat) is the table at (-lon, lat): what Gammapy's map maker uses.
    expected = gbkg.evaluate(energy=1 * u.TeV, fov_lon=-lon * u.deg, fov_lat=lat * u.deg).to_value(BKG_UNIT)
    np.testing.assert_allclose(bkg.evaluate(1.0, lon, lat).to_value(BKG_UNIT), expected, rtol=1e-5)
