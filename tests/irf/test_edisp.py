"""Energy dispersion: reading (ETRUE_* columns of CTA 1DC, ENERG_* of H.E.S.S.) and evaluation
against Gammapy 2.1."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from xgamma.irf.edisp import EnergyDispersion2D

ENERGY = np.geomspace(0.02, 80, 9) * u.TeV
OFFSET = np.array([0.0, 0.6, 1.7, 2.4]) * u.deg
MIGRA = np.linspace(0.0, 3.2, 65)


@pytest.mark.gammapy
@pytest.mark.parametrize("which", ["cta", "hess"])
def test_matches_gammapy(which, cta_irf_file, hess_run_file, gammapy_irf):
    path, hdu = (cta_irf_file, "ENERGY DISPERSION") if which == "cta" else (hess_run_file, "EDISP")
    ref = gammapy_irf.EnergyDispersion2D.read(path, hdu=hdu)
    ours = EnergyDispersion2D.read(path, hdu)
    e, o, m = ENERGY[:, None, None], OFFSET[None, :, None], MIGRA[None, None, :]
    expected = ref.evaluate(energy_true=e, offset=o, migra=m).to_value("")
    got = ours.evaluate(e, o, m).to_value("")
    # Same trilinear rule on the same nodes: float64 rounding.
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12 * expected.max())
    assert (got > 0).any() and (got == 0).any()


def test_axes_and_normalisation(cta_irf_file, hess_run_file):
    cta = EnergyDispersion2D.read(cta_irf_file, "ENERGY DISPERSION")
    assert [a.name for a in cta.axes] == ["energy_true", "migra", "offset"]
    assert cta.axes[0].unit == "TeV" and cta.axes[0].nbin == 500  # from ETRUE_LO/HI
    # H.E.S.S. tables are migration densities: their bin sums are 1 (1e-6, float32), so the
    # interpolated density integrates to 1 over migra within 1 % (trapezoid on a fine grid;
    # between the tabulated energies/offsets the interpolation mixes normalised columns).
    # (The CTA 1DC matrix is not normalised, so it is not used here.)
    hess = EnergyDispersion2D.read(hess_run_file, "EDISP")
    migra = np.linspace(hess.axes[1].edges[0], hess.axes[1].edges[-1], 8001)
    for energy, offset in [(1.0, 0.5), (7.0, 1.2)]:
        total = np.trapezoid(hess.evaluate(energy * u.TeV, offset * u.deg, migra).value, migra)
        assert total == pytest.approx(1.0, abs=0.01)


@pytest.mark.gammapy
@pytest.mark.parametrize("which", ["cta", "hess"])
def test_kernel_matches_gammapy(which, cta_irf_file, hess_run_file, gammapy_irf):
    from gammapy.maps import MapAxis

    path, hdu = (cta_irf_file, "ENERGY DISPERSION") if which == "cta" else (hess_run_file, "EDISP")
    true_edges, reco_edges = np.geomspace(0.05, 20, 27) * u.TeV, np.geomspace(0.1, 10, 11) * u.TeV
    ours = EnergyDispersion2D.read(path, hdu)
    ref = gammapy_irf.EnergyDispersion2D.read(path, hdu=hdu)
    for offset in (0.3, 1.1) * u.deg:
        expected = ref.to_edisp_kernel(
            offset, energy_axis_true=MapAxis.from_edges(true_edges, name="energy_true", interp="log"),
            energy_axis=MapAxis.from_edges(reco_edges, name="energy", interp="log")).pdf_matrix
        got = ours.kernel(true_edges, reco_edges, offset)
        # The same construction (migration cumulative at the true bin centre): float64 rounding.
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        assert got.sum() > 10 and (got.sum(axis=1) <= 1 + 1e-12).all()


def test_kernel_of_a_narrow_gaussian_migration_is_diagonal(tmp_path):
    # Analytic case: the simulator's 1 % Gaussian migration, far narrower than bins of 0.2 dex,
    # keeps almost every photon in its own bin (a bin edge is >= ln(10^0.1) / 0.01 = 11 sigma
    # from the bin centre, where the kernel takes the true energy).
    from astropy.io import fits

    from xgamma.simulate import AnalyticIRF
    from xgamma.simulate.writer import make_irf_hdus

    edisp_hdu = make_irf_hdus(AnalyticIRF(), obs_id=1)[2]  # aeff, psf, edisp, bkg
    fits.HDUList([fits.PrimaryHDU(), edisp_hdu]).writeto(tmp_path / "irf.fits")
    edisp = EnergyDispersion2D.read(tmp_path / "irf.fits", edisp_hdu.name)
    edges = np.geomspace(0.1, 10, 11) * u.TeV
    kernel = edisp.kernel(edges, edges, 1.0 * u.deg)
    np.testing.assert_allclose(np.diag(kernel), 1.0, atol=1e-6)
    np.testing.assert_allclose(kernel.sum(axis=1), 1.0, atol=1e-6)
