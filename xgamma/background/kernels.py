"""Ring and top-hat kernels, and their lazy, chunk-invariant FFT convolution.

The block functions are plain numpy (they pickle and test without dask); `convolve_image` lifts
them with `dask.array.Array.map_overlap`, using the kernel radius as the overlap depth, so a
chunked map gives the same result as the unchunked one (to FFT rounding, ~1e-12 relative).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from xgamma.exceptions import EstimatorError

__all__ = [
    "ring_kernel",
    "tophat_kernel",
    "convolve_block",
    "convolve_image",
    "kernel_radius",
    "fft_convolve",
    "overlap_apply",
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
    """Real FFT of a kernel zero-padded to ``fft_shape`` (cached: blocks of one shape share it)."""
    from scipy import fft

    kernel = np.frombuffer(kernel_bytes, dtype=float).reshape(kernel_shape)
    return fft.rfft2(kernel, fft_shape, workers=1)


def fft_convolve(data: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Zero-padded "same" FFT convolution of the last two axes of ``data`` (no clean-up).

    All leading entries go through one batched real FFT; the kernel transform is cached per
    padded shape. Sizes come from `scipy.fft.next_fast_len` (scipy.fft, not scipy.signal, whose
    import alone takes seconds).
    """
    from scipy import fft

    ny, nx = data.shape[-2:]
    ky, kx = kernel.shape
    shape = (fft.next_fast_len(ny + ky - 1, real=True), fft.next_fast_len(nx + kx - 1, real=True))
    kernel = np.ascontiguousarray(kernel, dtype=float)
    spectrum = _kernel_spectrum(kernel.tobytes(), kernel.shape, shape)
    full = fft.irfft2(fft.rfft2(data, shape, workers=1) * spectrum, shape, workers=1)
    hy, hx = ky // 2, kx // 2
    return full[..., hy : hy + ny, hx : hx + nx]


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
    data = np.asarray(block, dtype=float)
    if data.size == 0:
        return data.copy()
    if not np.isfinite(data).all():  # copy only when needed: big temporaries are slow
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    out = np.ascontiguousarray(fft_convolve(data, kernel))
    # FFT rounding leaves ~1e-16 x (block sum) where the exact sum is 0: snap it to 0 so that
    # ratios (alpha) see a true zero outside the field of view.
    scale = np.abs(data).sum(axis=(-2, -1), keepdims=True) * 1e-12
    out[np.abs(out) <= scale] = 0.0  # also turns -0.0 into 0.0
    if isinstance(rint, tuple):
        for channel, flag in enumerate(rint):
            if flag:
                np.rint(out[channel], out=out[channel])
    elif rint:
        np.rint(out, out=out)
    return out


def _merged_chunks(chunks: tuple[int, ...], depth: int) -> tuple[int, ...]:
    """Chunks along one axis with every chunk >= ``depth`` (small ones merged into a neighbour)."""
    merged: list[int] = []
    for size in chunks:
        if merged and (size < depth or merged[-1] < depth):
            merged[-1] += size
        else:
            merged.append(size)
    return tuple(merged)


def _overlap_block(*blocks: np.ndarray, func: Any, starts: tuple[np.ndarray, ...], depth: tuple[int, ...],
                   block_info: Any = None, **kwargs: Any) -> np.ndarray:
    """Call ``func`` on overlapped blocks with their pixel window and the slices of their core."""
    info = block_info[0]
    location, counts = info["chunk-location"], info["num-chunks"]
    window, core = [], []
    for axis, (start, d) in enumerate(zip(starts, depth)):
        i = location[axis]
        lo, hi = int(start[i]), int(start[i + 1])
        left = d if (d and i > 0) else 0
        right = d if (d and i < counts[axis] - 1) else 0
        window.append((lo - left, hi + right))
        core.append(slice(left, left + hi - lo))
    return func(*blocks, window=tuple(window), core=tuple(core[-2:]), **kwargs)


def overlap_apply(func: Any, *arrays: Any, depth: int, n_out: int, **kwargs: Any) -> Any:
    """Apply a block function that needs ``depth`` pixels of neighbours, in one task per block.

    ``func(*blocks, window, core, **kwargs)`` gets one block of each array, extended by up to
    ``depth`` pixels on the two spatial (last) axes, ``window`` (one ``(start, stop)`` per axis of
    the first array: its block's index range in the full array, overlap included) and ``core``
    (slices of the last two axes that the block owns), and returns its core with a new leading
    axis of ``n_out`` channels: shape (n_out, *first block's shape[:-2], core lat, core lon).

    With dask input this is one ``map_overlap`` task per block (the block function trims its own
    result), so several per-pixel steps around a convolution make a single graph layer; the
    zero-padded FFT needs no values beyond the map edge (``boundary="none"``). With numpy input
    ``func`` is called once on the whole arrays.

    Parameters
    ----------
    func : callable
        Block function, see above.
    *arrays : `numpy.ndarray` or `dask.array.Array`
        The first has shape (..., n_lat, n_lon); the others the same trailing spatial shape and
        at most as many axes (aligned on the right, as in `dask.array.map_blocks`).
    depth : int
        Neighbour pixels needed on each side (kernel radius), >= 0.
    n_out : int
        Number of output channels.
    **kwargs
        Passed to ``func``.

    Returns
    -------
    out : numpy or dask array
        Float64, shape (n_out, *first.shape); for dask, chunked like the first array (one chunk
        along the channel axis).
    """
    import dask.array as da

    first = arrays[0]
    if not any(isinstance(a, da.Array) for a in arrays):
        window = tuple((0, n) for n in first.shape)
        return func(*arrays, window=window, core=(slice(None), slice(None)), **kwargs)
    first = da.asarray(first)
    ndim = first.ndim
    chunks = first.chunks
    new_chunks = list(chunks)
    depths = [0] * ndim
    for axis in (ndim - 2, ndim - 1):
        if len(chunks[axis]) > 1 and depth > 0:
            new_chunks[axis] = _merged_chunks(chunks[axis], depth)
            depths[axis] = depth if len(new_chunks[axis]) > 1 else 0
    aligned = []
    for a in arrays:
        a = da.asarray(a)
        want = tuple(new_chunks[ndim - a.ndim :])
        aligned.append(a if a.chunks == want else a.rechunk(want))
    starts = tuple(np.concatenate([[0], np.cumsum(c)]) for c in new_chunks)
    out_chunks = ((n_out,), *new_chunks)
    meta = np.empty((0,) * (ndim + 1), float)
    block_kwargs = dict(func=func, starts=starts, depth=tuple(depths), **kwargs)

    args = []
    for a in aligned:
        d = depths[ndim - a.ndim :]
        args.append(da.overlap.overlap(a, depth=dict(enumerate(d)), boundary="none") if any(d) else a)
    out = da.map_blocks(_overlap_block, *args, new_axis=0, chunks=out_chunks, dtype=float, meta=meta,
                        **block_kwargs)
    # give back the caller's chunks so that results combine block by block with the inputs
    want = ((n_out,), *chunks)
    return out if out.chunks == want else out.rechunk(want)


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
