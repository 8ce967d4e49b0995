"""Ring and top-hat kernels and the FFT convolution of sky maps (the only one in xgamma).

Numpy functions (`convolve_block`, `convolve_full`, and `padded_planes` + `convolve_padded` for
block functions that write their inputs straight into the FFT buffer), plus `convolve_image`,
their lazy, chunk-invariant form on dask arrays (through `xgamma.blocks.overlap_apply`, with the
kernel radius as overlap depth). FFTs use `scipy.fft` (real transforms, batched over all the maps
of a block, padded to `scipy.fft.next_fast_len`; the kernel transformed once per padded shape);
`scipy.signal` is not imported (seconds to import).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from xgamma.exceptions import EstimatorError

__all__ = [
    "ring_kernel",
    "tophat_kernel",
    "kernel_radius",
    "padded_planes",
    "convolve_padded",
    "convolve_block",
    "convolve_full",
    "convolve_image",
]


def _grid(radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    # |x| > floor(r) implies x > r: the smallest square holding the disk
    half = int(np.floor(radius_px))
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    return x.astype(float), y.astype(float)


def ring_kernel(r_in: float, width: float) -> np.ndarray:
    """Annulus kernel of ones between ``r_in`` and ``r_in + width`` (pixels), zeros elsewhere.

    A pixel belongs to the ring when its centre distance r satisfies ``r_in**2 <= r**2 <=
    (r_in + width)**2``: the same discretisation as `astropy.convolution.Ring2DKernel`
    (mode "center") normalised to a peak of 1, so ring sums match Gammapy's.

    Parameters
    ----------
    r_in : float
        Inner radius in pixels (> 0).
    width : float
        Ring width in pixels (> 0).

    Returns
    -------
    kernel : `numpy.ndarray`
        Square float array of odd size ``2 * floor(r_in + width) + 1``.

    Examples
    --------
    >>> int(ring_kernel(1.0, 1.0).sum())  # 1 <= x**2 + y**2 <= 4
    12
    """
    if not (np.isfinite(r_in) and r_in > 0):
        raise EstimatorError(f"ring r_in must be a positive number of pixels, got {r_in!r}")
    if not (np.isfinite(width) and width > 0):
        raise EstimatorError(f"ring width must be a positive number of pixels, got {width!r}")
    r_out = r_in + width
    x, y = _grid(r_out)
    rr = x**2 + y**2
    return ((rr >= r_in**2) & (rr <= r_out**2)).astype(float)


def tophat_kernel(radius: float) -> np.ndarray:
    """Disk kernel of ones for pixel centres within ``radius`` pixels (peak-normalised top-hat).

    Same discretisation as `astropy.convolution.Tophat2DKernel` normalised to a peak of 1
    (``r**2 <= radius**2`` at pixel centres).

    Parameters
    ----------
    radius : float
        Radius in pixels (> 0).

    Examples
    --------
    >>> int(tophat_kernel(5.0).sum())
    81
    """
    if not (np.isfinite(radius) and radius > 0):
        raise EstimatorError(f"correlation radius must be a positive number of pixels, got {radius!r}")
    x, y = _grid(radius)
    return (x**2 + y**2 <= radius**2).astype(float)


def kernel_radius(kernel: np.ndarray) -> int:
    """Half size of a square odd kernel (the overlap depth it needs), in pixels."""
    return int(kernel.shape[-1] // 2)


@lru_cache(maxsize=16)
def _kernel_spectrum(kernel_bytes: bytes, kernel_shape: tuple[int, int], fft_shape: tuple[int, int]) -> np.ndarray:
    """Real FFT of a kernel zero-padded to ``fft_shape``, read-only (cached: blocks of one shape
    share it, and a shared array must not be writable)."""
    from scipy import fft

    kernel = np.frombuffer(kernel_bytes, dtype=float).reshape(kernel_shape)
    spectrum = fft.rfft2(kernel, fft_shape, workers=1)
    spectrum.flags.writeable = False
    return spectrum


def _spectrum(kernel: np.ndarray, fft_shape: tuple[int, ...]) -> np.ndarray:
    kernel = np.ascontiguousarray(kernel, dtype=float)
    return _kernel_spectrum(kernel.tobytes(), kernel.shape, tuple(int(n) for n in fft_shape))


def _fast_shape(sizes: tuple[int, int]) -> tuple[int, int]:
    from scipy import fft

    return fft.next_fast_len(int(sizes[0]), real=True), fft.next_fast_len(int(sizes[1]), real=True)


def _same_shape(ny: int, nx: int, kernel: np.ndarray) -> tuple[int, int]:
    ky, kx = kernel.shape
    # Only the central ("same") part is kept: a period of n + k // 2 keeps the circular wrap-around
    # out of it (the full linear convolution needs n + k - 1).
    return _fast_shape((ny + ky // 2, nx + kx // 2))


def padded_planes(leading: tuple[int, ...], plane: tuple[int, int], kernel: np.ndarray) -> np.ndarray:
    """Zeroed FFT buffer for `convolve_padded`: shape ``(*leading, padded_lat, padded_lon)``.

    Write the maps into ``buffer[..., :n_lat, :n_lon]``: building the inputs in place saves the
    copies of stacking them and of zero-padding them (on large maps, each fresh copy costs page
    faults as well as the copy).
    """
    return np.zeros((*leading, *_same_shape(*plane, kernel)))


def convolve_padded(buffer: np.ndarray, plane: tuple[int, int], kernel: np.ndarray, *,
                    rint: bool | tuple[bool, ...] = False) -> np.ndarray:
    """"Same" convolution of the maps in ``buffer[..., :n_lat, :n_lon]`` (a `padded_planes` buffer).

    One batched real FFT for all leading entries. Non-finite values count as zero. The buffer is
    overwritten.

    Parameters
    ----------
    buffer : `numpy.ndarray`
        From `padded_planes`, the maps written into its leading corner.
    plane : (int, int)
        (n_lat, n_lon) of the maps.
    kernel : `numpy.ndarray`
        2-D kernel (symmetric, so correlation and convolution agree).
    rint : bool or tuple of bool
        Round to integers (sums of counts: removes FFT rounding noise); a tuple gives one flag per
        entry of the first axis. Default is False.

    Returns
    -------
    out : `numpy.ndarray`
        Shape ``(*leading, n_lat, n_lon)``, float64 (a view into the inverse transform).
    """
    from scipy import fft

    ny, nx = plane
    if not np.isfinite(buffer).all():  # a NaN would spread over the whole block
        np.nan_to_num(buffer, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    shape = buffer.shape[-2:]
    # FFT rounding leaves ~1e-16 x (block sum) where the exact sum is 0: it is snapped to 0 below
    # so that ratios (alpha) see a true zero outside the field of view.
    scale = np.abs(buffer).sum(axis=(-2, -1), keepdims=True) * 1e-12
    transformed = fft.rfft2(buffer, workers=1)
    transformed *= _spectrum(kernel, shape)
    full = fft.irfft2(transformed, shape, workers=1, overwrite_x=True)
    hy, hx = kernel.shape[0] // 2, kernel.shape[1] // 2
    out = full[..., hy : hy + ny, hx : hx + nx]
    out *= np.abs(out) > scale  # a product, not a boolean assignment: several times faster
    out += 0.0  # -0.0 (from the product) -> 0.0
    if isinstance(rint, tuple):
        for channel, flag in enumerate(rint):
            if flag:
                np.rint(out[channel], out=out[channel])
    elif rint:
        np.rint(out, out=out)
    return out


def convolve_block(block: np.ndarray, kernel: np.ndarray, *, rint: bool | tuple[bool, ...] = False) -> np.ndarray:
    """Zero-padded "same" FFT convolution of the last two axes of ``block`` with a 2-D kernel.

    Non-finite input values count as zero (a NaN would otherwise spread over the whole block).

    Parameters
    ----------
    block : `numpy.ndarray`
        Array of shape (..., n_lat, n_lon).
    kernel : `numpy.ndarray`
        2-D kernel (symmetric, so correlation and convolution agree).
    rint : bool or tuple of bool
        Round the result to integers (for sums of counts; removes FFT rounding noise). A tuple
        gives one flag per entry of the first axis (channels convolved together). Default is False.

    Returns
    -------
    out : `numpy.ndarray`
        Same shape as ``block``, float64.
    """
    data = np.asarray(block)
    if data.size == 0:
        return data.astype(float)
    plane = data.shape[-2:]
    buffer = padded_planes(data.shape[:-2], plane, kernel)
    buffer[..., : plane[0], : plane[1]] = data
    return convolve_padded(buffer, plane, kernel, rint=rint)


#: Below this many values in the smaller operand, `convolve_full` adds shifted copies directly.
_DIRECT_SIZE = 64


def convolve_full(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Full 2-D linear convolution, shape ``image.shape + kernel.shape - 1``.

    Direct shifted sums when one operand is small (a point source touches 4 pixels), otherwise a
    real FFT padded to `scipy.fft.next_fast_len`.

    Parameters
    ----------
    image, kernel : `numpy.ndarray`
        2-D arrays.

    Returns
    -------
    out : `numpy.ndarray`
        Shape (ny + ky - 1, nx + kx - 1), float64.

    Examples
    --------
    >>> convolve_full(np.ones((2, 2)), np.ones((3, 3)))[0]
    array([1., 2., 2., 1.])
    """
    from scipy import fft

    (ny, nx), (ky, kx) = image.shape, kernel.shape
    out_shape = (ny + ky - 1, nx + kx - 1)
    small, big = (image, kernel) if image.size <= kernel.size else (kernel, image)
    if small.size <= _DIRECT_SIZE:
        out = np.zeros(out_shape)
        by, bx = big.shape
        for (i, j), w in np.ndenumerate(small):
            if w != 0.0:
                out[i:i + by, j:j + bx] += w * big
        return out
    shape = _fast_shape(out_shape)
    spectrum = fft.rfft2(image, shape, workers=1)
    spectrum *= _spectrum(kernel, shape)
    return fft.irfft2(spectrum, shape, workers=1, overwrite_x=True)[: out_shape[0], : out_shape[1]]


