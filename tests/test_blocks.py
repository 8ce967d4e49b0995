"""The block engine: blocks chosen by size (never by the scheduler), overlap, channels, laziness."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from xgamma.blocks import BLOCK_SIZE, REDUCED_AXIS_FACTOR, block_chunks, block_size, overlap_apply, split_channels
from xgamma.exceptions import ConfigError
from xgamma.testing import raise_if_dask_computes


def test_block_chunks_merge_whole_chunks_only():
    chunks = ((1,) * 4, (50, 50, 20), (64, 64, 64))
    for size in (0, 1, 5_000, 20_000, 60_000, 10**6):
        blocks = block_chunks(chunks, size=size)
        for axis, (old, new) in enumerate(zip(chunks, blocks)):
            assert sum(new) == sum(old), axis
            # every block edge is a chunk edge: no chunk is split
            assert set(np.cumsum(new)) <= set(np.cumsum(old)), (size, axis)
        if size:
            values = [max(c) for c in blocks]
            assert np.prod(values) <= max(size, np.prod([max(c) for c in chunks])), size


def test_block_chunks_spatial_blocks_at_least_depth():
    blocks = block_chunks(((1,), (4, 4, 4, 30), (7, 7, 3)), depth=10, size=0)
    assert all(c >= 10 for c in blocks[1]) and all(c >= 10 for c in blocks[2])
    assert blocks == ((1,), (12, 30), (17,))


def test_blocks_do_not_depend_on_the_scheduler():
    # The graph is a function of the chunks and the block size, whatever scheduler is in effect.
    x = da.ones((6, 1, 300, 400), chunks=(1, 1, 100, 100))

    def layers():
        out = overlap_apply(_sum_core, x, depth=3, n_out=1)
        return {name: len(layer) for name, layer in out.__dask_graph__().layers.items()}

    with dask.config.set(scheduler="sync"):
        sync = layers()
    with dask.config.set(scheduler="threads", num_workers=7):
        threads = layers()
    assert sync == threads
    with dask.config.set({"xgamma.block_size": 300 * 400}):
        assert layers() != sync  # ... and the size does choose them


def test_block_chunks_reduce_first_bounds_one_entry():
    # A function reducing the runs one at a time: the plane budget is one run's, the block holds
    # up to REDUCED_AXIS_FACTOR x size values (three runs in one chunk do not split the plane).
    chunks = ((3,), (100, 100), (100, 100))
    assert block_chunks(chunks, size=40_000, reduce_first=True) == ((3,), (200,), (200,))
    assert block_chunks(chunks, size=40_000) == chunks  # otherwise: three runs per pixel, quarter planes
    assert block_chunks(((1,) * 12, (200,), (200,)), size=40_000, reduce_first=True) == ((4, 4, 4), (200,), (200,))


def test_block_size_config():
    assert block_size() == BLOCK_SIZE == 2**18
    with dask.config.set({"xgamma.block_size": 123}):
        assert block_size() == 123
    with dask.config.set({"xgamma.block_size": "many"}), pytest.raises(ConfigError, match="xgamma.block_size"):
        block_size()


def _sum_core(block, *, window, core, weight=1.0):
    """3 x 3 box sum (zero outside the array) and the window of each pixel's block, as channels."""
    padded = np.pad(block, [(0, 0)] * (block.ndim - 2) + [(1, 1), (1, 1)])
    ny, nx = block.shape[-2:]
    box = sum(padded[..., i:i + ny, j:j + nx] for i in range(3) for j in range(3)) * weight
    rows = np.broadcast_to(np.arange(*window[-2])[:, None], block.shape).astype(float)
    return np.stack([box, rows])[..., core[0], core[1]]


@pytest.mark.parametrize("size", [None, 0, 500, 5000])
@pytest.mark.parametrize("chunks", [(2, 7, 9), (1, 30, 5), (2, 4, 40)])
def test_overlap_apply_is_chunk_invariant_and_gives_windows(size, chunks):
    rng = np.random.default_rng(0)
    values = rng.random((2, 30, 40))
    expected = _sum_core(values, window=((0, 2), (0, 30), (0, 40)), core=(slice(None), slice(None)), weight=2.0)
    with dask.config.set({} if size is None else {"xgamma.block_size": size}):
        with raise_if_dask_computes():
            lazy = overlap_apply(_sum_core, da.from_array(values, chunks=chunks), depth=1, n_out=2, weight=2.0)
    assert lazy.chunks == ((2,), *da.from_array(values, chunks=chunks).chunks)
    out = lazy.compute(scheduler="sync")
    np.testing.assert_allclose(out[0], expected[0], rtol=1e-14)
    # the window a block function is told is where its block lies in the full array
    np.testing.assert_array_equal(out[1], expected[1])
    # numpy in: one call on the whole array, numpy out
    plain = overlap_apply(_sum_core, values, depth=1, n_out=2, weight=2.0)
    assert isinstance(plain, np.ndarray)
    np.testing.assert_array_equal(plain, expected)


