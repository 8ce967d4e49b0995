"""Simulated events follow the analytic IRFs and sky models (statistical tests, no Gammapy).

Every expectation below is derived from the analytic formulas of `AnalyticIRF` and the source
specs with scipy quadrature, independently of the sampling code. Statistical tests use
thresholds of p > 1e-3 or 4 sigma, so a correct simulator fails them about once per thousand
seeds; the seeds are fixed, so the outcome is deterministic.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from scipy import integrate, stats

from xgamma.simulate import AnalyticIRF, gaussian_source, point_source, simulate_datastore

IRF = AnalyticIRF()
POINTING = SkyCoord(120.0, -40.0, unit="deg")


def _events(path):
    data = fits.getdata(path / "data" / "obs_000001.fits", "EVENTS")
    header = fits.getheader(path / "data" / "obs_000001.fits", "EVENTS")
    coords = SkyCoord(data["RA"].astype(float), data["DEC"].astype(float), unit="deg")
    return coords, data["ENERGY"].astype(float), header


def test_background_counts_match_bkg_irf(tmp_path):
    path = simulate_datastore(tmp_path / "bkg", observations=[POINTING], livetime=6 * u.h, seed=11,
                              energy_min=0.1 * u.TeV, energy_max=100 * u.TeV, max_offset=5 * u.deg)
    coords, energy, header = _events(path)
    ontime = header["ONTIME"]  # GADF: background rates are per observation time
    offset = coords.separation(POINTING).deg
    e_edges = np.geomspace(0.1, 100, 7)
    t_edges = np.arange(6.0)
    counts, _, _ = np.histogram2d(energy, offset, bins=[e_edges, t_edges])

    def solid_angle_weight(t1, t2):  # sr-weighted radial profile, exact on the sphere
        f = lambda t: IRF.bkg_offset_profile(t * u.deg) * np.sin(np.deg2rad(t)) * 2 * np.pi  # noqa: E731
        return integrate.quad(f, t1, t2)[0] * np.pi / 180

    rate = np.array([IRF.bkg_energy_integral(a * u.TeV, b * u.TeV).to_value("s-1 sr-1")
                     for a, b in zip(e_edges[:-1], e_edges[1:])])
    omega = np.array([solid_angle_weight(a, b) for a, b in zip(t_edges[:-1], t_edges[1:])])
    expected = ontime * rate[:, None] * omega[None, :]
    assert expected.sum() > 1e4  # enough events for a meaningful test
    # Pearson chi2 on cells with >= 5 expected events.
    ok = expected >= 5
    chi2 = np.sum((counts[ok] - expected[ok]) ** 2 / expected[ok])
    p_value = stats.chi2.sf(chi2, ok.sum())
    print(f"background: {counts.sum():.0f} events, expected {expected.sum():.1f}, chi2 {chi2:.1f}/{ok.sum()}")
    assert p_value > 1e-3, (chi2, ok.sum())
    assert abs(counts.sum() - expected.sum()) < 4 * np.sqrt(expected.sum())


@pytest.fixture(scope="module")
def point_only(tmp_path_factory):
    """A bright point source at 0.7 deg from the pointing, no background."""
    position = POINTING.directional_offset_by(45 * u.deg, 0.7 * u.deg)
    src = point_source(position=position, flux=1e-9 * u.Unit("cm-2 s-1"), index=2.2, name="p")
    path = simulate_datastore(tmp_path_factory.mktemp("pt") / "s", observations=[POINTING],
                              sources=[src], background=False, livetime=20 * u.min, seed=5,
                              energy_min=0.1 * u.TeV, energy_max=20 * u.TeV)
    return src, path, position


def _rate_density(src, offset_deg):
    """Differential event rate dN/dE dt (s-1 TeV-1) of a source at a fixed offset."""
    return lambda e: src.spectral(e * u.TeV).to_value("cm-2 s-1 TeV-1") * IRF.aeff(
        e * u.TeV, offset_deg * u.deg).to_value("cm2")


def test_point_source_counts_and_spectrum(point_only):
    src, path, _ = point_only
    coords, energy, header = _events(path)
    density = _rate_density(src, 0.7)
    # Energy dispersion is 1 % wide: it moves < 1e-3 of the events across 0.1 / 20 TeV.
    mu = header["LIVETIME"] * integrate.quad(density, 0.1, 20, limit=200, points=[0.2, 1, 5])[0]
    assert mu > 3000
    assert abs(energy.size - mu) < 4 * np.sqrt(mu), (energy.size, mu)
    # Energies follow dnde x aeff: Kolmogorov-Smirnov against the numeric CDF.
    grid = np.geomspace(0.1, 20, 2001)
    pdf = density(grid)
    cdf = np.concatenate([[0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    assert stats.kstest(energy, lambda x: np.interp(x, grid, cdf)).pvalue > 1e-3


def _psf_second_moment(energy_tev, offset_deg):
    """E[r**2] of the PSF (deg2): 2 x the per-axis variance of the two-Gaussian mixture."""
    core, tail = IRF.psf_sigmas(energy_tev * u.TeV, offset_deg * u.deg)
    f = IRF.psf_tail_fraction
    return 2 * ((1 - f) * core**2 + f * tail**2)


def test_point_source_psf_spread(point_only):
    src, path, position = point_only
    coords, energy, _ = _events(path)
    r2 = coords.separation(position).deg ** 2
    # Reconstructed energy stands in for the true one: 1 % migration shifts sigma by 0.4 %.
    ratio = r2 / _psf_second_moment(energy, 0.7)
    error = ratio.std() / np.sqrt(ratio.size)
    assert abs(ratio.mean() - 1) < 4 * error, (ratio.mean(), error)
    # And the 68 % containment radius at 1 TeV holds 68 % of the 0.9-1.1 TeV events.
    sel = (energy > 0.9) & (energy < 1.1)
    r68 = _containment_radius(0.68, 1.0, 0.7)
    frac = np.mean(np.sqrt(r2[sel]) < r68)
    assert abs(frac - 0.68) < 4 * np.sqrt(0.68 * 0.32 / sel.sum()) + 0.01  # +0.01: energy spread


def _containment_radius(fraction, energy_tev, offset_deg):
    from scipy.optimize import brentq

    return brentq(lambda r: IRF.psf_containment(energy_tev * u.TeV, offset_deg * u.deg, r * u.deg)
                  - fraction, 1e-4, 2.0)


def test_gaussian_source_extension(tmp_path):
    position = POINTING.directional_offset_by(0 * u.deg, 0.5 * u.deg)
    src = gaussian_source(position=position, flux=2e-9 * u.Unit("cm-2 s-1"), index=2.0,
                         sigma=0.2 * u.deg, name="g")
    path = simulate_datastore(tmp_path / "g", observations=[POINTING], sources=[src], background=False,
                              livetime=20 * u.min, seed=9, energy_min=0.3 * u.TeV, energy_max=30 * u.TeV)
    coords, energy, _ = _events(path)
    r2 = coords.separation(position).deg ** 2
    # E[r2] = 2 sigma_src**2 + PSF moment (offset dependence of the PSF is 5 % over 0.2 deg: use 0.5).
    expected = 2 * 0.2**2 + _psf_second_moment(energy, 0.5)
    ratio = r2 / expected
    error = ratio.std() / np.sqrt(ratio.size)
    assert ratio.size > 1000
    assert abs(ratio.mean() - 1) < 4 * error + 0.01, (ratio.mean(), error)
