"""The pixel-block kernels of map making give the same values as their plain numpy forms."""

import astropy.units as u
import numpy as np
import pytest

from xgamma.geometry import SkyGeometry
from xgamma.geometry.spherical import unit_vectors
from xgamma.makers.observation import _scatter_add, inside_offsets, offsets, pixel_block
from xgamma.makers.squash import _weighted_range


@pytest.mark.parametrize("pointing", [(0.3, 0.1), (3.5, -1.0), (-2.9, 2.8), (10.0, 0.0)])
@pytest.mark.parametrize("offset_max", [0.05, 2.5, np.inf])
def test_inside_offsets_match_the_full_block(pointing, offset_max):
    geometry = SkyGeometry.create(center=(0.0, 0.0), width=[8.0, 6.0] * u.deg, binsz=0.02 * u.deg, frame="galactic")
    block = pixel_block(geometry, slice(100, 300), slice(150, 400))
    vector = unit_vectors(np.array(pointing[0]), np.array(pointing[1]))
    full = offsets(block, vector)
    expected = np.flatnonzero(full < offset_max)
    pixels, offset = inside_offsets(block, vector, offset_max)
    np.testing.assert_array_equal(pixels, expected)
    np.testing.assert_array_equal(offset, full[expected])  # the same chord formula: bit-identical


@pytest.mark.parametrize("pixels", [np.arange(40, 4000), np.flatnonzero(np.arange(5000) % 7 == 0),
                                    np.r_[3:900, 1000:1200, 4000:4999], np.array([17])])
def test_scatter_add_equals_fancy_index(pixels):
    rng = np.random.default_rng(3)
    values = rng.random((4, pixels.size))
    expected = rng.random((4, 5000))
    target = expected.copy()
    expected[:, pixels] += values
    _scatter_add(target, pixels, values)
    np.testing.assert_array_equal(target, expected)
    image = np.zeros(5000)
    _scatter_add(image, pixels, values[0])
    np.testing.assert_array_equal(image[pixels], values[0])


def test_weighted_range_matches_running_counts():
    """Range weights from the table of range sums equal the per-pixel running-count definition."""
    rng = np.random.default_rng(5)
    edges = np.geomspace(0.2, 100, 25)
    weights = rng.random(24)
    weights /= weights.sum()
    exposure = rng.random((30, 40, 24))
    k = np.arange(24)
    low, high = rng.integers(0, 12, (30, 40, 1)), rng.integers(12, 25, (30, 40, 1))
    exposure[(k < low) | (k >= high)] = 0.0
    exposure[:3] = 0.0  # no exposure at all
    exposure[5:8, :, 13] = 0.0  # a gap inside the range
    valid = exposure > 0
    inside = (np.cumsum(valid, axis=-1) > 0) & (np.cumsum(valid[..., ::-1], axis=-1)[..., ::-1] > 0)
    norm = inside @ weights
    expected = np.divide(exposure @ weights, norm, out=np.zeros(norm.shape), where=norm > 0)
    mean, lower, upper = _weighted_range(exposure, weights, edges)
    np.testing.assert_allclose(mean, expected, rtol=1e-15, atol=0)
    assert np.all(lower[:3] == edges[0]) and np.all(upper[:3] == edges[-1])
    first = np.argmax(valid, axis=-1)
    np.testing.assert_array_equal(lower[3:], edges[first[3:]])
    last = 23 - np.argmax(valid[..., ::-1], axis=-1)
    np.testing.assert_array_equal(upper[3:], edges[last[3:] + 1])


def test_weighted_range_same_values_on_any_block_and_layout():
    """Each pixel's values depend on that pixel only, bit for bit (chunk invariance of the squash): a
    sub-block, and the transposed view dask hands over, give the whole array's values."""
    rng = np.random.default_rng(6)
    edges = np.geomspace(0.2, 100, 25)
    weights = rng.random(24)
    cube = rng.random((24, 30, 40)).astype(np.float32)  # (energy, lat, lon) as map making stores it
    cube[:4, :10] = 0.0
    cube[18:, :, 25:] = 0.0
    whole = _weighted_range(np.moveaxis(cube, 0, -1), weights, edges)
    part = _weighted_range(np.moveaxis(cube[:, 7:19, 3:31], 0, -1), weights, edges)
    contiguous = _weighted_range(np.ascontiguousarray(np.moveaxis(cube, 0, -1)), weights, edges)
    for a, b, c in zip(whole, part, contiguous):
        np.testing.assert_array_equal(a[7:19, 3:31], b)
        np.testing.assert_array_equal(a, c)
