"""The analytic IRFs are self-consistent (normalisations, integrals) and validate their inputs."""

from __future__ import annotations

import dataclasses

import astropy.units as u
import numpy as np
import pytest
from scipy import integrate

from xgamma.exceptions import SimulationError
from xgamma.simulate import AnalyticIRF


@pytest.fixture(scope="module")
def irf() -> AnalyticIRF:
    return AnalyticIRF()


@pytest.mark.parametrize("energy, offset", [(0.1, 0.0), (1.0, 1.5), (30.0, 3.0)])
def test_psf_is_normalised(irf, energy, offset):
    # Integral of the density over the tangent plane (r dr dphi, r in rad) must be 1;
    # quad on a smooth integrand: 1e-8 tolerance.
    def integrand(r_rad):
        return irf.psf(energy * u.TeV, offset * u.deg, np.rad2deg(r_rad) * u.deg).value * 2 * np.pi * r_rad

    total, _ = integrate.quad(integrand, 0, np.deg2rad(3.0), limit=200)
    assert total == pytest.approx(1.0, abs=1e-8)
    # Containment is the integral of the density.
    rad = 0.1
    part, _ = integrate.quad(integrand, 0, np.deg2rad(rad), limit=200)
    assert irf.psf_containment(energy * u.TeV, offset * u.deg, rad * u.deg) == pytest.approx(part, rel=1e-8)


def test_psf_tail_fraction_matches_gadf_amplitude(irf):
    # GADF 3-Gauss: component i carries a fraction ~ AMPL_i * SIGMA_i**2 (AMPL_1 = 1).
    core, tail = irf.psf_sigmas(1 * u.TeV, 0 * u.deg)
    a2 = irf.psf_amplitude_2()
    assert a2 * tail**2 / (core**2 + a2 * tail**2) == pytest.approx(irf.psf_tail_fraction, rel=1e-12)


def test_psf_widens_with_offset_and_narrows_with_energy(irf):
    core_lo, _ = irf.psf_sigmas(0.1 * u.TeV, 0 * u.deg)
    core_hi, _ = irf.psf_sigmas(10 * u.TeV, 0 * u.deg)
    core_off, _ = irf.psf_sigmas(0.1 * u.TeV, 2 * u.deg)
    assert core_hi < core_lo < core_off


def test_aeff_shape(irf):
    # Half the plateau at the threshold energy, on axis; Gaussian fall-off with offset.
    assert irf.aeff(irf.aeff_threshold_tev * u.TeV, 0 * u.deg).to_value("m2") == pytest.approx(
        irf.aeff_max_m2 / 2, rel=1e-12)
    s = irf.aeff_offset_sigma(1 * u.TeV)
    ratio = irf.aeff(1 * u.TeV, s * u.deg) / irf.aeff(1 * u.TeV, 0 * u.deg)
    assert ratio.to_value("") == pytest.approx(np.exp(-0.5), rel=1e-12)


def test_edisp_migration_sums_to_one(irf):
    edges = irf.migra_edges()
    density = irf.edisp_migration_density(edges[:-1], edges[1:])
    # The table spans +-20 sigma: the missing probability is far below 1e-12.
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0, abs=1e-12)
    # Symmetric about migra = 1 (an edge of the grid): mirrored bins have equal density.
    assert np.allclose(density, density[::-1], rtol=1e-12)
    assert np.argmax(density) in (density.size // 2 - 1, density.size // 2)


def test_wide_biased_edisp_table():
    # 20 % width and +10 % bias (what energy-dispersion analyses are tested with): the table
    # widens to the mean +- 8 sigma in steps of sigma / 10 and still holds the whole Gaussian.
    irf = dataclasses.replace(AnalyticIRF(), edisp_sigma=0.2, edisp_bias=0.1)
    edges = irf.migra_edges()
    assert edges[0] == pytest.approx(0.1) and edges[-1] >= 1.1 + 1.6 and np.allclose(np.diff(edges), 0.02)
    prob = irf.edisp_migration_density(edges[:-1], edges[1:]) * np.diff(edges)
    # Below 0.1 lies 1.1 - 0.1 = 5 sigma of the Gaussian: 3e-7 of the probability.
    assert prob.sum() == pytest.approx(1.0, abs=1e-6)
    centres = 0.5 * (edges[1:] + edges[:-1])
    assert np.sum(prob * centres) == pytest.approx(1.1, abs=1e-4)


def test_bkg_energy_integral_matches_quadrature(irf):
    numeric, _ = integrate.quad(lambda e: irf.bkg_energy_rate(e * u.TeV).to_value("TeV-1 s-1 sr-1"),
                                0.3, 7.0)
    exact = irf.bkg_energy_integral(0.3 * u.TeV, 7.0 * u.TeV).to_value("s-1 sr-1")
    assert exact == pytest.approx(numeric, rel=1e-9)


def test_table_grids_cover_the_simulation_range(irf):
    e = irf.energy_edges()
    assert e[0].to_value("TeV") == pytest.approx(irf.energy_min_tev)
    assert e[-1].to_value("TeV") == pytest.approx(irf.energy_max_tev)
    assert irf.offset_edges()[-1].to_value("deg") == pytest.approx(irf.offset_max_deg)
    fov = irf.fov_edges().to_value("deg")
    assert fov[0] == pytest.approx(-irf.offset_max_deg) and fov[-1] == pytest.approx(irf.offset_max_deg)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("aeff_max_m2", -1.0, r"irf\.aeff_max_m2: must be positive"),
        ("bkg_norm", float("nan"), r"irf\.bkg_norm: must be finite"),
        ("psf_tail_fraction", 1.5, r"irf\.psf_tail_fraction"),
        ("edisp_sigma", 0.3, r"irf\.edisp_sigma: at most 0\.25"),
        ("edisp_bias", -0.3, r"irf\.edisp_bias: must be in \[-0\.2, 0\.2\]"),
        ("energy_min_tev", 500.0, r"irf\.energy_min_tev: must be below"),
    ],
)
def test_bad_irf_parameters(key, value, match):
    with pytest.raises(SimulationError, match=match):
        dataclasses.replace(AnalyticIRF(), **{key: value})
