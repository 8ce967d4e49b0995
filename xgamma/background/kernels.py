"""Ring and top-hat kernels, and their lazy, chunk-invariant FFT convolution.

The block functions are plain numpy (they pickle and test without dask); `convolve_image` lifts
them with `dask.array.Array.map_overlap`, using the kernel radius as the overlap depth, so a
chunked map gives the same result as the unchunked one (to FFT rounding, ~1e-12 relative).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xgamma.exceptions import EstimatorError

__all__ = ["ring_kernel", "tophat_kernel", "convolve_block", "convolve_image", "kernel_radius"]


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
    from scipy.signal import fftconvolve

    data = np.asarray(block, dtype=float)
    if data.size == 0:
        return data.copy()
    if not np.isfinite(data).all():  # copy only when needed: big temporaries are slow
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    k = kernel.reshape((1,) * (data.ndim - 2) + kernel.shape)
    out = fftconvolve(data, k, mode="same", axes=(-2, -1))
    # FFT rounding leaves ~1e-16 x (block sum) where the exact sum is 0: snap it to 0 so that
    # ratios (alpha) see a true zero outside the field of view.
    scale = np.abs(data).sum(axis=(-2, -1), keepdims=True) * 1e-12
    out[np.abs(out) <= scale] = 0.0  # also turns -0.0 into 0.0
    if isinstance(rint, tuple):
        for channel, flag in enumerate(rint):
            if flag:
                out[channel] = np.rint(out[channel])
    elif rint:
        out = np.rint(out)
    return out


def convolve_image(data: Any, kernel: np.ndarray, *, rint: bool | tuple[bool, ...] = False) -> Any:
    """Convolve the last two axes of a numpy or dask array with ``kernel`` (lazy for dask).

    For dask input, ``map_overlap`` with ``depth`` = kernel radius on the two spatial axes (the
    zero-padded FFT of each block supplies the zeros outside the map, so ``boundary="none"``), so the
    result does not depend on the chunking. Stack several maps along a first "channel" axis to
    convolve them in one task per block.
    An axis shorter than the kernel radius is gathered into one chunk instead of overlapped.

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
    import dask.array as da

    if not isinstance(data, da.Array):
        return convolve_block(data, kernel, rint=rint)
    r = kernel_radius(kernel)
    ndim = data.ndim
    depth = {i: 0 for i in range(ndim)}
    rechunk = {}
    for axis in (ndim - 2, ndim - 1):
        if len(data.chunks[axis]) == 1:
            continue  # one chunk along this axis: the zero-padded FFT needs no overlap
        if data.shape[axis] <= 2 * r:
            rechunk[axis] = -1
        else:
            depth[axis] = r
    chunks = data.chunks
    if isinstance(rint, tuple):
        rechunk[0] = -1  # channels convolved together must sit in one block
    if rechunk:
        data = data.rechunk(rechunk)
    if all(d == 0 for d in depth.values()):
        out = data.map_blocks(convolve_block, kernel=kernel, rint=rint, dtype=float)
    else:
        out = data.map_overlap(convolve_block, depth=depth, boundary="none", dtype=float, kernel=kernel, rint=rint)
    # map_overlap merges chunks smaller than the depth: give back the caller's chunks so that
    # results combine block by block with the inputs.
    return out if out.chunks == chunks else out.rechunk(chunks)
