"""Coordinates you can trust (issue 10): selection by world coordinates is exact, or refused.

On the MSH 15-52 TAN map the 1-D ``lon``/``lat`` labels are off by up to 0.065 deg away from the
reference row and column, so ``da.sel(lon=229.9, lat=-57.8, method="nearest")`` used to return
a neighbouring pixel. ``da.sky.sel`` goes through the WCS for any projection; plain ``.sel`` is
exact on separable grids (CAR around the equator) and refuses the others.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion

from xgamma.exceptions import GeometryError, UnitError
from xgamma.geometry import SkyGeometry
from xgamma.geometry.indexes import EnergyIndex, ProjectedSkyAxisIndex, SkyAxisIndex
from xgamma.maps import make_map

N_POSITIONS = 1000

GEOMETRIES = {
    "CAR-galactic": dict(center=(0.0, 0.0), frame="galactic", projection="CAR"),
    "CAR-icrs-off-equator": dict(center=(83.63, 22.01), frame="icrs", projection="CAR"),
    "CAR-icrs-across-ra-0": dict(center=(0.5, 0.0), frame="icrs", projection="CAR"),
    "TAN-icrs-msh1552": dict(center=(228.53, -59.16), frame="icrs", projection="TAN"),
    "TAN-galactic": dict(center=(320.3, -1.2), frame="galactic", projection="TAN"),
    "ARC-icrs": dict(center=(329.7, -30.2), frame="icrs", projection="ARC"),
    "ARC-galactic": dict(center=(17.8, -52.2), frame="galactic", projection="ARC"),
}


def _map(name: str) -> xr.DataArray:
    spec = GEOMETRIES[name]
    geometry = SkyGeometry.create(spec["center"], width=(5 * u.deg, 4 * u.deg), binsz=0.02 * u.deg,
                                  frame=spec["frame"], projection=spec["projection"],
                                  energy_edges=np.geomspace(0.1, 10, 4) * u.TeV)
    return make_map(np.zeros(geometry.data_shape), geometry, name="counts")


def _random_positions(geometry: SkyGeometry, seed: int) -> tuple[SkyCoord, np.ndarray, np.ndarray]:
    """Random positions inside the map, given in the *other* frame, and their pixel (row, column)
    from astropy's high-level WCS API (positions within 1e-6 pixel of a border are dropped)."""
    rng = np.random.default_rng(seed)
    ny, nx = geometry.shape
    x, y = rng.uniform(-0.5, nx - 0.5, 3 * N_POSITIONS), rng.uniform(-0.5, ny - 0.5, 3 * N_POSITIONS)
    other = "icrs" if geometry.frame == "galactic" else "galactic"
    positions = geometry.wcs.pixel_to_world(x, y).transform_to(other)
    px, py = geometry.wcs.world_to_pixel(positions)
    clear = (np.abs((px + 0.5) % 1 - 0.5) > 1e-6) & (np.abs((py + 0.5) % 1 - 0.5) > 1e-6)
    positions, px, py = positions[clear][:N_POSITIONS], px[clear][:N_POSITIONS], py[clear][:N_POSITIONS]
    return positions, np.floor(py + 0.5).astype(int), np.floor(px + 0.5).astype(int)


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_sky_sel_agrees_with_the_wcs(name):
    da = _map(name)
    geometry = da.sky.geometry
    positions, row, column = _random_positions(geometry, seed=len(name))
    picked = da.sky.sel(positions)  # SkyCoord in the other frame
    assert picked.dims == ("energy", "position")
    np.testing.assert_array_equal(picked.pix_lat.values, row)
    np.testing.assert_array_equal(picked.pix_lon.values, column)
    # lon/lat numbers (deg) and Quantities in the map's frame; one position at a time.
    own = positions.transform_to(geometry.frame)
    lon, lat = own.spherical.lon.deg, own.spherical.lat.deg
    np.testing.assert_array_equal(da.sky.sel(lon=lon * u.deg, lat=(lat * u.deg).to(u.rad)).pix_lon.values, column)
    one = da.sky.sel(lon=lon[0], lat=lat[0])
    assert one.dims == ("energy",) and (int(one.pix_lat), int(one.pix_lon)) == (row[0], column[0])
    # A cutout has its own WCS: selections follow it.
    cut = da.isel(lat=slice(20, 150), lon=slice(30, 200))
    inside = (row >= 20) & (row < 150) & (column >= 30) & (column < 200)
    np.testing.assert_array_equal(cut.sky.sel(positions[inside]).pix_lon.values, column[inside])
    with pytest.raises(GeometryError, match="is outside the map"):
        cut.sky.sel(positions[~inside][:3])


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_plain_sel_is_exact_or_refused(name):
    da = _map(name)
    geometry = da.sky.geometry
    positions, row, column = _random_positions(geometry, seed=2 * len(name))
    own = positions.transform_to(geometry.frame)
    lon = xr.DataArray(own.spherical.lon.deg, dims="position")
    lat = xr.DataArray(own.spherical.lat.deg, dims="position")
    if not geometry.separable:
        assert isinstance(da.xindexes["lon"], ProjectedSkyAxisIndex)
        for kwargs in ({"lon": lon, "lat": lat, "method": "nearest"}, {"lat": float(lat[0])},
                       {"lon": slice(float(lon.min()), float(lon.max()))}):
            with pytest.raises(GeometryError, match=r"use da.sky.sel\(lon=..., lat=...\)|Use da.sky.sel"):
                da.sel(**kwargs)
        return
    assert isinstance(da.xindexes["lon"], SkyAxisIndex)
    # Exact: the labels are the world coordinates of every pixel; any longitude branch.
    picked = da.sel(lon=lon + 360.0 * np.sign(0.5 - np.arange(lon.size) % 2), lat=lat, method="nearest")
    np.testing.assert_array_equal(picked.pix_lon.values, column)
    np.testing.assert_array_equal(picked.pix_lat.values, row)
    np.testing.assert_array_equal(da.sel(lon=lon * u.deg, lat=lat).pix_lat.values, row)  # method None: containing pixel
    with pytest.raises(GeometryError, match=r"outside the map \(lat from"):
        da.sel(lat=float(lat.max()) + 5.0, method="nearest")


