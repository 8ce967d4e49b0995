"""SkyGeometry: construction, coordinates, solid angles, masks, headers; cross-checked with Gammapy."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion

from xgamma.exceptions import GeometryError
from xgamma.geometry import SkyGeometry, energy_edges


@pytest.fixture
def geom() -> SkyGeometry:
    return SkyGeometry.create((0, 0), width=(10 * u.deg, 8 * u.deg), binsz=0.02 * u.deg,
                              energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 10))


def test_shape_and_repr(geom):
    assert geom.shape == (400, 500)
    assert geom.data_shape == (10, 400, 500)
    assert "500 x 400 pixels" in repr(geom)
    assert geom.frame == "galactic" and geom.projection == "CAR"


def test_energy_edges_log_spaced():
    edges = energy_edges(0.1 * u.TeV, 10 * u.TeV, 10)
    assert edges.unit == u.TeV and edges.size == 11
    np.testing.assert_allclose(np.diff(np.log10(edges.value)), 0.2, rtol=1e-12)
    with pytest.raises(GeometryError, match="0 < min < max"):
        energy_edges(10 * u.TeV, 1 * u.TeV, 3)


@pytest.mark.gammapy
@pytest.mark.parametrize("frame,center,proj", [("galactic", (0, 0), "CAR"), ("icrs", (83.63, 22.01), "TAN")])
def test_matches_gammapy_wcs(frame, center, proj):
    from gammapy.maps import WcsGeom

    ours = SkyGeometry.create(center, width=3 * u.deg, binsz=0.05 * u.deg, frame=frame, projection=proj)
    ref = WcsGeom.create(skydir=center, binsz=0.05, width=3, frame=frame, proj=proj)
    lon, lat = ours.lonlat()
    coord = ref.get_coord()
    # Same WCS, so pixel centres agree to float precision.
    np.testing.assert_allclose(((lon - coord.lon.value + 180) % 360) - 180, 0, atol=1e-9)
    np.testing.assert_allclose(lat, coord.lat.value, atol=1e-9)
    # Our solid angle is exact (spherical triangles); Gammapy's planar approximation agrees to ~1e-7.
    np.testing.assert_allclose(ours.solid_angle(), ref.solid_angle().to_value("sr"), rtol=1e-6)


def test_solid_angle_sums_to_analytic_car_area():
    geom = SkyGeometry.create((0, 0), width=(20 * u.deg, 10 * u.deg), binsz=0.1 * u.deg)
    # A CAR box of 20 deg x [-5, 5] deg covers dlon * (sin b2 - sin b1) steradians. Pixel sides
    # are taken as great-circle arcs while CAR rows are small circles: a relative error of order
    # (pixel size)^2 x tan(b) ~ 3e-7 here, hence rtol 1e-6.
    expected = np.radians(20) * 2 * np.sin(np.radians(5))
    np.testing.assert_allclose(geom.solid_angle().sum(), expected, rtol=1e-6)


def test_separation_and_region_mask(geom):
    center = SkyCoord(1, 0.5, unit="deg", frame="galactic")
    sep = geom.separation(center)
    expected = geom.skycoord().separation(center).deg
    np.testing.assert_allclose(sep, expected, atol=1e-10)
    mask = geom.region_mask(CircleSkyRegion(center.icrs, 0.3 * u.deg))
    np.testing.assert_array_equal(mask, sep < 0.3)


def test_slicing_keeps_world_positions(geom):
    sub = geom.sliced(slice(100, 150), slice(200, 260))
    np.testing.assert_allclose(sub.lonlat()[0], geom.lonlat(slice(100, 150), slice(200, 260))[0], atol=1e-12)
    cut = geom.cutout(SkyCoord(0, 0, unit="deg", frame="galactic"), 1 * u.deg)
    assert cut.shape == (50, 50)
    assert cut.center.separation(SkyCoord(0, 0, unit="deg", frame="galactic")).deg < 0.02


def test_header_round_trip(geom):
    back = SkyGeometry.from_header(geom.to_header(), energy_edges=geom.energy_edges)
    assert back == geom
    assert hash(back) == hash(geom)
    assert geom.to_image().nbins == 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"binsz": -1 * u.deg}, "binsz must be positive"),
        ({"frame": "fk4"}, "unknown frame"),
        ({"projection": "XYZ"}, "unknown projection"),
        ({"width": 0 * u.deg}, "width must be positive"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"width": 1 * u.deg, "binsz": 0.1 * u.deg} | kwargs
    with pytest.raises(GeometryError, match=match):
        SkyGeometry.create((0, 0), **args)


def test_geometry_is_an_immutable_value(geom):
    wcs = geom.wcs  # a copy: changing it does not change the geometry
    wcs.wcs.crpix = [1.0, 1.0]
    wcs.wcs.set()
    assert geom.wcs.wcs.crpix[0] != 1.0
    with pytest.raises(AttributeError, match="immutable"):
        geom.shape = (1, 1)
    assert not geom.with_energy([1, 10] * u.TeV).energy_edges.flags.writeable


def test_each_thread_has_its_own_wcs(geom):
    # astropy.wcs objects are not thread-safe (astropy issue 19174): a geometry shared by dask
    # worker threads gives each thread its own WCS, built from the same header text.
    import threading

    seen, results = {}, {}
    expected = geom.lonlat()

    def work(name):
        seen[name] = geom._wcs
        results[name] = [geom.lonlat() for _ in range(5)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(w) for w in seen.values()} | {id(geom._wcs)}) == 5
    for runs in results.values():
        for lon, lat in runs:
            np.testing.assert_array_equal(lon, expected[0])
            np.testing.assert_array_equal(lat, expected[1])


@pytest.mark.parametrize("projection", ["CAR", "TAN", "AIT"])
def test_pixel_world_transforms_are_astropy_s_for_every_input_shape(projection):
    geometry = SkyGeometry.create((10, 5), width=30 * u.deg, binsz=0.5 * u.deg, frame="galactic",
                                  projection=projection)
    wcs = geometry.wcs
    rng = np.random.default_rng(0)
    cases = [(0.3, 1.7), (rng.uniform(-5, 70, 7), rng.uniform(-5, 70, 7)),
             (rng.uniform(0, 60, (3, 4)), rng.uniform(0, 60, (3, 4))), (rng.uniform(0, 60, (3, 4)), 2.0),
             (np.zeros(0), np.zeros(0)), (np.array([np.nan, 1.0]), np.array([1.0, np.nan])), (np.arange(5), np.arange(5))]
    for x, y in cases:
        lon, lat = geometry.pixel_to_world(x, y)
        for ours, astropy_s in zip((lon, lat), wcs.wcs_pix2world(x, y, 0)):
            assert ours.shape == np.shape(astropy_s)
            np.testing.assert_array_equal(ours, astropy_s)
        for ours, astropy_s in zip(geometry.world_to_pixel(lon, lat), wcs.wcs_world2pix(lon, lat, 0)):
            assert ours.shape == np.shape(astropy_s)
            np.testing.assert_array_equal(ours, astropy_s)
