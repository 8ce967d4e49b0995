"""PSF kernels: normalisation, containment, sub-pixel integration, the mean PSF of real runs."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from scipy.special import ndtr

from xgamma.fit import make_psf_kernel, mean_psf, psf_kernel_for_geometry
from xgamma.fit.psf_kernel import kernel_at_offset
from xgamma.geometry import SkyGeometry
from xgamma.io.datastore import DataStore

E_BAND = [1, 10] * u.TeV


def test_gaussian_kernel_matches_pixel_integrals_and_containment(gaussian_profile):
    sigma = 0.03
    profile = gaussian_profile(sigma, E_BAND)
    # Containment radii of a 2-D Gaussian: sigma sqrt(-2 ln(1 - f)).
    assert profile.containment_radius(0.68)[0].value == pytest.approx(sigma * np.sqrt(-2 * np.log(0.32)), rel=1e-3)
    kernel = make_psf_kernel(profile, pixel_scale=0.02, max_radius=0.2 * u.deg)
    assert kernel.data.sum() == pytest.approx(1.0, abs=1e-12)
    # Unnormalised, the kernel holds the containment within its radius: 1 - exp(-r^2 / 2 sigma^2).
    assert kernel.containment[0] == pytest.approx(1 - np.exp(-0.5 * (0.2 / sigma) ** 2), abs=1e-4)
    # Pixel integrals of a Gaussian = products of normal-CDF differences (flat sky; tolerance:
    # midpoint rule with 8 sub-pixels per 0.67-sigma pixel, < 0.3 % of the peak).
    n = kernel.radius_pix
    edges = (np.arange(-n, n + 2) - 0.5) * 0.02 / sigma
    expected = np.outer(np.diff(ndtr(edges)), np.diff(ndtr(edges)))
    np.testing.assert_allclose(kernel.data[0], expected / expected.sum(), atol=3e-3 * expected.max())


def test_offset_stamp_is_centred_on_the_true_position(gaussian_profile):
    profile = gaussian_profile(0.04, E_BAND)
    stamp = kernel_at_offset(profile, n=8, size_x=0.02, size_y=0.02, dx=0.3, dy=-0.45, radius=0.16, oversample=8)
    yy, xx = np.indices(stamp.shape[1:]) - 8
    assert stamp.sum() == pytest.approx(1.0)
    assert (stamp[0] * xx).sum() == pytest.approx(0.3, abs=2e-3)
    assert (stamp[0] * yy).sum() == pytest.approx(-0.45, abs=2e-3)


@pytest.fixture(scope="module")
def cta_observations(cta_datastore_dir):
    store = DataStore(cta_datastore_dir)
    return [store.observation(i) for i in (110380, 111140, 111159)]


def test_mean_psf_of_one_run_in_a_narrow_band_equals_the_irf(cta_observations):
    obs = cta_observations[0]
    position = SkyCoord(0, 0, unit="deg", frame="galactic")
    offset = obs.pointing.separation(position)
    profile = mean_psf([obs], position, energy_edges=[0.99, 1.01] * u.TeV)
    expected = obs.psf.containment_radius(0.68, 1 * u.TeV, offset).to_value("deg")
    # A 2 % wide band around 1 TeV: the weighted mean is the 1 TeV PSF to < 0.5 %; the
    # radial grid (600 points to ~1 deg) resolves r68 to ~0.2 %.
    assert profile.containment_radius(0.68)[0].value == pytest.approx(float(expected), rel=5e-3)


def test_reference_kernels_image_and_cube(cta_observations):
    geom = SkyGeometry.create((0, 0), width=(10 * u.deg, 8 * u.deg), binsz=0.02 * u.deg, frame="galactic",
                              energy_edges=np.geomspace(0.1, 10, 11) * u.TeV)
    position = SkyCoord(0, 0, unit="deg", frame="galactic")
    image = psf_kernel_for_geometry(cta_observations, geom, position, image=True)
    cube = psf_kernel_for_geometry(cta_observations, geom, position)
    assert image.data.shape[0] == 1 and cube.data.shape[0] == 10
    np.testing.assert_allclose(cube.data.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    # Default radius: 99.9 % containment.
    assert cube.containment.min() == pytest.approx(0.999, abs=1e-3)
    # The CTA PSF narrows with energy; the band's r68 lies within the per-bin range.
    assert cube.r68[0] > cube.r68[-1]
    assert cube.r68.min() < image.r68[0] < cube.r68.max()
    # The r68 circle of the pixelised kernel holds ~68 % (pixelisation: +-3 %).
    n = image.radius_pix
    yy, xx = np.indices(image.data.shape[1:]) - n
    inside = np.hypot(xx, yy) * 0.02 <= image.r68[0].value
    assert image.data[0][inside].sum() == pytest.approx(0.68, abs=0.03)
