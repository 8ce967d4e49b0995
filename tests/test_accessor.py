"""Every method of the ``.sky`` accessor, on DataArrays and Datasets, against independent references.

References are astropy's own (`SkyCoord.separation`, `WCS.pixel_to_world`, `proj_plane_pixel_area`)
or exact arithmetic on the small synthetic maps built here.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import astropy.units as u
import dask.array as da
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord
from astropy.wcs.utils import proj_plane_pixel_area

import xgamma  # noqa: F401  (registers .sky)
from xgamma.exceptions import GeometryError
from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.io.fits_maps import read_maps
from xgamma.io.zarr_maps import read_zarr
from xgamma.maps import make_map
from xgamma.testing import assert_maps_allclose, raise_if_dask_computes

CENTER = SkyCoord(83.63, 22.01, unit="deg", frame="icrs")


@pytest.fixture(scope="module", params=["CAR", "TAN"])
def geometry(request) -> SkyGeometry:
    return SkyGeometry.create(CENTER, width=(2.0 * u.deg, 1.6 * u.deg), binsz=0.1 * u.deg, frame="icrs",
                              projection=request.param, energy_edges=energy_edges(1 * u.TeV, 10 * u.TeV, 2))


@pytest.fixture
def cube(geometry) -> xr.DataArray:
    values = np.arange(np.prod(geometry.data_shape), dtype=float).reshape(geometry.data_shape)
    return make_map(da.from_array(values, chunks=(1, 8, 8)), geometry, name="counts", units="")


@pytest.fixture
def dataset(cube) -> xr.Dataset:
    return xr.Dataset({"counts": cube, "exposure": (cube * 0 + 1e9).assign_attrs(units="m2 s")})


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_geometry_wcs_and_skycoord(cube, dataset, geometry):
    assert cube.sky.geometry == geometry and dataset.sky.geometry == geometry
    assert cube.sky.wcs.wcs.compare(geometry.wcs.wcs)
    coords = cube.sky.skycoord()
    assert coords.shape == geometry.shape
    # The pixel centres are the WCS's own world coordinates of the pixel indices.
    expected = geometry.wcs.pixel_to_world(3, 5)
    assert coords[5, 3].separation(expected).to_value("deg") < 1e-10
    # A slice keeps its place on the sky: its geometry is the parent's shifted.
    part = cube.isel(lat=slice(4, 9), lon=slice(2, 7))
    assert part.sky.skycoord()[1, 1].separation(coords[5, 3]).to_value("deg") < 1e-10


def test_lonlat_are_exact_world_coordinates(cube, geometry):
    lon, lat = cube.sky.lonlat()
    assert lon.dims == ("lat", "lon") and lon.attrs["units"] == "deg"
    world = geometry.wcs.pixel_to_world(2, 7)
    assert lon.values[7, 2] == pytest.approx(world.ra.deg, abs=1e-10)
    assert lat.values[7, 2] == pytest.approx(world.dec.deg, abs=1e-10)


def test_sel_finds_the_pixel_of_a_position(cube, geometry):
    target = geometry.wcs.pixel_to_world(6.2, 3.9)  # inside pixel (row 4, column 6)
    pixel = cube.sky.sel(target)
    assert (int(pixel.pix_lat), int(pixel.pix_lon)) == (4, 6)
    several = cube.sky.sel(SkyCoord([target.ra, target.ra], [target.dec, target.dec]))
    assert several.sizes["position"] == 2
    with pytest.raises(GeometryError):
        cube.sky.sel(SkyCoord(0, 0, unit="deg"))


def test_solid_angle_matches_the_projection_plane_area_at_the_centre(cube, geometry):
    omega = cube.sky.solid_angle()
    assert omega.dims == ("lat", "lon") and omega.attrs["units"] == "sr"
    ny, nx = geometry.shape
    reference = proj_plane_pixel_area(geometry.wcs) * (np.pi / 180) ** 2
    assert omega.values[ny // 2, nx // 2] == pytest.approx(reference, rel=1e-3)
    # The whole map: the solid angle of its 2 x 1.6 deg on the sphere, to the pixel level.
    assert omega.values.sum() == pytest.approx(2.0 * 1.6 * (np.pi / 180) ** 2, rel=2e-3)


def test_separation_agrees_with_astropy(cube, dataset):
    position = SkyCoord(83.9, 21.8, unit="deg")
    sep = cube.sky.separation(position)
    assert sep.attrs["units"] == "deg" and sep.name == "separation"
    np.testing.assert_allclose(sep.values, cube.sky.skycoord().separation(position).deg, atol=1e-9)
    xr.testing.assert_identical(dataset.sky.separation(position), sep)


def test_region_mask_inside_and_outside(cube):
    from regions import CircleSkyRegion

    region = CircleSkyRegion(CENTER, 0.35 * u.deg)
    inside = cube.sky.region_mask(region)
    outside = cube.sky.region_mask(region, inside=False)
    expected = cube.sky.skycoord().separation(CENTER).deg < 0.35
    # Pixel centres within rounding of the circle may go either way; none here.
    np.testing.assert_array_equal(inside.values, expected)
    np.testing.assert_array_equal(outside.values, ~expected)
    assert inside.dtype == bool and inside.dims == ("lat", "lon")


def test_cutout_is_lazy_and_centred(cube, geometry):
    with raise_if_dask_computes():
        cut = cube.sky.cutout(CENTER, 0.5 * u.deg)
    assert isinstance(cut.data, da.Array)
    assert cut.sizes["lat"] == cut.sizes["lon"] == 5
    ny, nx = cut.sizes["lat"], cut.sizes["lon"]
    assert cut.sky.skycoord()[ny // 2, nx // 2].separation(CENTER).to_value("deg") < 0.1
    # The values are those of the parent at the same pixels.
    np.testing.assert_array_equal(cut.values, cube.isel(lat=cut.pix_lat.values, lon=cut.pix_lon.values).values)


def test_squash_energy_sums_counts_on_both_accessors(cube, dataset):
    with raise_if_dask_computes():
        image = cube.sky.squash_energy()
        images = dataset.sky.squash_energy()
    assert image.sizes["energy"] == 1
    np.testing.assert_allclose(image.values[0], cube.values.sum(axis=0))
    xr.testing.assert_allclose(images["counts"], image)
    # Exposure is a spectrum-weighted mean: a flat exposure stays flat.
    np.testing.assert_allclose(images["exposure"].values, 1e9)


def test_to_fits_and_to_zarr_round_trip(cube, dataset, tmp_path):
    path = cube.sky.to_fits(tmp_path / "counts.fits")
    assert_maps_allclose(read_maps(path)["counts"], cube, rtol=0)
    with pytest.raises(FileExistsError):
        cube.sky.to_fits(tmp_path / "counts.fits")
    dataset.sky.to_fits(tmp_path / "maps.fits", overwrite=True)
    assert set(read_maps(tmp_path / "maps.fits").data_vars) == {"counts", "exposure"}
    assert_maps_allclose(read_zarr(dataset.sky.to_zarr(tmp_path / "maps.zarr")), dataset, rtol=0)


def test_quantity_carries_the_units(dataset):
    quantity = dataset["exposure"].sky.quantity
    assert quantity.unit == u.Unit("m2 s") and quantity.shape == dataset["exposure"].shape
    assert dataset["counts"].sky.quantity.unit == u.dimensionless_unscaled


def test_find_peaks_and_peak_mask_are_the_estimator_functions(geometry):
    from xgamma.estimators import find_peaks, peak_mask

    data = np.zeros((1, *geometry.shape))
    data[0, 5, 4], data[0, 12, 15], data[0, 8, 10] = 7.0, 9.0, 4.0  # the last is below the threshold
    image = make_map(da.from_array(data, chunks=(1, 8, 8)), geometry.to_image(), name="sqrt_ts")
    table = image.sky.find_peaks(5, min_distance=1)
    assert list(zip(table["y"], table["x"])) == [(12, 15), (5, 4)] and list(table["value"]) == [9.0, 7.0]
    reference = find_peaks(image, 5, min_distance=1)
    for name in reference.colnames:
        np.testing.assert_array_equal(table[name], reference[name])
    with raise_if_dask_computes():
        mask = image.sky.peak_mask(5)
    assert isinstance(mask.data, da.Array) and mask.dims == ("lat", "lon")
    assert sorted(zip(*np.nonzero(mask.values))) == [(5, 4), (12, 15)]
    xr.testing.assert_equal(mask.compute(), peak_mask(image, 5).compute())


def test_flux_maps_of_a_dataset_is_the_estimator_function(geometry):
    from xgamma.estimators import flux_maps

    image = geometry.to_image()
    counts = np.random.default_rng(4).poisson(3.0, (1, *geometry.shape)).astype(float)
    maps = xr.Dataset({
        "counts": make_map(da.from_array(counts, chunks=(1, 8, 8)), image),
        "background": make_map(da.full((1, *geometry.shape), 3.0, chunks=(1, 8, 8)), image),
        "exposure": make_map(da.full((1, *geometry.shape), 1e10, chunks=(1, 8, 8)), image, units="cm2 s"),
    })
    with raise_if_dask_computes():
        out = maps.sky.flux_maps(correlation_radius="0.2 deg", selection_optional=("ul",))
    assert isinstance(out["flux"].data, da.Array) and out["flux"].attrs["units"] == "cm-2 s-1"
    computed = out.compute()
    xr.testing.assert_allclose(computed, flux_maps(maps, correlation_radius="0.2 deg",
                                                   selection_optional=("ul",)).compute())
    # A flat exposure: the flux is the correlated excess over it, the UL above the flux.
    inner = (slice(None), slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(computed.flux.values[inner], computed.excess.values[inner] / 1e10, rtol=1e-12)
    assert np.all(computed.flux_ul.values[inner] > computed.flux.values[inner])


def test_plot_draws_one_energy_bin_on_wcs_axes(cube):
    ax = cube.sky.plot(energy_index=1)
    assert hasattr(ax, "coords")  # WCSAxes
    (image,) = ax.get_images()
    np.testing.assert_array_equal(image.get_array(), cube.isel(energy=1).values)
    with pytest.raises(GeometryError, match="has 2 energy bins"):
        cube.sky.plot()


def test_assert_maps_allclose_finds_each_kind_of_difference(cube, dataset):
    assert_maps_allclose(cube, cube.copy())
    assert_maps_allclose(dataset, dataset.copy(), rtol=0)
    assert_maps_allclose(cube.assign_attrs(units="m2 s"), cube.assign_attrs(units="s m2"))
    with pytest.raises(AssertionError, match="map 'counts'"):
        assert_maps_allclose(cube + 1e-3, cube)
    with pytest.raises(AssertionError, match="units"):
        assert_maps_allclose(cube.assign_attrs(units="m2 s"), cube)
    with pytest.raises(AssertionError, match="sky geometries differ"):
        assert_maps_allclose(cube.isel(lon=slice(1, None)), cube.isel(lon=slice(None, -1)))
    with pytest.raises(AssertionError, match="map variables differ"):
        assert_maps_allclose(dataset[["counts"]], dataset)