def convolve_image(data: Any, kernel: np.ndarray, *, rint: bool | tuple[bool, ...] = False) -> Any:
    """Convolve the last two axes of a numpy or dask array with ``kernel`` (lazy for dask).

    For dask input, one task per block through `~xgamma.blocks.overlap_apply` (overlap depth =
    kernel radius; the zero-padded FFT of each block supplies the zeros outside the map), so the
    result does not depend on the chunking. Stack several maps along a first "channel" axis to
    convolve them in one task per block.

    Parameters
    ----------
    data : `numpy.ndarray` or `dask.array.Array`
        Array of shape (..., n_lat, n_lon).
    kernel : `numpy.ndarray`
        Square, odd-sized 2-D kernel.
    rint : bool or tuple of bool
        Round results to integers (per first-axis channel for a tuple). Default is False.

    Returns
    -------
    out : same type as ``data``
        Float64 array of the same shape (and chunks).
    """
    from xgamma.blocks import is_dask, overlap_apply

    if not is_dask(data):
        return convolve_block(data, kernel, rint=rint)
    chunks = data.chunks
    if isinstance(rint, tuple) and len(chunks[0]) > 1:
        data = data.rechunk({0: -1})  # channels rounded differently must sit in one block
    out = overlap_apply(_convolve_core, data, depth=kernel_radius(kernel), n_out=1, kernel=kernel, rint=rint)[0]
    return out if out.chunks == chunks else out.rechunk(chunks)


def _convolve_core(block: np.ndarray, *, window: Any, core: tuple[slice, slice], kernel: np.ndarray,
                   rint: bool | tuple[bool, ...]) -> np.ndarray:
    return convolve_block(block, kernel, rint=rint)[None, ..., core[0], core[1]]
