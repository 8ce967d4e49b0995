"""Chunk writes of the streamed survey stores (`xgamma.io.chunked`)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import zarr

from xgamma.io import chunked


def _arrays(path) -> list:
    group = zarr.open_group(str(path), mode="w")
    return [group.create_array(name, shape=(4, 6), chunks=(2, 3), dtype="float32", fill_value=np.nan)
            for name in ("a", "b", "c")]


@pytest.mark.parametrize("without_sync", [False, True])
def test_a_chunks_variables_are_written_together(tmp_path, monkeypatch, without_sync):
    """One call to zarr's event loop for all of a chunk's variables, or one write at a time where zarr
    has no ``zarr.core.sync`` (not public API): each array gets its values in its region, nothing else."""
    if without_sync:
        monkeypatch.setitem(sys.modules, "zarr.core.sync", None)  # its import fails
    arrays = _arrays(tmp_path / "store.zarr")
    values = [np.full((2, 3), i + 1.5, dtype="float32") for i in range(3)]
    chunked._set_together([(array, (slice(2, 4), slice(0, 3)), value) for array, value in zip(arrays, values)])
    reopened = zarr.open_group(str(tmp_path / "store.zarr"), mode="r")
    for name, value in zip("abc", values):
        got = reopened[name][:]
        np.testing.assert_array_equal(got[2:4, 0:3], value)
        assert np.isnan(got[:2]).all() and np.isnan(got[:, 3:]).all()


def test_a_failing_write_among_them_raises(tmp_path):
    """A write that fails (here: an array opened read-only) fails the call, so the chunk's marker is not
    written; the other variables' writes are still made."""
    arrays = _arrays(tmp_path / "store.zarr")
    read_only = zarr.open_group(str(tmp_path / "store.zarr"), mode="r")["b"]
    writes = [(arrays[0], (slice(0, 2), slice(0, 3)), np.ones((2, 3), dtype="float32")),
              (read_only, (slice(0, 2), slice(0, 3)), np.ones((2, 3), dtype="float32"))]
    with pytest.raises(ValueError, match="read-only"):
        chunked._set_together(writes)
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "store.zarr"), mode="r")["a"][0:2, 0:3], 1.0)
