"""Compute dask collections with a progress bar: dask.distributed's when a client is active,
the local scheduler's otherwise."""

from __future__ import annotations

from typing import Any

__all__ = ["compute"]


def _current_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:  # no client started
        return None


def compute(*collections: Any, progress: bool = False) -> tuple:
    """`dask.compute` of ``collections``, showing progress when asked.

    With a ``distributed`` client current (``--workers`` / ``--scheduler``), the graph runs on
    that cluster and `distributed.progress` draws the bar; otherwise dask's local
    `~dask.diagnostics.ProgressBar` (shown for computations longer than 1 s).
    """
    import dask

    client = _current_client()
    if client is not None:
        futures = client.compute(list(collections))
        if progress:
            from distributed import progress as distributed_progress

            distributed_progress(futures)
        return tuple(client.gather(futures))
    if not progress:
        return dask.compute(*collections)
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=1.0, dt=0.5):
        return dask.compute(*collections)
