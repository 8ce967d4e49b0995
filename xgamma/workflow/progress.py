"""Compute dask collections with a progress bar: dask.distributed's when a client is active,
the local scheduler's otherwise."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["collector_spared", "compute", "current_client", "threaded_get", "warm_up_workers"]


def current_client() -> Any:
    """The current `distributed.Client`, or None (without importing distributed)."""
    # A client can only exist if distributed was imported: do not import it (0.2-0.3 s) to look.
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return distributed.default_client()
    except ValueError:  # no client started
        return None


#: What the tasks of an analysis import on a worker (`warm_up_workers`): the modules of the functions in
#: the graph of a streamed mosaic.
TASK_MODULES = ("xgamma.makers.maps", "xgamma.makers.squash", "xgamma.io.datastore", "xgamma.io.chunked",
                "xgamma.workflow.mosaic", "dask.array", "astropy.io.fits", "zarr")
#: What the tasks of the ring background and significance import besides (xgamma.fit, xgamma.models:
#: ~0.15 s a worker that maps alone do not need).
SIGNIFICANCE_MODULES = ("xgamma.estimators.significance",)


def warm_up_workers(sections: Any = ()) -> None:
    """With a `distributed` client current, let its workers import what the tasks need while this
    process reads the configuration and builds the graph (`xgamma.cluster.warm_up`).

    ``sections``: the configuration's section names (a mapping will do); with ``ring``,
    ``significance`` or ``exclusion`` the modules of those stages are imported too.
    """
    client = current_client()
    if client is not None:
        from xgamma.cluster import warm_up

        significance = any(name in sections for name in ("ring", "significance", "exclusion"))
        warm_up(client, TASK_MODULES + (SIGNIFICANCE_MODULES if significance else ()))


@contextlib.contextmanager
def collector_spared() -> Iterator[Callable[[], None]]:
    """Keep the cyclic garbage collector off the objects that exist when the block starts, and when
    the function it yields is called (`gc.freeze`), until the block ends (`gc.unfreeze`).

    For a survey's graph: while it is built and computed, the collector's full passes scanned the
    process's ~2.6 x 10^5 objects (imports, the analysis, the graph; 0.05-0.26 s each, 0.5-0.7 s per run
    on the 1000-run survey, among them the scheduler's while it unpacks the graph) and freed
    nothing of them. Cyclic garbage made in the block is collected as usual; that of the spared
    objects once the block ends. If objects are frozen already, whoever froze them decides: nothing
    is done.
    """
    import gc

    if gc.get_freeze_count():
        yield lambda: None
        return
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


def threaded_get() -> Any:
    """dask's threaded scheduler as a function (a callable scheduler spares dask its client lookup)."""
    from dask.threaded import get

    return get


def compute(*collections: Any, progress: bool = False, started: list | None = None) -> tuple:
    """`dask.compute` of ``collections``, showing progress when asked.

    With a ``distributed`` client current (``--workers`` / ``--scheduler``), the graph runs on
    that cluster and `distributed.progress` draws the bar; otherwise dask's local
    `~dask.diagnostics.ProgressBar` (shown for computations longer than 1 s).

    ``started``: futures of some of the graph's tasks submitted earlier (same keys, e.g.
    `xgamma.workflow.mosaic.start_loads`). The list is emptied once the graph is submitted: the
    scheduler then holds those tasks for the graph alone, and frees each result when its
    dependents are done instead of at the end.
    """
    import dask

    client = current_client()
    if client is not None:
        futures = client.compute(list(collections))
        if started:
            started.clear()
        if progress:
            from distributed import progress as distributed_progress

            distributed_progress(futures)
        return tuple(client.gather(futures))
    # Without a scheduler, or with one named by a string, dask imports distributed (~0.3 s) just to
    # look for a client: pass the function of its default (the threaded scheduler of dask arrays).
    options = {} if dask.config.get("scheduler", None) else {"scheduler": threaded_get()}
    if not progress:
        return dask.compute(*collections, **options)
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=1.0, dt=0.5):
        return dask.compute(*collections, **options)
