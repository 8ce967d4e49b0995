"""Fixtures for estimators tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def merge_pixels(request):
    """Run a test with the default block merging, or (0) with every chunk kept and overlapped.

    Small test maps fall under ``xgamma.merge_pixels`` and are processed as one block; 0 forces
    the ``map_overlap`` path so that chunk invariance is proven for it too.
    """
    import dask

    value = request.param
    if value is None:
        yield value
        return
    with dask.config.set({"xgamma.merge_pixels": value}):
        yield value
