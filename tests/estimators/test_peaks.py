"""find_peaks: local maxima above a threshold, the same pixels as Gammapy's, for any chunking."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from xgamma.estimators.peaks import find_peaks, peak_mask, peaks_dataset
from xgamma.exceptions import EstimatorError
from xgamma.geometry import SkyGeometry
from xgamma.maps import make_map
from xgamma.testing import raise_if_dask_computes


def _image(seed: int = 3, shape=(70, 90)):
    geometry = SkyGeometry.create((10, -1), width=(shape[1] * 0.02 * u.deg, shape[0] * 0.02 * u.deg),
                                  binsz=0.02 * u.deg, frame="galactic", energy_edges=[1, 10] * u.TeV)
    data = gaussian_filter(np.random.default_rng(seed).normal(size=shape), 2) * 8
    data[20, 30] += 12  # a clear peak
    data[0, 5] = 9  # a peak on the map edge
    data[40:43, 60:63] = np.nan  # a hole
    return make_map(data[None], geometry, name="sqrt_ts")


def test_peaks_are_local_maxima_above_threshold():
    image = _image()
    table = find_peaks(image, threshold=3, min_distance=2)
    data = image.values[0]
    assert len(table) > 5 and table["value"][0] == np.nanmax(data)
    assert np.all(np.diff(table["value"]) <= 0)  # sorted by decreasing value
    for row in table:
        y, x = row["y"], row["x"]
        window = data[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3]
        assert row["value"] == np.nanmax(window) > 3
    assert (0, 5) in set(zip(table["y"], table["x"]))
    coord = image.sky.geometry.pixel_to_skycoord(table["x"][0], table["y"][0])
    assert table["lon"][0] == pytest.approx(coord.l.deg) and table["ra"][0] == pytest.approx(coord.icrs.ra.deg)
    assert table.meta["frame"] == "galactic"
    dataset = peaks_dataset(table)
    assert dataset.sizes["peak"] == len(table) and dataset["ra"].attrs["units"] == "deg"


def test_threshold_map_distance_in_degrees_and_empty_results():
    image = _image()
    by_angle = find_peaks(image, 3, min_distance="0.04 deg")  # 2 pixels
    assert list(by_angle["x"]) == list(find_peaks(image, 3, min_distance=2)["x"])
    threshold = image.copy(data=np.full(image.shape, 100.0))
    threshold[0, 20, 30] = 0.0  # only one pixel may pass
    only = find_peaks(image, threshold, min_distance=2)
    assert list(zip(only["y"], only["x"])) == [(20, 30)]
    empty = find_peaks(image, 1e9)
    assert len(empty) == 0 and "ra" in empty.colnames
    assert len(find_peaks(image.copy(data=np.ones(image.shape)), 0.5)) == 0  # constant: no peak (Gammapy)
    with pytest.raises(EstimatorError, match="min_distance"):
        find_peaks(image, 3, min_distance=-1)


@pytest.mark.parametrize("chunks", [{"lat": 9, "lon": 11}, {"lat": 70, "lon": 4}])
@pytest.mark.parametrize("block_size", [None, 0], ids=["merged", "overlap"], indirect=True)
def test_lazy_and_chunk_invariant(block_size, chunks):
    image = _image()
    reference = peak_mask(image, 2.0, min_distance=5)
    with raise_if_dask_computes():
        lazy = peak_mask(image.chunk(chunks), 2.0, min_distance=5)
    assert lazy.chunks is not None
    np.testing.assert_array_equal(lazy.values, reference.values)
    table = find_peaks(image.chunk(chunks), 2.0, min_distance=5)
    assert list(table["x"]) == list(find_peaks(image, 2.0, min_distance=5)["x"])


@pytest.mark.gammapy
@pytest.mark.parametrize(("threshold", "min_distance"), [(3, 1), (2, 5), (4, "0.1 deg"), (0, 0)])
def test_same_peaks_as_gammapy(threshold, min_distance):
    from gammapy.estimators.utils import find_peaks as gammapy_find_peaks
    from gammapy.maps import Map, WcsGeom

    image = _image(seed=9)
    geometry = image.sky.geometry
    geom = WcsGeom.create(skydir=(10, -1), binsz=0.02, width=(90 * 0.02, 70 * 0.02), frame="galactic")
    assert np.allclose(geom.wcs.wcs.crpix, geometry.wcs.wcs.crpix)
    reference = gammapy_find_peaks(Map.from_geom(geom, data=image.values[0].copy()), threshold=threshold,
                                   min_distance=min_distance)
    ours = find_peaks(image, threshold, min_distance=min_distance)
    assert len(ours) == len(reference) > 0
    assert list(ours["x"]) == list(reference["x"]) and list(ours["y"]) == list(reference["y"])
    np.testing.assert_allclose(ours["ra"], reference["ra"], atol=1e-9)
    np.testing.assert_allclose(ours["dec"], reference["dec"], atol=1e-9)
    np.testing.assert_allclose(ours["value"], reference["value"])
