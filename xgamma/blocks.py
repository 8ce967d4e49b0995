"""The block engine: how numpy block functions become dask graphs (public dask API only).

Every lazy map operation of xgamma is a numpy *block function* (it pickles, and tests without
dask) lifted to dask arrays here, so that the rules below hold in one place:

* **Blocks are chosen by size**, never by the scheduler in use: a block holds at most
  `block_size` values of the first input (the dask config key ``"xgamma.block_size"``, default
  ``2**18``: a task's memory stays at tens of MB); it is a union of consecutive chunks of the
  caller, so a graph built under one scheduler runs unchanged under any other (threaded,
  processes, `distributed`).
* **Results do not depend on the blocks**: a block function that needs neighbouring pixels gets
  its block extended by them (as `dask.array.map_overlap` with ``boundary="none"`` would: a block
  at the map edge gets no padding), and trims its own result to the pixels it owns. The task of a
  block takes the input chunks it touches and puts its extended block together itself (one task
  per block, whatever the inputs' chunks: no rechunk or overlap tasks in between).
* **Channels**: a block function returns all its maps stacked along a new first axis, and
  `split_channels` gives them back by name (one `dask.array.blockwise` layer each).

The functions accept numpy arrays too: then the block function is called once on the whole
arrays (no dask import cost, and numpy in gives numpy out).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

__all__ = [
    "BLOCK_SIZE",
    "REDUCED_AXIS_FACTOR",
    "block_size",
    "block_chunks",
    "overlap_apply",
    "split_channels",
    "is_dask",
]

#: Default of the ``"xgamma.block_size"`` dask config key: values of the first input per block.
BLOCK_SIZE = 2**18

#: How many times `block_size` values a block holds along its first axis for a block function that
#: reduces that axis entry by entry (``reduce_first``: its temporaries are one entry's, e.g. one run's
#: plane). The stacked ring holds ~20 plane-sized float64 arrays whatever the runs of its block (plus
#: its inputs, two per run), so four runs' worth of values cost it no more than the adaptive ring's
#: one; fewer blocks along the runs also mean fewer plane-sized partial sums to add.
REDUCED_AXIS_FACTOR = 4

Chunks = tuple[tuple[int, ...], ...]


def is_dask(value: Any) -> bool:
    """Whether ``value`` is a dask array (checked without importing dask when it is not loaded)."""
    import sys

    module = sys.modules.get("dask.array")
    return module is not None and isinstance(value, module.Array)


def block_size() -> int:
    """Largest number of values of a block's first input (the ``"xgamma.block_size"`` config key).

    The default, `BLOCK_SIZE` = 2**18 values (2 MB of float64), bounds a task's memory for every
    block function. The heaviest ones, the adaptive ring (the H.E.S.S. survey's rings, 85 pixels
    of overlap) and the correlated on-off significance maps, hold ~20 float64 arrays of the
    extended block's size: ~40 MB for a block of the survey's images (300 x 768 pixels), ~65 MB on
    a worker's first block, which also caches the kernels' spectra (numpy allocations measured
    with `tracemalloc`, bounded in the tests; 2**20 costs ~3.5 times more). A block still carries
    ~20-100 ms of FFT work, well above the ~1-3 ms a `distributed` scheduler spends per task.
    ``0`` keeps the caller's chunks as blocks (used by the tests to exercise the overlapped path
    on small maps). Set it with ``dask.config.set({"xgamma.block_size": n})``.
    """
    import dask

    value = dask.config.get("xgamma.block_size", BLOCK_SIZE)
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        from xgamma.exceptions import ConfigError

        raise ConfigError(f"dask config 'xgamma.block_size' must be an integer >= 0, got {value!r}") from None


def _grouped(chunks: tuple[int, ...], limit: int) -> tuple[int, ...]:
    """Consecutive ``chunks`` merged while a group stays within ``limit`` (a chunk alone may exceed it)."""
    out: list[int] = []
    for size in chunks:
        if out and out[-1] + size <= limit:
            out[-1] += size
        else:
            out.append(size)
    return tuple(out)


def _at_least(chunks: tuple[int, ...], depth: int) -> tuple[int, ...]:
    """``chunks`` with every chunk >= ``depth``: a smaller one is merged into its neighbour."""
    merged: list[int] = []
    for size in chunks:
        if merged and (size < depth or merged[-1] < depth):
            merged[-1] += size
        else:
            merged.append(size)
    return tuple(merged)


def block_chunks(chunks: Chunks, depth: int = 0, *, size: int | None = None, reduce_first: bool = False) -> Chunks:
    """The blocks (as dask chunks) of an array with ``chunks`` whose last two axes are spatial.

    Each block is a union of consecutive chunks of the caller (so no chunk is ever split):

    1. ``size == 0``: the caller's chunks;
    2. the whole array holds at most ``size`` values: one block;
    3. else the spatial plane is merged first (a whole plane when it fits, else near-square
       groups of chunks), then the first axis (e.g. the runs) into groups that fit;
    4. finally, along the two spatial axes, a block smaller than ``depth`` is merged into its
       neighbour (the overlap of a block comes from its direct neighbours only).

    With ``reduce_first``, ``size`` bounds the values of one entry of the first axis (the block
    function holds one at a time) and a block holds up to `REDUCED_AXIS_FACTOR` times ``size``.

    Parameters
    ----------
    chunks : tuple of tuple of int
        Chunks of the array (dask's ``Array.chunks``), at least two axes.
    depth : int
        Overlap (pixels) the block function needs on each spatial side. Default is 0.
    size : int, optional
        Values per block. Default is `block_size`.
    reduce_first : bool
        The block function reduces the first axis entry by entry (`overlap_apply`). Default is False.

    Returns
    -------
    chunks : tuple of tuple of int
        Chunks of the blocks; a function of ``chunks``, ``depth`` and ``size`` only.

    Examples
    --------
    Three runs of 200 x 200 pixels in chunks of one run and 100 x 100 pixels:

    >>> chunks = ((1, 1, 1), (100, 100), (100, 100))
    >>> block_chunks(chunks, size=100_000)  # whole planes, two runs per block
    ((2, 1), (200,), (200,))
    >>> block_chunks(chunks, size=100_000, reduce_first=True)  # REDUCED_AXIS_FACTOR x the values
    ((3,), (200,), (200,))
    >>> block_chunks(chunks, size=30_000)  # a plane does not fit: groups of spatial chunks
    ((1, 1, 1), (100, 100), (200,))
    >>> block_chunks(chunks, depth=30, size=0)  # the caller's chunks
    ((1, 1, 1), (100, 100), (100, 100))
    """
    size = block_size() if size is None else size
    shape = [sum(c) for c in chunks]
    new = [tuple(c) for c in chunks]
    reduced = reduce_first and len(chunks) > 2
    budget = size * (REDUCED_AXIS_FACTOR if reduced else 1)  # values of a block
    held = chunks[1:-2] if reduced else chunks[:-2]  # non-spatial axes the block function holds at once
    if size > 0 and math.prod(shape) <= budget and math.prod(shape[1:] if reduced else shape) <= size:
        new = [(n,) for n in shape]
    elif size > 0:
        per_pixel = math.prod(max(c) for c in held)  # values per pixel of one caller chunk
        plane_budget = max(size // per_pixel, 1)
        if shape[-2] * shape[-1] <= plane_budget:
            new[-2:] = [(shape[-2],), (shape[-1],)]
        else:
            new[-2] = _grouped(new[-2], max(math.isqrt(plane_budget), 1))
            new[-1] = _grouped(new[-1], max(plane_budget // max(new[-2]), 1))
        if len(new) > 2:
            per_entry = max(new[-2]) * max(new[-1]) * math.prod(max(c) for c in new[1:-2])
            new[0] = _grouped(new[0], max(budget // per_entry, 1))
    if depth > 0:
        new[-2:] = [_at_least(c, depth) for c in new[-2:]]
    return tuple(new)


def _token_of(value: Any) -> Any:
    """A cheap stand-in for ``value`` in a dask token (a geometry by its header text)."""
    header = getattr(value, "header_text", None)
    if isinstance(header, str):
        return (type(value).__name__, getattr(value, "shape", None), header)
    return value


def _call_block(*blocks: np.ndarray, block_func: Callable[..., np.ndarray], block_starts: tuple[np.ndarray, ...],
                block_info: Any = None, **kwargs: Any) -> np.ndarray:
    """Call ``block_func`` on the (not extended) blocks of a `dask.array.map_blocks` task, with their
    pixel ``window`` and ``core`` slices."""
    location = block_info[0]["chunk-location"]
    window = tuple((int(start[i]), int(start[i + 1])) for start, i in zip(block_starts, location))
    return block_func(*blocks, window=window, core=(slice(None), slice(None)), **kwargs)


def _gather(chunks: Any, cuts: tuple[tuple[slice, ...], ...]) -> np.ndarray:
    """One array from the chunks of a window: ``chunks`` nested lists (one level per axis) of the chunks
    the window touches, ``cuts[axis]`` the part of each chunk along ``axis`` inside the window."""
    def pieces(node: Any, level: int, prefix: tuple[slice, ...]) -> Any:
        if level == len(cuts):
            return node[prefix]
        return [pieces(child, level + 1, (*prefix, cut)) for child, cut in zip(node, cuts[level])]

    nested = pieces(chunks, 0, ())
    if all(len(c) == 1 for c in cuts):  # inside one chunk: a view of it
        for _ in cuts:
            nested = nested[0]
        return nested
    return np.block(nested)


def _call_gathered(*chunks: Any, block_func: Callable[..., np.ndarray], cuts: tuple[tuple[tuple[slice, ...], ...], ...],
                   **kwargs: Any) -> np.ndarray:
    """``block_func`` on its (extended) blocks, each put together from the input chunks it touches
    (`_gather`)."""
    return block_func(*(_gather(c, cut) for c, cut in zip(chunks, cuts)), **kwargs)


def _bounds(chunks: tuple[int, ...]) -> np.ndarray:
    """Start index of each chunk of an axis, and the axis length last."""
    return np.concatenate([[0], np.cumsum(chunks)]).astype(int)


def _touched(bounds: np.ndarray, start: int, stop: int) -> tuple[range, tuple[slice, ...]]:
    """The chunks (indices) of an axis with chunk ``bounds`` that ``[start, stop)`` touches, and the part of
    each inside it."""
    first = int(np.searchsorted(bounds, start, side="right")) - 1
    last = int(np.searchsorted(bounds, stop, side="left"))
    indices = range(first, last)
    cuts = tuple(slice(max(start, int(bounds[i])) - int(bounds[i]), min(stop, int(bounds[i + 1])) - int(bounds[i]))
                 for i in indices)
    return indices, cuts


def overlap_apply(func: Callable[..., np.ndarray], *arrays: Any, depth: int, n_out: int, keep_chunks: bool = True,
                  reduce_first: bool = False, name: str | None = None, **kwargs: Any) -> Any:
    """Apply a numpy block function that may need neighbouring pixels, one task per block.

    The blocks are `block_chunks` of the first array (chosen by size, not by the scheduler). With
    dask input this is one graph layer of one task per block, whose inputs are the chunks of every
    array that its extended block touches; the block function trims its own result, so several
    per-pixel steps around a convolution make a single task (dask's ``map_overlap`` made a task
    per neighbour's edge and per concatenation, and rechunking to the blocks one per block and
    input). The keywords go with each block's task. Without ``depth`` and with inputs in the blocks'
    chunks, a `dask.array.map_blocks` layer. With numpy input ``func`` is called once on the whole
    arrays.

    Parameters
    ----------
    func : callable
        ``func(*blocks, window, core, **kwargs) -> numpy.ndarray``; see Notes.
    *arrays : `numpy.ndarray` or `dask.array.Array`
        The first has shape (..., n_lat, n_lon); the others the same trailing spatial shape and at
        most as many axes, aligned on the right (as in `dask.array.map_blocks`).
    depth : int
        Neighbour pixels ``func`` needs on each spatial side (a kernel's radius), >= 0.
    n_out : int
        Number of output channels ``func`` returns.
    keep_chunks : bool
        Give back the first array's chunks (True, default), or the blocks.
    reduce_first : bool
        ``func`` reduces axis 0 of its blocks to length 1 entry by entry, holding temporaries of
        one entry at a time (e.g. a sum over the runs of a block): the output has one entry per
        block along that axis, to be summed by the caller (a tree reduction), and the blocks group
        `REDUCED_AXIS_FACTOR` times more values along it. Needs ``keep_chunks=False``. Default is
        False.
    name : str, optional
        Prefix of the graph layer's name. Default is ``func``'s name.
    **kwargs
        Passed to ``func`` (numpy arrays, geometries: anything that pickles). Names taken by
        `dask.array.map_blocks` (``chunks``, ``dtype``, ``meta``, ``token``, ...) and ``block_func``,
        ``block_starts``, ``cuts``, ``window``, ``core`` cannot be used.

    Returns
    -------
    out : `numpy.ndarray` or `dask.array.Array`
        Float64, shape ``(n_out, *first.shape)`` (axis 1 reduced to the number of blocks along it with
        ``reduce_first``); for dask, one chunk along the channel axis.

    Notes
    -----
    What ``func`` receives, per block:

    * ``*blocks``: the block of each array, extended by up to ``depth`` pixels on each side of the
      two spatial (last) axes where a neighbouring block exists (nothing beyond the map edge);
    * ``window``: one ``(start, stop)`` per axis of the first array: the index range of its
      extended block in the full array (use it to look up per-pixel or per-run data);
    * ``core``: ``(slice, slice)`` of the last two axes of the extended block that the block owns.

    What it returns: its ``core`` part only, float64, shape
    ``(n_out, *block.shape[:-2], core_lat, core_lon)`` (``block`` the first array's block; with
    ``reduce_first``, axis 1 of length 1).

    Guarantees: one task per block; each pixel of the output is computed by exactly one block; a
    block function that gives the same core values for any extension of at least ``depth``
    pixels gives a result that does not depend on the caller's chunks nor on `block_size`.
    Nothing is computed while the graph is built.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    if reduce_first and keep_chunks:
        raise ValueError("overlap_apply: reduce_first=True needs keep_chunks=False")
    if depth < 0:
        raise ValueError(f"overlap_apply: depth must be >= 0, got {depth}")
    if not any(is_dask(a) for a in arrays):
        window = tuple((0, n) for n in np.shape(arrays[0]))
        return func(*arrays, window=window, core=(slice(None), slice(None)), **kwargs)
    first = da.asarray(arrays[0])
    ndim = first.ndim
    blocks = block_chunks(first.chunks, depth, reduce_first=reduce_first)
    arrays = [da.asarray(a) for a in arrays]
    for k, a in enumerate(arrays[1:], start=1):
        if a.ndim > ndim or a.shape != first.shape[ndim - a.ndim:]:
            raise ValueError(f"overlap_apply: input {k} has shape {a.shape}, not the trailing axes of the first "
                             f"input's {first.shape}")
    out_chunks = ((n_out,), *blocks)
    if reduce_first:
        out_chunks = ((n_out,), (1,) * len(blocks[0]), *blocks[1:])
    # Named here: dask would otherwise tokenize every keyword (a geometry, a mask) to name the layer.
    prefix = name or getattr(func, "__name__", "overlap").strip("_")
    layer = f"{prefix}-" + tokenize([a.name for a in arrays], depth, n_out, reduce_first,
                                    {k: _token_of(v) for k, v in kwargs.items()})
    starts = [_bounds(c) for c in blocks]
    meta = np.empty((0,) * (ndim + 1), float)
    aligned = all(a.chunks == blocks[ndim - a.ndim:] for a in arrays)
    if aligned and depth == 0:
        # No neighbours and the inputs in blocks already: a blockwise layer (dask may fuse it with blockwise
        # steps around it). Not with a depth, even when a block has no neighbour: dask 2026.8 fused such a
        # layer with a blockwise input that was a variable of the same Dataset too, and then
        # ``dask.compute(dataset, scheduler="sync")`` missed that variable's keys.
        out = da.map_blocks(_call_block, *arrays, new_axis=0, chunks=out_chunks, dtype=float, meta=meta, name=layer,
                            block_func=func, block_starts=tuple(starts), **kwargs)
        return _keep_chunks(out, first, keep_chunks)
    # Else one task per block that takes the input chunks its extended block touches (neighbours' whole
    # chunks included) and puts the block together itself: dask's rechunk and map_overlap made a task
    # per neighbour's edge, per block's concatenation and per rechunked block (~40 per block of a
    # survey's ring and significance).
    bounds = [[_bounds(c) for c in a.chunks] for a in arrays]
    graph = {}
    for index in np.ndindex(*(len(c) for c in blocks)):
        window, befores = [], []
        for axis, i in enumerate(index):
            lo, hi = int(starts[axis][i]), int(starts[axis][i + 1])
            spatial = axis >= ndim - 2
            before = depth if spatial and i > 0 else 0
            after = depth if spatial and i < len(blocks[axis]) - 1 else 0
            window.append((lo - before, hi + after))
            befores.append(before)
        core = tuple(slice(before, before + int(starts[axis][i + 1] - starts[axis][i]))
                     for axis, i, before in zip((ndim - 2, ndim - 1), index[-2:], befores[-2:]))
        keys, cuts = [], []
        for a, edges in zip(arrays, bounds):
            touched = [_touched(e, *w) for e, w in zip(edges, window[ndim - a.ndim:])]
            keys.append(_nested_keys(a.name, [t[0] for t in touched]))
            cuts.append(tuple(t[1] for t in touched))
        # The keywords in each task: as one task of their own that every block read (the survey's ring
        # kernels, then with its mask: 4 MB sent once rather than 12 times) no faster, and one worker held
        # 0.4 GB more. Arrays the size of the map belong in ``arrays``, whose chunks each block picks.
        call = partial(_call_gathered, block_func=func, cuts=tuple(cuts), window=tuple(window), core=core, **kwargs)
        graph[(layer, 0, *index)] = (call, *keys)
    hlg = HighLevelGraph.from_collections(layer, graph, dependencies=arrays)
    return _keep_chunks(da.Array(hlg, layer, chunks=out_chunks, dtype=float, meta=meta), first, keep_chunks)


def _nested_keys(name: str, indices: list[range], prefix: tuple[int, ...] = ()) -> Any:
    """Keys ``(name, *index)`` of the chunks at ``indices`` (one range per axis), as nested lists."""
    if not indices:
        return (name, *prefix)
    return [_nested_keys(name, indices[1:], (*prefix, i)) for i in indices[0]]


def _keep_chunks(out: Any, first: Any, keep_chunks: bool) -> Any:
    """``out`` (channels first) in the chunks of ``first`` (``keep_chunks``: results then combine chunk by
    chunk with the inputs), or as it is."""
    want = ((out.shape[0],), *first.chunks)
    return out if not keep_chunks or out.chunks == want else out.rechunk(want)


def _channel(blocks: list[np.ndarray], index: int) -> np.ndarray:
    # ``blocks``: the one block along the (contracted, single-chunk) channel axis. A copy of the
    # channel: a view would keep the whole block (all channels) alive as long as one channel lives.
    return blocks[0][index].copy()


def split_channels(array: Any, names: Sequence[str]) -> dict[str, Any]:
    """The entries of ``array``'s first (channel) axis, by name.

    Parameters
    ----------
    array : `numpy.ndarray` or `dask.array.Array`
        Channels first, e.g. an `overlap_apply` result.
    names : sequence of str
        One name per channel.

    Returns
    -------
    channels : dict of str to array
        numpy input: views. dask input: one `dask.array.blockwise` layer per channel (one task
        per block, each a copy of its channel so that the block can be freed), with the chunks
        of ``array``'s other axes.
    """
    if not is_dask(array):
        return {name: array[i] for i, name in enumerate(names)}
    import dask.array as da

    if len(array.chunks[0]) != 1:
        array = array.rechunk({0: -1})
    index = tuple(range(1, array.ndim))
    meta = np.empty((0,) * (array.ndim - 1), array.dtype)
    # Named and unaligned: a channel is picked from one known array, so dask need not tokenize
    # the call nor unify chunks (x[i] costs several times more, normalising the index). Not
    # concatenated: dask would copy the whole block (concatenate3) before the channel is taken.
    return {
        name: da.blockwise(partial(_channel, index=i), index, array, (0, *index), concatenate=False, meta=meta,
                           align_arrays=False, name=f"{name}-{array.name}")
        for i, name in enumerate(names)
    }

