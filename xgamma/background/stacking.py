"""Stacking of per-observation ring results: off counts and ``alpha * off`` add (Gammapy's on-off rule)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from xgamma.background.inputs import OBS_DIM
from xgamma.background.ring_blocks import RING_MAPS, partial_sums, stacked_maps
from xgamma.blocks import is_dask, split_channels
from xgamma.exceptions import EstimatorError
from xgamma.maps import dataset_from_arrays, in_order

__all__ = ["stack_ring_maps", "stack_sums"]


def stack_sums(partial: Any, *, axis: int) -> Any:
    """`~xgamma.background.ring_blocks.stacked_maps` of partial sums added along ``axis``.

    ``partial`` holds the `~xgamma.background.ring_blocks.STACK_SUMS` channels first; for dask, a
    tree sum over the blocks along ``axis``, then one task per block for the ratios.
    """
    if not is_dask(partial):
        return stacked_maps(partial.sum(axis=axis))
    import dask.array as da

    out_index = tuple(i for i in range(partial.ndim) if i != axis)
    chunks = ((len(RING_MAPS),), *[partial.chunks[i] for i in out_index[1:]])
    meta = np.empty((0,) * len(out_index), float)
    if len(partial.chunks[axis]) > _ADDED_IN_ONE_TASK:
        sums = partial.sum(axis=axis, split_every=_ADDED_IN_ONE_TASK)
        return sums.map_blocks(stacked_maps, chunks=chunks, dtype=float, meta=meta)
    # Few blocks along ``axis`` (e.g. the runs): added and turned into ratios in one task per block,
    # with no sum or slice layer and no concatenation copy of the blocks (dask's tree sum copies
    # every partial sum it adds into one array: ~8 of the ~70 ms of a 3-run ring in 3 blocks).
    return da.blockwise(_stacked_of_blocks, out_index, partial, tuple(range(partial.ndim)), axis=axis,
                        concatenate=False, adjust_chunks={0: len(RING_MAPS)},
                        meta=meta, align_arrays=False)


#: Blocks of partial sums added by one task (dask's tree sum above that: a task's memory stays bounded).
_ADDED_IN_ONE_TASK = 16


def _stacked_of_blocks(blocks: list[np.ndarray], *, axis: int) -> np.ndarray:
    """`stacked_maps` of the sum of the blocks along ``axis`` (blockwise, a list not concatenated)."""
    parts = [block[(slice(None),) * axis + (0,)] if block.shape[axis] == 1 else block.sum(axis=axis)
             for block in blocks]
    sums = parts[0]
    if len(parts) > 1:
        sums = parts[0] + parts[1]  # a new array: the blocks themselves are never written to
        for part in parts[2:]:
            sums += part
    return stacked_maps(sums)


def _stack_over(arrays: list[Any], axis: int) -> Any:
    """Stacked maps of per-run (counts, acceptance, off, alpha, acceptance_off) along ``axis``."""
    if not any(is_dask(a) for a in arrays):
        return stack_sums(partial_sums(*arrays, axis=axis), axis=axis + 1)
    import dask.array as da

    # One task per block for the partial sums (all channels), then `stack_sums`.
    arrays = [da.asarray(a) for a in arrays]
    chunks = list(arrays[0].chunks)
    chunks[axis] = (1,) * len(chunks[axis])
    partial = da.map_blocks(partial_sums, *arrays, axis=axis, new_axis=0, chunks=((5,), *chunks), dtype=float,
                            meta=np.empty((0,) * (arrays[0].ndim + 1), float))
    return stack_sums(partial, axis=axis + 1)


def stack_ring_maps(maps: xr.Dataset | Sequence[xr.Dataset], *, dim: str = OBS_DIM) -> xr.Dataset:
    """Stack per-observation ring results: off counts and ``alpha * off`` add.

    The stacked ``alpha`` is ``sum(alpha_i * off_i) / sum(off_i)`` (Gammapy's on-off stacking rule);
    where the stacked off counts are 0 it falls back to ``sum(acceptance_i) / sum(acceptance_off_i)``.
    ``acceptance`` adds and ``acceptance_off`` is set to ``acceptance / alpha`` so that their
    ratio stays alpha. NaN entries (no off acceptance) count as 0.

    Parameters
    ----------
    maps : `xarray.Dataset` with an ``obs_id`` dim, or a sequence of Datasets
        Outputs of `~xgamma.background.ring_background`.
    dim : str
        Observation dimension. Default is "obs_id".

    Returns
    -------
    stacked : `xarray.Dataset`
        Same variables without the observation dimension (lazy for dask input).
    """
    if not isinstance(maps, xr.Dataset):
        maps = list(maps)
        if not maps:
            raise EstimatorError("nothing to stack: empty list of ring background maps")
        maps = xr.concat(maps, dim=dim, coords="minimal", compat="override", join="override")
    if dim not in maps.dims:
        return maps
    missing = {"counts", "acceptance", "off", "acceptance_off", "alpha"} - set(maps.data_vars)
    if missing:
        raise EstimatorError(f"cannot stack ring maps: missing variables {sorted(missing)}")
    # Sums on the bare arrays (numpy or dask), wrapped into DataArrays once: xarray's where /
    # fillna / sum with alignment cost more than the sums themselves.
    template = maps["counts"]
    axis = template.dims.index(dim)
    names = ("counts", "acceptance", "off", "alpha", "acceptance_off")
    stacked = _stack_over([in_order(maps.variables[name], template.dims).data for name in names], axis)
    out = dataset_from_arrays(template.isel({dim: 0}, drop=True), split_channels(stacked, RING_MAPS))
    if "exclusion" in maps:
        excl = maps["exclusion"]
        out["exclusion"] = excl.isel({dim: 0}) if dim in excl.dims else excl
    if "wcs" in maps.coords and dim not in maps.coords["wcs"].dims:
        out = out.assign_coords(wcs=maps.coords["wcs"])
    out.attrs = dict(maps.attrs)
    return out
