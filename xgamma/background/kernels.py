"""Ring and top-hat kernels, and their lazy, chunk-invariant FFT convolution.

The block functions are plain numpy (they pickle and test without dask). `overlap_apply` lifts a
block function that needs neighbouring pixels to dask arrays as one ``map_overlap``-style task per
block (the overlap depth is the kernel radius), so a chunked map gives the same result as the
unchunked one (to FFT rounding, ~1e-12 relative); `convolve_image` is the plain convolution
through it. FFTs use `scipy.fft` (real transforms, one batched call for all the maps of a block,
the kernel transformed once per padded shape); `scipy.signal` is not imported (seconds to import).
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
    "padded_planes",
    "convolve_padded",
    "overlap_apply",
    "merge_pixels",
    "scheduler_parallelism",
    "split_channels",
    "zero_outside",
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


def zero_outside(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values`` where ``mask`` is True, 0 elsewhere (NaN included), as a new float array.

    A product with the boolean mask, 3-5x faster than `numpy.where` or a ``where=`` ufunc on large
    maps; `numpy.where` only when a NaN would survive the product.
    """
    out = np.multiply(values, mask, dtype=float)
    if np.isnan(out).any():
        out = np.where(mask, values, 0.0).astype(float, copy=False)
    return out


def split_channels(array: Any, names: Any) -> dict[str, Any]:
    """The entries of ``array``'s first (channel) axis, by name.

    For dask, one graph layer per channel of the tasks ``array[i]`` would make (dask's
    ``chunk.getitem``, which copies the channel so that the block can be freed), built directly:
    dask's index normalisation costs ~0.5 ms per slice, a third of building the ring +
    significance graph.
    """
    import dask.array as da
    from dask.array.chunk import getitem
    from dask.core import flatten
    from dask.highlevelgraph import HighLevelGraph

    if not isinstance(array, da.Array):
        return {name: array[i] for i, name in enumerate(names)}
    if len(array.chunks[0]) != 1:
        array = array.rechunk({0: -1})
    meta = np.empty((0,) * (array.ndim - 1), array.dtype)
    keys = list(flatten(array.__dask_keys__()))
    out = {}
    for i, name in enumerate(names):
        layer_name = f"{name}-{array.name}"
        layer = {(layer_name, *key[2:]): (getitem, key, (i,)) for key in keys}
        graph = HighLevelGraph.from_collections(layer_name, layer, dependencies=[array])
        out[name] = da.Array(graph, layer_name, array.chunks[1:], meta=meta)
    return out


