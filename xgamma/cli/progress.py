"""Progress display for dask computations: the distributed progress bar or the local one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["progress_context"]


@contextlib.contextmanager
def progress_context() -> Iterator[None]:
    """Show a progress bar for computes run inside the block (local scheduler only).

    With a ``distributed`` client the local callback is not called by the scheduler, so this
    stays silent; the dashboard shows progress there.
    """
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=1.0, dt=0.5):
        yield