def test_overlap_apply_takes_the_chunks_it_touches_one_task_per_block():
    # Inputs in other chunks than the blocks (a second input in one chunk, another in odd chunks): the
    # same values as numpy, and the layer is one task per block reading the input chunks directly
    # (no rechunk or overlap tasks in between).
    rng = np.random.default_rng(1)
    values, weights = rng.random((2, 30, 40)), rng.random((30, 40))

    def weighted(block, weight, *, window, core):
        return _sum_core(block * weight, window=window, core=core)

    expected = weighted(values, weights, window=((0, 2), (0, 30), (0, 40)), core=(slice(None), slice(None)))
    first = da.from_array(values, chunks=(2, 10, 10))
    for second in (da.from_array(weights, chunks=-1), da.from_array(weights, chunks=(7, 13))):
        with dask.config.set({"xgamma.block_size": 2 * 10 * 20}), raise_if_dask_computes():
            lazy = overlap_apply(weighted, first, second, depth=2, n_out=2, keep_chunks=False)
        assert lazy.chunks == ((2,), (2,), (10, 10, 10), (20, 20))
        graph = lazy.__dask_graph__()
        assert len(graph.layers) == 3  # the two inputs and the blocks' layer
        assert len(graph.layers[lazy.name]) == 6
        out = lazy.compute(scheduler="sync")
        np.testing.assert_allclose(out[0], expected[0], rtol=1e-14)
        np.testing.assert_array_equal(out[1], expected[1])
    with pytest.raises(ValueError, match="input 1 has shape"):
        overlap_apply(weighted, first, da.from_array(weights[:-1]), depth=2, n_out=2)


def test_overlap_apply_on_a_blockwise_variable_computes_in_a_dataset():
    # A variable of a Dataset that is a blockwise step (here an energy sum) and the input of a one-block
    # overlap: dask 2026.8 fused the two blockwise layers and `dask.compute(dataset, scheduler="sync")` then
    # missed the variable's keys. The overlap is its own layer.
    import xarray as xr

    values = np.random.default_rng(2).random((3, 12, 14))
    summed = da.from_array(values, chunks=-1).map_blocks(np.sum, axis=0, keepdims=True, chunks=((1,), (12,), (14,)))
    box = overlap_apply(_sum_core, summed, depth=1, n_out=2)[0]
    dataset = xr.Dataset({"summed": (("e", "y", "x"), summed), "box": (("e", "y", "x"), box)})
    (out,) = dask.compute(dataset, scheduler="sync")
    np.testing.assert_array_equal(out["summed"].values, values.sum(axis=0, keepdims=True))
    expected = _sum_core(values.sum(axis=0, keepdims=True), window=((0, 1), (0, 12), (0, 14)),
                         core=(slice(None), slice(None)))
    np.testing.assert_allclose(out["box"].values, expected[0], rtol=1e-14)


def test_overlap_apply_reduce_first_gives_one_entry_per_block():
    values = np.arange(4 * 10 * 12, dtype=float).reshape(4, 10, 12)

    def total(block, *, window, core):
        return block.sum(axis=0, keepdims=True)[None][..., core[0], core[1]]

    # a block function reducing the runs groups REDUCED_AXIS_FACTOR times more runs per block
    with dask.config.set({"xgamma.block_size": 2 * 120 // REDUCED_AXIS_FACTOR}):
        lazy = overlap_apply(total, da.from_array(values, chunks=(1, 10, 12)), depth=0, n_out=1, keep_chunks=False,
                             reduce_first=True)
    assert lazy.shape == (1, 2, 10, 12)  # two blocks of two runs
    np.testing.assert_array_equal(lazy.sum(axis=1).compute()[0], values.sum(axis=0))
    with pytest.raises(ValueError, match="keep_chunks=False"):
        overlap_apply(total, values, depth=0, n_out=1, reduce_first=True)


def test_split_channels_matches_slicing_and_stays_lazy():
    values = np.arange(3 * 5 * 7, dtype=float).reshape(3, 5, 7)
    lazy = da.from_array(values, chunks=(3, 2, 4)) * 2.0
    with raise_if_dask_computes():
        channels = split_channels(lazy, ["a", "b", "c"])
    assert list(channels) == ["a", "b", "c"]
    for i, channel in enumerate(channels.values()):
        assert channel.chunks == lazy.chunks[1:]
        block = channel.blocks[0, 0].compute(scheduler="sync")
        assert block.base is None or not np.shares_memory(block, values)  # a copy, not a view of the block
        np.testing.assert_array_equal(channel.compute(scheduler="sync"), 2.0 * values[i])
    # numpy in, views out
    plain = split_channels(values, ["a", "b", "c"])
    assert np.shares_memory(plain["b"], values)

