"""Ring / top-hat kernels and the FFT convolutions: same, full, and chunk-invariant lazy."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from astropy.convolution import Ring2DKernel, Tophat2DKernel
from scipy.ndimage import convolve

from xgamma.convolution import convolve_block, convolve_full, convolve_image, ring_kernel, tophat_kernel
from xgamma.exceptions import EstimatorError
from xgamma.testing import raise_if_dask_computes


def _centred_equal(a: np.ndarray, b: np.ndarray) -> bool:
    # Kernels may differ by a border of zeros (astropy rounds the size up to an odd integer).
    size = max(a.shape[0], b.shape[0])
    pad = lambda k: np.pad(k, (size - k.shape[0]) // 2)  # noqa: E731
    return np.array_equal(pad(a), pad(b))


@pytest.mark.parametrize(("r_in", "width"), [(0.3 / 0.02, 0.3 / 0.02), (5.5, 2.0), (1.0, 1.0)])
def test_ring_kernel_matches_astropy(r_in, width):
    # Same discretisation as astropy's Ring2DKernel (mode "center"), which Gammapy uses.
    ref = Ring2DKernel(r_in, width)
    ref.normalize("peak")
    assert _centred_equal(ring_kernel(r_in, width), ref.array)


def test_tophat_kernel_matches_astropy():
    ref = Tophat2DKernel(0.1 / 0.02)
    ref.normalize("peak")
    kernel = tophat_kernel(0.1 / 0.02)
    assert _centred_equal(kernel, ref.array)
    assert kernel.sum() == 81  # pixel centres with x**2 + y**2 <= 25


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_kernel_bad_radii(bad):
    with pytest.raises(EstimatorError, match="r_in"):
        ring_kernel(bad, 2.0)
    with pytest.raises(EstimatorError, match="width"):
        ring_kernel(2.0, bad)
    with pytest.raises(EstimatorError, match="correlation radius"):
        tophat_kernel(bad)


def test_convolve_block_equals_direct_convolution():
    rng = np.random.default_rng(1)
    image = rng.poisson(3.0, size=(2, 40, 50)).astype(float)
    kernel = ring_kernel(4.0, 3.0)
    expected = np.stack([convolve(im, kernel, mode="constant", cval=0.0) for im in image])
    # Integer inputs: the rounded FFT sum is exact.
    assert np.array_equal(convolve_block(image, kernel, rint=True), expected)
    # Unrounded: FFT rounding only (relative 1e-12 of the largest sum is generous).
    np.testing.assert_allclose(convolve_block(image, kernel), expected, rtol=0, atol=1e-12 * expected.max())


@pytest.mark.parametrize("chunks", [(1, 5, 7), (1, 13, 50), (1, 40, 3), (1, 17, 23)])
@pytest.mark.parametrize("block_size", [None, 0], ids=["merged", "overlap"], indirect=True)
def test_convolve_image_chunk_invariant(block_size, chunks):
    # Chunks smaller than the ring's outer radius (9 px) need multi-chunk overlaps.
    rng = np.random.default_rng(2)
    image = rng.poisson(2.0, size=(1, 40, 50)).astype(float)
    kernel = ring_kernel(5.0, 4.0)
    expected = convolve(image[0], kernel, mode="constant", cval=0.0)
    with raise_if_dask_computes():
        lazy = convolve_image(da.from_array(image, chunks=chunks), kernel, rint=True)
    assert isinstance(lazy, da.Array)
    assert lazy.chunks == da.from_array(image, chunks=chunks).chunks  # caller's chunks kept
    assert np.array_equal(lazy.compute()[0], expected)


def test_convolve_ignores_nan():
    image = np.ones((1, 20, 20))
    image[0, 10, 10] = np.nan
    out = convolve_block(image, tophat_kernel(2.0))
    assert np.isfinite(out).all()
    assert out[0, 10, 10] == tophat_kernel(2.0).sum() - 1  # the NaN pixel counts as 0


@pytest.mark.parametrize(("image_shape", "kernel_shape"), [((2, 2), (9, 9)), ((30, 41), (9, 9)), ((9, 9), (30, 41))])
def test_convolve_full_equals_direct_convolution(image_shape, kernel_shape):
    # Direct sums (a small operand) and FFT (both large) give the full linear convolution.
    from scipy.signal import convolve2d

    rng = np.random.default_rng(3)
    image, kernel = rng.random(image_shape), rng.random(kernel_shape)
    expected = convolve2d(image, kernel, mode="full")
    out = convolve_full(image, kernel)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_cached_kernel_spectrum_is_read_only():
    # The kernel transform is shared by every block of one shape: nobody may write into it.
    from xgamma.convolution import _spectrum

    spectrum = _spectrum(tophat_kernel(3.0), (32, 32))
    assert not spectrum.flags.writeable
    assert _spectrum(tophat_kernel(3.0), (32, 32)) is spectrum
