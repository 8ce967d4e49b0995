"""FITS and zarr round trips of sky maps; the files are readable by Gammapy and astropy."""

from __future__ import annotations

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from astropy.wcs import WCS

from xgamma.exceptions import DataStoreError, GeometryError
from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.io.fits_maps import read_maps, write_maps
from xgamma.io.zarr_maps import read_zarr, write_zarr
from xgamma.maps import make_map, map_geometry


@pytest.fixture
def maps() -> xr.Dataset:
    geom = SkyGeometry.create((0, 0), width=(3 * u.deg, 2 * u.deg), binsz=0.05 * u.deg,
                              energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 3))
    rng = np.random.default_rng(0)
    counts = make_map(da.from_array(rng.poisson(3, geom.data_shape).astype(float), chunks=(3, 16, 16)), geom,
                      name="counts", units="")
    exposure = make_map(da.from_array(rng.uniform(1e9, 2e9, geom.data_shape), chunks=(3, 16, 16)), geom,
                        name="exposure", units="m2 s")
    return xr.Dataset({"counts": counts, "exposure": exposure})


def test_fits_round_trip_is_identical(maps, tmp_path):
    path = write_maps(maps, tmp_path / "maps.fits")
    back = read_maps(path)
    xr.testing.assert_identical(back[["counts", "exposure"]].transpose("energy", "lat", "lon"), maps.compute())
    assert back.exposure.attrs["units"] == "m2 s"


@pytest.mark.gammapy
def test_fits_readable_by_gammapy(maps, tmp_path):
    from gammapy.maps import Map

    path = write_maps(maps, tmp_path / "maps.fits")
    exposure = Map.read(path, hdu="EXPOSURE")
    assert exposure.unit == u.Unit("m2 s")
    np.testing.assert_allclose(exposure.geom.axes["energy"].edges.to_value("TeV"),
                               maps.energy_min.values.tolist() + [10.0], rtol=1e-12)
    np.testing.assert_array_equal(exposure.data, maps.exposure.values)
    lon, lat = map_geometry(maps).lonlat()
    np.testing.assert_allclose(exposure.geom.get_coord().lat.value[0], lat, atol=1e-10)


def test_sliced_map_writes_its_own_wcs(maps, tmp_path):
    cut = maps.counts.isel(lat=slice(10, 30), lon=slice(5, 45))
    path = write_maps(cut, tmp_path / "cut.fits")
    header = fits.getheader(path, "COUNTS")
    wcs = WCS(header).celestial
    lon, lat = wcs.wcs_pix2world(0, 0, 0)
    full_lon, full_lat = map_geometry(maps).wcs.wcs_pix2world(5, 10, 0)
    assert np.isclose(lon, full_lon) and np.isclose(lat, full_lat)
    assert header["NAXIS1"] == 40 and header["NAXIS2"] == 20


def test_strided_selection_has_no_wcs(maps):
    with pytest.raises(GeometryError, match="not contiguous"):
        map_geometry(maps.counts.isel(lon=slice(None, None, 2)))


def test_zarr_round_trip_stays_lazy(maps, tmp_path):
    write_zarr(maps, tmp_path / "maps.zarr")
    back = read_zarr(tmp_path / "maps.zarr")
    assert isinstance(back.counts.data, da.Array)
    xr.testing.assert_identical(back.compute(), maps.compute())
    assert map_geometry(back) == map_geometry(maps)


def test_failed_write_leaves_nothing(maps, tmp_path):
    bad = maps.copy()
    bad["exposure"] = bad.exposure.copy(data=bad.exposure.data.map_blocks(_explode, dtype=float))
    with pytest.raises(RuntimeError, match="boom"):
        write_maps(bad, tmp_path / "bad.fits")
    with pytest.raises(RuntimeError, match="boom"):
        write_zarr(bad, tmp_path / "bad.zarr")
    assert list(tmp_path.iterdir()) == []


def _explode(block):
    raise RuntimeError("boom")


def test_read_errors(tmp_path, maps):
    with pytest.raises(DataStoreError, match="map file not found"):
        read_maps(tmp_path / "missing.fits")
    path = write_maps(maps, tmp_path / "maps.fits")
    with pytest.raises(DataStoreError, match="no HDU named 'BACKGROUND'"):
        read_maps(path, hdus=["BACKGROUND"])
    with pytest.raises(FileExistsError):
        write_maps(maps, path)


@pytest.mark.parametrize("projection", ["CAR", "TAN"])
def test_plain_open_zarr_keeps_the_geometry(maps, tmp_path, projection):
    """A store opened with plain xarray (no xgamma reader, no warning) still knows its WCS: the
    rioxarray-style ``spatial_ref`` coordinate, named by each variable's ``grid_mapping``."""
    import warnings

    geometry = SkyGeometry.create((83.6, 22.0), frame="icrs", width=(3 * u.deg, 2 * u.deg), binsz=0.05 * u.deg,
                                  projection=projection, energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 3))
    counts = make_map(np.arange(np.prod(geometry.data_shape), dtype=float).reshape(geometry.data_shape), geometry,
                      name="counts", units="")
    counts.sky.to_zarr(tmp_path / "counts.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = xr.open_zarr(tmp_path / "counts.zarr")
    ref = plain.coords["spatial_ref"]
    assert plain.counts.attrs["grid_mapping"] == "spatial_ref"
    assert ref.attrs["frame"] == "icrs" and ref.attrs["projection"] == projection
    assert ref.attrs["CTYPE1"] == f"RA---{projection}" and ref.attrs["CDELT2"] == 0.05
    assert WCS(fits.Header.fromstring(ref.attrs["wcs_header"])).wcs.compare(geometry.wcs.wcs, tolerance=1e-12)
    assert plain.counts.sky.geometry == geometry  # the accessor works on the plain store too
    cut = plain.counts.isel(lat=slice(5, 15), lon=slice(10, 30)).sky.geometry
    assert cut.shape == (10, 20)
    np.testing.assert_allclose(cut.wcs.wcs_pix2world(0, 0, 0), geometry.wcs.wcs_pix2world(10, 5, 0), atol=1e-10)
    back = read_zarr(tmp_path / "counts.zarr")
    assert "spatial_ref" not in back.coords and "grid_mapping" not in back.counts.attrs
    xr.testing.assert_identical(back.counts.compute(), counts)