def kernel_radius(kernel: np.ndarray) -> int:
    """Half size of a square odd kernel (the overlap depth it needs), in pixels."""
    return int(kernel.shape[-1] // 2)


@lru_cache(maxsize=16)
def _kernel_spectrum(kernel_bytes: bytes, kernel_shape: tuple[int, int], fft_shape: tuple[int, int]) -> np.ndarray:
    """Real FFT of a kernel zero-padded to ``fft_shape`` (cached: blocks of one shape share it)."""
    from scipy import fft

    kernel = np.frombuffer(kernel_bytes, dtype=float).reshape(kernel_shape)
    return fft.rfft2(kernel, fft_shape, workers=1)


def _fft_shape(ny: int, nx: int, kernel: np.ndarray) -> tuple[int, int]:
    from scipy import fft

    ky, kx = kernel.shape
    # Only the central ("same") part is kept: a period of n + k // 2 keeps the circular wrap-around
    # out of it (the full linear convolution needs n + k - 1).
    return fft.next_fast_len(ny + ky // 2, real=True), fft.next_fast_len(nx + kx // 2, real=True)


def padded_planes(leading: tuple[int, ...], plane: tuple[int, int], kernel: np.ndarray) -> np.ndarray:
    """Zeroed FFT buffer for `convolve_padded`: shape (*leading, padded lat, padded lon).

    Write the maps into ``buffer[..., :n_lat, :n_lon]``: building the inputs in place saves the
    copies of stacking them and of zero-padding them (on large maps, each fresh copy costs page
    faults as well as the copy).
    """
    return np.zeros((*leading, *_fft_shape(*plane, kernel)))


def convolve_padded(buffer: np.ndarray, plane: tuple[int, int], kernel: np.ndarray, *,
                    rint: bool | tuple[bool, ...] = False) -> np.ndarray:
    """"Same" convolution of the maps in ``buffer[..., :n_lat, :n_lon]`` (a `padded_planes` buffer).

    One batched real FFT for all leading entries, the kernel transform cached per padded shape
    (`scipy.fft`; `scipy.signal` is not imported, seconds to import). Non-finite values count as
    zero. The buffer is overwritten.

    Returns
    -------
    out : `numpy.ndarray`
        Shape (*leading, n_lat, n_lon), float64 (a view into the inverse transform).
    """
    from scipy import fft

    ny, nx = plane
    if not np.isfinite(buffer).all():  # a NaN would spread over the whole block
        np.nan_to_num(buffer, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    shape = buffer.shape[-2:]
    kernel = np.ascontiguousarray(kernel, dtype=float)
    # FFT rounding leaves ~1e-16 x (block sum) where the exact sum is 0: it is snapped to 0 below
    # so that ratios (alpha) see a true zero outside the field of view.
    scale = np.abs(buffer).sum(axis=(-2, -1), keepdims=True) * 1e-12
    transformed = fft.rfft2(buffer, workers=1)
    transformed *= _kernel_spectrum(kernel.tobytes(), kernel.shape, shape)
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


#: Default of `merge_pixels`: planes up to 1024 x 1024 pixels are convolved in one block.
MERGE_PIXELS = 1024 * 1024


def merge_pixels() -> int:
    """Largest (lat x lon) plane convolved as one block rather than in overlapped chunks.

    Overlapped chunks cost a task per neighbour slice and FFT work on the overlaps; below this
    size one block per plane is faster and the result is the same. A whole array (all its maps)
    of at most this many values is also done in one block. Set it with the dask config key
    ``"xgamma.merge_pixels"`` (0 keeps the caller's chunks, e.g. to test the overlap path).
    """
    import dask

    return int(dask.config.get("xgamma.merge_pixels", MERGE_PIXELS))


def scheduler_parallelism() -> int:
    """How many tasks the dask scheduler in use runs at once (a hint for splitting work).

    The ``"xgamma.parallelism"`` config key if set; else the worker threads of the default
    `distributed` client, 1 for the synchronous scheduler, and dask's ``num_workers`` (default: the
    CPU count) for the threaded and process schedulers.
    """
    import os

    import dask
    from dask.base import get_scheduler
    from dask.local import get_sync

    configured = dask.config.get("xgamma.parallelism", None)
    if configured is not None:
        return max(int(configured), 1)
    scheduler = get_scheduler()
    if scheduler is get_sync:
        return 1
    client = getattr(scheduler, "__self__", None)
    if client is not None and hasattr(client, "nthreads"):
        try:
            return max(sum(client.nthreads().values()), 1)
        except Exception:  # noqa: BLE001 - a hint only: a client that cannot answer gets no split
            return 1
    return max(int(dask.config.get("num_workers", None) or os.cpu_count() or 1), 1)


def _grouped(chunks: tuple[int, ...], groups: int) -> tuple[int, ...]:
    """``chunks`` merged into ``groups`` contiguous groups of near-equal numbers of chunks."""
    bounds = np.linspace(0, len(chunks), groups + 1).round().astype(int)
    return tuple(int(sum(chunks[a:b])) for a, b in zip(bounds[:-1], bounds[1:]) if b > a)


def _split(size: int, parts: int, minimum: int) -> tuple[int, ...]:
    """``size`` in up to ``parts`` near-equal chunks of at least ``minimum``."""
    parts = max(min(parts, size // max(minimum, 1)), 1)
    bounds = np.linspace(0, size, parts + 1).round().astype(int)
    return tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:]))


def _merged_chunks(chunks: tuple[int, ...], depth: int) -> tuple[int, ...]:
    """Chunks along one axis with every chunk >= ``depth`` (small ones merged into a neighbour)."""
    merged: list[int] = []
    for size in chunks:
        if merged and (size < depth or merged[-1] < depth):
            merged[-1] += size
        else:
            merged.append(size)
    return tuple(merged)


def _overlap_block(*blocks: np.ndarray, block_func: Any, starts: tuple[np.ndarray, ...], depth: tuple[int, ...],
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
    return block_func(*blocks, window=tuple(window), core=tuple(core[-2:]), **kwargs)


def _token_of(value: Any) -> Any:
    """A cheap stand-in for ``value`` in a dask token (a geometry by its header text)."""
    header = getattr(value, "header_text", None)
    if isinstance(header, str):
        return (type(value).__name__, getattr(value, "shape", None), header)
    return value


def overlap_apply(func: Any, *arrays: Any, depth: int, n_out: int, keep_chunks: bool = True,
                  reduce_first: bool = False, **kwargs: Any) -> Any:
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
    keep_chunks : bool
        Give back the first array's chunks (True, default) or the blocks computed: all chunks are
        merged into one when the array has at most `merge_pixels` values, spatial chunks when a
        plane has at most `merge_pixels` pixels, and chunks smaller than ``depth`` into a neighbour.
    reduce_first : bool
        ``func`` reduces the first array's axis 0 to length 1 per block (e.g. a sum over the runs
        of a block): the output then has one entry per block along that axis. Needs
        ``keep_chunks=False``. Default is False.
    **kwargs
        Passed to ``func``.

    Returns
    -------
    out : numpy or dask array
        Float64, shape (n_out, *first.shape); for dask, one chunk along the channel axis.
    """
    import dask.array as da
    from dask.base import tokenize

    first = arrays[0]
    if reduce_first and keep_chunks:
        raise ValueError("overlap_apply: reduce_first=True needs keep_chunks=False")
    if not any(isinstance(a, da.Array) for a in arrays):
        window = tuple((0, n) for n in first.shape)
        return func(*arrays, window=window, core=(slice(None), slice(None)), **kwargs)
    first = da.asarray(first)
    ndim = first.ndim
    chunks = first.chunks
    new_chunks = list(chunks)
    depths = [0] * ndim
    limit = merge_pixels()
    if first.size <= limit:
        # A small array in one block: a single task, and the FFT batched over all its maps.
        new_chunks = [(n,) for n in first.shape]
    elif depth > 0 and first.shape[-2] * first.shape[-1] <= limit:
        # A small plane in one block: no overlap tasks, and less FFT work than overlapped blocks.
        new_chunks[-2:] = [(first.shape[-2],), (first.shape[-1],)]
    parallel = scheduler_parallelism()
    if parallel > 1 and int(np.prod([len(c) for c in new_chunks])) < parallel:
        # Merged into fewer blocks than the scheduler runs at once: split again, along the caller's
        # first axis when it has several chunks (runs), else into bands of latitude.
        if ndim > 2 and len(chunks[0]) > 1:
            new_chunks[0] = _grouped(chunks[0], min(parallel, len(chunks[0])))
        else:
            new_chunks[-2] = _split(first.shape[-2], parallel, max(depth, 1))
    for axis in (ndim - 2, ndim - 1):
        if len(new_chunks[axis]) > 1 and depth > 0:
            new_chunks[axis] = _merged_chunks(new_chunks[axis], depth)
            depths[axis] = depth if len(new_chunks[axis]) > 1 else 0
    aligned = []
    for a in arrays:
        a = da.asarray(a)
        want = tuple(new_chunks[ndim - a.ndim :])
        aligned.append(a if a.chunks == want else a.rechunk(want))
    starts = tuple(np.concatenate([[0], np.cumsum(c)]) for c in new_chunks)
    out_chunks = ((n_out,), *new_chunks)
    if reduce_first:
        out_chunks = ((n_out,), (1,) * len(new_chunks[0]), *new_chunks[1:])
    meta = np.empty((0,) * (ndim + 1), float)
    block_kwargs = dict(block_func=func, starts=starts, depth=tuple(depths), **kwargs)

    args = []
    for a in aligned:
        d = depths[ndim - a.ndim :]
        args.append(da.overlap.overlap(a, depth=dict(enumerate(d)), boundary="none") if any(d) else a)
    # Named here: dask would otherwise tokenize every keyword (a geometry, a mask) to name the layer.
    name = f"{getattr(func, '__name__', 'overlap').strip('_')}-" + tokenize(
        [a.name for a in args], depths, n_out, reduce_first, {k: _token_of(v) for k, v in block_kwargs.items()}
    )
    out = da.map_blocks(_overlap_block, *args, new_axis=0, chunks=out_chunks, dtype=float, meta=meta,
                        name=name, **block_kwargs)
    if not keep_chunks:
        return out
    # give back the caller's chunks so that results combine block by block with the inputs
    want = ((n_out,), *chunks)
    return out if out.chunks == want else out.rechunk(want)


def convolve_image(data: Any, kernel: np.ndarray, *, rint: bool | tuple[bool, ...] = False) -> Any:
    """Convolve the last two axes of a numpy or dask array with ``kernel`` (lazy for dask).

    For dask input, one task per block through `overlap_apply` (``depth`` = kernel radius on the
    two spatial axes; the zero-padded FFT of each block supplies the zeros outside the map), so
    the result does not depend on the chunking. Stack several maps along a first "channel" axis
    to convolve them in one task per block.

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
    chunks = data.chunks
    if isinstance(rint, tuple) and len(chunks[0]) > 1:
        data = data.rechunk({0: -1})  # channels rounded differently must sit in one block
    out = overlap_apply(_convolve_core, data, depth=kernel_radius(kernel), n_out=1, kernel=kernel, rint=rint)[0]
    return out if out.chunks == chunks else out.rechunk(chunks)


def _convolve_core(block: np.ndarray, *, window: Any, core: tuple[slice, slice], kernel: np.ndarray,
                   rint: bool | tuple[bool, ...]) -> np.ndarray:
    return convolve_block(block, kernel, rint=rint)[None, ..., core[0], core[1]]