def test_msh_15_52_example():
    da = _map("TAN-icrs-msh1552")
    pixel = da.sky.geometry.wcs.world_to_pixel(SkyCoord(229.9, -57.8, unit="deg"))
    picked = da.sky.sel(lon=229.9, lat=-57.8)
    assert (int(picked.pix_lon), int(picked.pix_lat)) == tuple(int(np.floor(p + 0.5)) for p in pixel)
    with pytest.raises(GeometryError, match=r"Use da.sky.sel\(lon=..., lat=...\)"):
        da.sel(lon=229.9, lat=-57.8, method="nearest")
    # Exact coordinates of every pixel, as maps.
    lon, lat = da.sky.lonlat()
    assert lon.dims == ("lat", "lon") and lon.attrs["units"] == "deg"
    world = da.sky.geometry.wcs.pixel_to_world(12, 150)
    assert float(lon[150, 12]) == pytest.approx(world.ra.deg) and float(lat[150, 12]) == pytest.approx(world.dec.deg)
    assert "not exact elsewhere" in da.lon.attrs["long_name"]


def test_energy_selection_converts_units_or_refuses():
    da = _map("CAR-galactic")
    assert isinstance(da.xindexes["energy"], EnergyIndex)
    same = da.sel(energy=1.0, method="nearest").energy
    assert float(da.sel(energy=1000 * u.GeV, method="nearest").energy) == float(same)
    assert float(da.sel(energy=1.6 * u.erg, method="nearest").energy) == float(same)  # 0.9986 TeV
    band = da.sel(energy=slice(300 * u.GeV, 3 * u.TeV))
    np.testing.assert_allclose(band.energy.values, [1.0])  # bin centres 0.215, 1.0, 4.64 TeV
    with pytest.raises(UnitError, match=r"\.sel\(energy=...\): .* is not convertible to TeV"):
        da.sel(energy=1 * u.deg, method="nearest")


def test_outputs_keep_the_indexes(tmp_path):
    from xgamma.io.fits_maps import read_maps
    from xgamma.io.zarr_maps import read_zarr
    from xgamma.makers import squash_energy

    da = _map("TAN-icrs-msh1552").chunk({"lat": 50})
    maps = xr.Dataset({"counts": da, "background": da + 1.0})
    products = {
        "arithmetic": maps.counts * 2 + maps.background,
        "squashed": squash_energy(maps)["counts"],
        "cutout": da.sky.cutout(SkyCoord(228.53, -59.16, unit="deg"), 1 * u.deg),
        "solid_angle": da.sky.solid_angle(),
        "separation": da.sky.separation(SkyCoord(228.53, -59.16, unit="deg")),
        "mask": da.sky.region_mask(CircleSkyRegion(SkyCoord(228.53, -59.16, unit="deg"), 0.3 * u.deg)),
    }
    from xgamma.estimators.ts_map import ts_map
    from xgamma.maps import with_units

    exposure = with_units(da + 1e6, "m2 s", name="exposure")
    from xgamma.background import RingBackground, make_exclusion_mask
    from xgamma.estimators.significance import significance_maps

    ring = RingBackground(exclusion=make_exclusion_mask(da.sky.geometry.to_image(), None), r_in="0.3 deg",
                          width="0.3 deg").run(maps)
    products["ring_alpha"] = ring["alpha"]
    products["significance"] = significance_maps(ring, correlation_radius="0.1 deg")["significance"]
    products["ts_map"] = ts_map(xr.Dataset({"counts": da, "background": da + 1.0, "exposure": exposure}),
                                psf=None, selection_optional=())["ts"]
    da.sky.to_zarr(tmp_path / "m.zarr")
    products["zarr"] = read_zarr(tmp_path / "m.zarr")["counts"]
    da.sky.to_fits(tmp_path / "m.fits")
    products["fits"] = read_maps(tmp_path / "m.fits")["counts"]
    plain = xr.open_zarr(tmp_path / "m.zarr", consolidated=False)
    assert "lon" not in plain.coords  # only the exact description (WCS + pixel indices) is stored
    for name, product in products.items():
        assert isinstance(product.xindexes["lon"], ProjectedSkyAxisIndex), name
        with pytest.raises(GeometryError):
            product.sel(lon=228.5, lat=-59.1, method="nearest")
