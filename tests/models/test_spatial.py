"""Spatial models: per-pixel flux fractions, sub-pixel sources, normalisation, frames."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from scipy.special import erf

from xgamma.geometry import SkyGeometry
from xgamma.models import Disk, Gaussian, PixelGrid, Point, Shell, Template


@pytest.fixture(scope="module")
def geom():
    # 0.02 deg CAR pixels around the Galactic Centre, as the reference analysis.
    return SkyGeometry.create((0, 0), width=2 * u.deg, binsz=0.02 * u.deg, frame="galactic")


@pytest.fixture(scope="module")
def grid(geom):
    return PixelGrid.from_geometry(geom)


def test_point_off_centre_puts_flux_in_its_pixel_with_exact_centroid(geom, grid):
    lon, lat = 0.0137, -0.0262  # inside a pixel, away from its centre
    frac = Point(lon_0=lon, lat_0=lat, frame="galactic").integrate_geom(grid)
    assert frac.sum() == pytest.approx(1.0, abs=1e-12)
    x, y = grid.to_pixel(lon, lat)
    iy, ix = np.unravel_index(np.argmax(frac), frac.shape)
    assert (iy, ix) == (round(y), round(x))  # the largest share is in the pixel holding the source
    yy, xx = np.indices(frac.shape)
    # Bilinear weights: the flux centroid is the source position to float precision.
    assert (frac * xx).sum() == pytest.approx(x, abs=1e-9)
    assert (frac * yy).sum() == pytest.approx(y, abs=1e-9)


def test_point_outside_map_gives_zero(grid):
    assert Point(lon_0=5.0, lat_0=0.0, frame="galactic").integrate_geom(grid).sum() == 0.0


@pytest.mark.parametrize("sigma", [0.005, 0.01, 0.1])
def test_gaussian_integrates_to_one_and_matches_erf_per_pixel(grid, sigma):
    lon0, lat0 = 0.0071, 0.0043  # off the pixel centre
    g = Gaussian(lon_0=lon0, lat_0=lat0, sigma=sigma, frame="galactic")
    frac = g.integrate_geom(grid)
    # sigma = 0.005 deg is a quarter of a pixel: oversampling must still integrate it.
    assert frac.sum() == pytest.approx(1.0, rel=1e-3)
    # Analytic per-pixel integral on the flat sky near (0, 0): product of erf differences.
    # Small-angle and CAR distortion at |b| < 0.5 deg are < 1e-4 relative.
    x0, y0 = grid.to_pixel(lon0, lat0)
    s_pix = sigma / 0.02
    iy, ix = int(round(y0)), int(round(x0))
    edges = np.arange(-3, 4)

    def cdf(t):
        return 0.5 * (1 + erf(t / (np.sqrt(2) * s_pix)))

    px = cdf(ix + edges + 0.5 - x0) - cdf(ix + edges - 0.5 - x0)
    py = cdf(iy + edges + 0.5 - y0) - cdf(iy + edges - 0.5 - y0)
    expected = np.outer(py, px)
    got = frac[iy - 3:iy + 4, ix - 3:ix + 4]
    # Midpoint-rule oversampling: per-pixel error ~1e-3 of the peak pixel.
    np.testing.assert_allclose(got, expected, atol=2e-3 * expected.max())


@pytest.mark.parametrize("model", [
    Disk(lon_0=0.1, lat_0=-0.05, r_0=0.3, frame="galactic"),
    Disk(lon_0=0.0, lat_0=0.0, r_0=0.015, frame="galactic"),  # smaller than a pixel
    Shell(lon_0=0.0, lat_0=0.1, radius=0.3, width=0.1, frame="galactic"),
], ids=["disk", "small-disk", "shell"])
def test_extended_models_integrate_to_one(grid, model):
    frac = model.integrate_geom(grid)
    # Sub-pixel midpoint sums of sharp edges: 0.5 % is the resolution of the edge sampling.
    assert frac.sum() == pytest.approx(1.0, rel=5e-3)
    yy, xx = np.indices(frac.shape)
    x0, y0 = grid.to_pixel(model.lon_0.value, model.lat_0.value)
    assert (frac * xx).sum() / frac.sum() == pytest.approx(x0, abs=0.02)


def test_shell_profile_is_limb_brightened():
    s = Shell(radius=1.0, width=0.2)
    inner, rim = Shell.evaluate(np.array([0.0, 1.0]), 1.0, 0.2)
    assert rim > 2 * inner  # the line of sight through the rim is longest
    assert Shell.evaluate(np.array([1.3]), 1.0, 0.2)[0] == 0.0
    assert s.evaluation_radius() == pytest.approx(1.2)


def test_model_in_other_frame_is_transformed(geom, grid):
    c = SkyCoord(0.05, -0.03, unit="deg", frame="galactic").icrs
    p_icrs = Point(lon_0=c.ra.deg, lat_0=c.dec.deg, frame="icrs")
    p_gal = Point(lon_0=0.05, lat_0=-0.03, frame="galactic")
    np.testing.assert_allclose(p_icrs.integrate_geom(grid), p_gal.integrate_geom(grid), atol=1e-6)


def test_template_from_map_returns_its_normalised_image(geom, grid):
    from xgamma.maps import make_map

    g = Gaussian(lon_0=0.2, lat_0=0.1, sigma=0.1, frame="galactic")
    sb = g.integrate_geom(grid) / grid.solid_angle  # surface brightness, sr-1
    t = Template.from_map(make_map(sb[None], geom.with_energy(u.Quantity([1, 10], "TeV")), name="t"))
    frac = t.integrate_geom(grid)
    # Same grid: the template's pixel values come back; CAR pixel areas vary by < 1e-4 within
    # 1 deg of the equator, the normalisation uses the reference-pixel area.
    np.testing.assert_allclose(frac, g.integrate_geom(grid), rtol=2e-4, atol=1e-9)


@pytest.mark.parametrize("parameter", ["r_0", "lon_0"])
def test_sharp_disk_pixel_integrals_are_continuous_in_its_parameters(parameter):
    # A disk with a sharp edge (edge_width 0, as xgamma.simulate draws disks) on 0.04 deg pixels:
    # the sub-pixel sampling must not make the pixel integrals jump as the edge crosses sub-pixel
    # centres (the likelihood was a staircase on which MIGRAD failed in most disk pull fits).
    geom = SkyGeometry.create((0, 0), width=1.6 * u.deg, binsz=0.04 * u.deg, frame="galactic")
    grid = PixelGrid.from_geometry(geom)
    values = np.linspace(0.15, 0.152, 41) if parameter == "r_0" else np.linspace(0.0, 0.002, 41)
    start = {"lon_0": 0.003, "lat_0": 0.001, "r_0": 0.15}
    images = np.array([Disk(frame="galactic", edge_width=0.0, **{**start, parameter: v}).integrate_geom(grid)
                       for v in values])
    # Moving the edge by 5e-5 deg moves ~(0.04 deg x 5e-5 deg) / (pi 0.15^2 deg^2) = 3e-5 of the
    # flux across a pixel's edge segment (measured: 3e-5 for r_0, 7e-5 for lon_0). Before the fix,
    # whole sub-pixels switched at once (6e-4 for r_0, 1.3e-3 for lon_0).
    steps = np.abs(np.diff(images, axis=0)).max(axis=(1, 2))
    assert steps.max() < 1.5e-4
    # The total flux stays 1 to well below the old 0.3 % steps.
    assert np.abs(images.sum(axis=(1, 2)) - 1).max() < 5e-4


@pytest.mark.parametrize("lon_0, r_0", [(0.0, 0.1), (0.007, 0.1002), (0.013, 0.061)])
def test_sharp_disk_pixel_fractions_are_the_areas_inside_the_disk(lon_0, r_0):
    # Brute force: the fraction of 40 x 40 sub-points of each 0.02 deg pixel inside the circle (flat
    # sky). Each sub-pixel of the model counts by the area of a square cut by the edge at the
    # edge's angle: per pixel within 0.5 % of the largest fraction (the brute force's own staircase
    # is ~0.15 %, the straight-edge approximation's error s^2 / (8 r_0) per sub-pixel of side s
    # shows in pixels the edge barely touches). The old linear ramp, exact only for edges along the
    # axes, was 1.2-1.8 % off.
    geom = SkyGeometry.create((0, 0), width=0.4 * u.deg, binsz=0.02 * u.deg, frame="galactic")
    sub, pixel = 40, 0.02
    ny, nx = geom.shape
    y, x = (np.indices((ny * sub, nx * sub)) + 0.5) * pixel / sub
    x0, y0 = (np.ravel(c)[0] * pixel + pixel / 2 for c in geom.world_to_pixel(np.array([lon_0]), np.array([0.0])))
    inside = ((x - x0) ** 2 + (y - y0) ** 2 < r_0**2).astype(float)
    expected = inside.reshape(ny, sub, nx, sub).sum(axis=(1, 3)) / inside.sum()
    fractions = Disk(lon_0=lon_0, lat_0=0.0, r_0=r_0, edge_width=0.0, frame="galactic").integrate_geom(geom)
    np.testing.assert_allclose(fractions, expected, rtol=0, atol=5e-3 * expected.max())
    assert fractions.sum() == pytest.approx(1.0, abs=2e-4)
