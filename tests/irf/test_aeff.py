"""Effective area: reading, interpolation against Gammapy 2.1, analytic flat table, thresholds."""

from __future__ import annotations

import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from irf_files import table_hdu, write
from xgamma.exceptions import IRFError, UnitError
from xgamma.irf.aeff import EffectiveArea2D

# Grid covering below/inside/above both the energy and offset ranges (tests fill & extrapolation).
ENERGY = np.geomspace(0.005, 300, 57) * u.TeV
OFFSET = np.linspace(-0.1, 6.5, 41) * u.deg


@pytest.mark.gammapy
@pytest.mark.parametrize("which", ["cta", "hess"])
def test_matches_gammapy(which, cta_irf_file, hess_run_file, gammapy_irf):
    path, hdu = (cta_irf_file, "EFFECTIVE AREA") if which == "cta" else (hess_run_file, "AEFF")
    ref = gammapy_irf.EffectiveAreaTable2D.read(path, hdu=hdu)
    ours = EffectiveArea2D.read(path, hdu)
    expected = ref.evaluate(energy_true=ENERGY[:, None], offset=OFFSET[None, :]).to_value("m2")
    got = ours.evaluate(ENERGY[:, None], OFFSET[None, :]).to_value("m2")
    # Same nodes, scales and bilinear rule: agreement to float64 rounding (budget 1e-9 of the
    # maximum; the map-making requirement is 0.1 %). Zeros (outside the edges) must coincide.
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * expected.max())
    assert np.array_equal(got == 0, expected == 0)
    assert (got == 0).any() and (got > 0).any()


def test_fast_and_general_paths_agree(cta_irf_file):
    aeff = EffectiveArea2D.read(cta_irf_file, "EFFECTIVE AREA")
    e, o = np.broadcast_arrays(ENERGY.value[:, None], OFFSET.value[None, :])
    fast = aeff.evaluate(ENERGY[:, None, None], OFFSET[None, None, :]).value[:, 0, :]  # outer path
    general = aeff.evaluate(e.copy(), o.copy()).value  # pairwise path
    np.testing.assert_allclose(fast, general, rtol=1e-12, atol=0)


def test_plain_numbers_are_tev_and_deg(cta_irf_file):
    aeff = EffectiveArea2D.read(cta_irf_file, "EFFECTIVE AREA")
    assert aeff.evaluate(1.0, 0.5) == aeff.evaluate(1000 * u.GeV, 30 * u.arcmin)
    with pytest.raises(UnitError, match="offset: unit TeV is not convertible to deg"):
        aeff.evaluate(1 * u.TeV, 1 * u.TeV)


def _flat_aeff(tmp_path, *, unit="cm2", value=3.0e9, header=None):
    energy = np.geomspace(0.1, 100, 13)
    theta = np.linspace(0, 4, 5)
    hdu = table_hdu(
        {
            "ENERG_LO": (energy[:-1], "TeV"), "ENERG_HI": (energy[1:], "TeV"),
            "THETA_LO": (theta[:-1], "deg"), "THETA_HI": (theta[1:], "deg"),
            "EFFAREA": (np.full((theta.size - 1, energy.size - 1), value), unit),
        },
        "EFFECTIVE AREA",
        header,
    )
    return write(tmp_path / "aeff.fits", hdu)


def test_flat_table_is_flat_inside_edges_and_zero_outside(tmp_path):
    aeff = EffectiveArea2D.read(_flat_aeff(tmp_path), "EFFECTIVE AREA")
    # (edges are float32 in the file: stay 1e-4 inside them)
    inside = aeff.evaluate(np.geomspace(0.10001, 99.99, 30)[:, None], np.linspace(0, 3.9999, 17))
    # 3e9 cm2 = 3e5 m2 exactly; interpolating a constant gives the constant (float32 storage).
    np.testing.assert_allclose(inside.to_value("m2"), 3.0e5, rtol=1e-7)
    outside = aeff.evaluate([0.09, 101, 1.0, 1.0], [1.0, 1.0, -0.01, 4.01])
    assert np.all(outside.value == 0)


def test_thresholds(tmp_path, hess_run_file, cta_irf_file):
    aeff = EffectiveArea2D.read(_flat_aeff(tmp_path, header={"LO_THRES": 0.5, "HI_THRES": 50.0}), "EFFECTIVE AREA")
    assert aeff.lo_threshold == 0.5 * u.TeV and aeff.hi_threshold == 50 * u.TeV
    with fits.open(hess_run_file) as h:
        lo = h["AEFF"].header["LO_THRES"]
    assert EffectiveArea2D.read(hess_run_file, "AEFF").lo_threshold.to_value("TeV") == pytest.approx(lo)
    cta = EffectiveArea2D.read(cta_irf_file, "EFFECTIVE AREA")
    assert cta.lo_threshold is None and cta.hi_threshold is None


def test_bad_unit_and_missing_column(tmp_path):
    with pytest.raises(IRFError, match=r"column 'EFFAREA' in HDU 'EFFECTIVE AREA' of .*aeff.fits has unit 's'"):
        EffectiveArea2D.read(_flat_aeff(tmp_path, unit="s"), "EFFECTIVE AREA")
    from irf_files import copy_hdu_without_column

    src = _flat_aeff(tmp_path)
    broken = copy_hdu_without_column(src, "EFFECTIVE AREA", "THETA_HI", tmp_path / "broken.fits")
    with pytest.raises(IRFError, match=r"columns THETA_LO/THETA_HI \(axis 'offset'\) missing in HDU 'EFFECTIVE AREA'"):
        EffectiveArea2D.read(broken, "EFFECTIVE AREA")


def test_shape_mismatch(tmp_path):
    energy = np.geomspace(0.1, 100, 13)
    theta = np.linspace(0, 4, 5)
    hdu = table_hdu(
        {
            "ENERG_LO": (energy[:-1], "TeV"), "ENERG_HI": (energy[1:], "TeV"),
            "THETA_LO": (theta[:-1], "deg"), "THETA_HI": (theta[1:], "deg"),
            "EFFAREA": (np.ones((3, 12)), "m2"),
        },
        "EFFECTIVE AREA",
    )
    with pytest.raises(IRFError, match=r"column 'EFFAREA' .* shape \(3, 12\), incompatible with its axes \(12, 4\)"):
        EffectiveArea2D.read(write(tmp_path / "a.fits", hdu), "EFFECTIVE AREA")
