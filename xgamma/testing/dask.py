"""Prove laziness: a scheduler that counts (and forbids) dask computes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["CountingScheduler", "raise_if_dask_computes"]


class CountingScheduler:
    """A dask scheduler that counts how often it is called and raises past ``max_computes``."""

    def __init__(self, max_computes: int = 0) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        import dask

        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"Too many dask computes: {self.total_computes} > allowed {self.max_computes}"
            )
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[CountingScheduler]:
    """Context manager that raises ``RuntimeError`` when dask computes more than ``max_computes`` times.

    Examples
    --------
    >>> import dask.array as da
    >>> from xgamma.testing import raise_if_dask_computes
    >>> with raise_if_dask_computes():
    ...     x = da.ones(10, chunks=5) + 1   # building a graph computes nothing
    """
    import dask

    scheduler = CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler
