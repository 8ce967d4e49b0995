"""A `dask.distributed` LocalCluster tuned for xgamma's tasks (map-sized numpy temporaries).

`distributed` starts its worker processes with ``MALLOC_TRIM_THRESHOLD_=65536`` so that they hand
freed memory back to the system at once. Setting any glibc malloc variable also switches off
glibc's adaptive thresholds, so every array above 128 kB is then mapped fresh from the kernel and
its pages faulted in one by one. xgamma's tasks make many map-sized temporaries; measured on a
2-core VM (16 H.E.S.S. runs, maps + ring + significance), one worker took 2.3 s with that
setting, 1.3 s with `WORKER_MALLOC_ENVIRON`, against 1.1 s for the same graph on the synchronous
scheduler. `WORKER_MALLOC_ENVIRON` keeps up to 32 MiB blocks on the heap and 64 MiB of free heap
before trimming (glibc's own adaptive ceilings), so memory still goes back to the system.

A worker runs its tasks in a thread, and glibc gives a thread its own malloc arena, made of
separately mapped 64 MiB heaps that are handed back to the kernel as soon as they empty: the
temporaries of the next task are faulted in again. ``MALLOC_ARENA_MAX=1`` keeps every thread on
the main heap, as in a one-process run (numpy allocates with the GIL held, so threads do not wait
on its lock). Measured on the 1000-run survey (`benchmarks/bench_survey.py`, one worker): 0.6-0.9 M
page faults and 2.7-3.7 s of system time without it, 0.16 M and 1.7-1.9 s with it.

The cluster of `local_cluster` has no dashboard (unless one is asked for), so nobody looks at
what distributed measures for it: the statistical profiler, which samples
every task thread every 10 ms (a few per cent of the workers' CPU time), the event-loop health
check every 20 ms and the system monitor every 0.5 s in the scheduler, each nanny and each worker.
Without a dashboard they run at `QUIET_MONITORING`: on a 2-core VM an idle 2-worker cluster then
takes 0.018 CPU-seconds a second instead of 0.087, and the 1000-run survey on two workers (three
processes on two cores: every CPU-second the event loops take is taken from a task) 1.3 s less
CPU. The memory monitor (pause, spill, restart of a worker) checks every 0.5 s instead of 0.1 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["QUIET_MONITORING", "WORKER_MALLOC_ENVIRON", "local_cluster", "warm_up"]

#: glibc malloc settings for worker processes (bytes): see the module docstring.
WORKER_MALLOC_ENVIRON = {
    "MALLOC_MMAP_THRESHOLD_": 32 * 1024**2,
    "MALLOC_TRIM_THRESHOLD_": 64 * 1024**2,
    "MALLOC_ARENA_MAX": 1,
}

#: distributed's monitoring without a dashboard: no profiler, the rest 4-25 times less often than
#: distributed's defaults (module docstring).
QUIET_MONITORING = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "500ms",
}


def local_cluster(n_workers: int, *, threads_per_worker: int = 1, monitor: bool | None = None, **kwargs: Any) -> Any:
    """Start a `distributed.LocalCluster` of worker processes with `WORKER_MALLOC_ENVIRON`.

    Parameters
    ----------
    n_workers : int
        Number of worker processes (>= 1).
    threads_per_worker : int
        Threads per worker. Default is 1 (xgamma's tasks hold the GIL part of the time).
    monitor : bool, optional
        Keep distributed's monitoring as configured (by default: the statistical profiler,
        event-loop and system figures sampled often, for a dashboard) rather than
        `QUIET_MONITORING`. Default: only with a dashboard (``dashboard_address`` given), the
        only place they are shown.
    **kwargs
        Passed to `distributed.LocalCluster` (default ``dashboard_address=None``).

    Returns
    -------
    cluster : `distributed.LocalCluster`
        Use it as a context manager, with a ``Client(cluster)``.

    Examples
    --------
    >>> from distributed import Client                       # doctest: +SKIP
    >>> with local_cluster(2) as cluster, Client(cluster):  # doctest: +SKIP
    ...     images = squash_energy(make_maps(observations, geometry, offset_max="4 deg")).compute()
    """
    import dask
    from distributed import LocalCluster

    from xgamma.exceptions import ConfigError

    if int(n_workers) < 1:
        raise ConfigError(f"n_workers must be >= 1, got {n_workers!r}")
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_MALLOC_ENVIRON}
    kwargs.setdefault("dashboard_address", None)
    if monitor is None:
        monitor = kwargs["dashboard_address"] is not None
    # Without a dashboard the scheduler still serves its small HTTP API: on any free port, not
    # on 8787 (which another cluster may hold: a warning each time).
    kwargs["scheduler_kwargs"] = {"dashboard_address": ":0", **kwargs.get("scheduler_kwargs", {})}
    # The scheduler and the nannies read these when they start, a nanny hands them to its worker
    # with the rest of its config: all while the cluster starts.
    settings = {"distributed.nanny.pre-spawn-environ": environ,
                **({} if monitor else QUIET_MONITORING)}
    with dask.config.set(settings):
        return LocalCluster(n_workers=int(n_workers), threads_per_worker=threads_per_worker, processes=True, **kwargs)


def warm_up(client: Any, modules: Sequence[str]) -> None:
    """Start importing ``modules`` on every worker of ``client`` and return at once.

    A fresh worker process imports xgamma, astropy, xarray and zarr when its first task arrives:
    about a second on this 2-core VM, during which every worker is idle. Called when the client
    starts building a graph, the imports overlap that work instead. They run on the worker's
    event loop (which hands out tasks only once they are done), not on a thread beside its task
    thread: two threads importing the same extension modules at once is asking for trouble.
    Workers that have already imported the modules are done at once; a module that fails to
    import is left for the task that needs it to report. A worker's first warm-up imports with the
    cyclic garbage collector paused, then freezes what is there (`gc.freeze`): on the 1000-run
    survey, each worker's collections took 0.39-0.45 s, 0.07-0.08 s after.
    """
    client.run(_import_on_loop, list(modules), wait=False)


async def _import_on_loop(modules: list[str], dask_worker: Any = None) -> None:
    import gc
    import importlib
    import sys

    fresh = [name for name in modules if name not in sys.modules]
    if not fresh:
        return
    # What the imports make lives as long as the process: the cyclic collector need not look at it,
    # neither while it is made (two full collections of 0.1 s each per worker here) nor later
    # (`gc.freeze`). Only at a worker's first warm-up, and only if it holds no task's state (a
    # cluster shared with other work): frozen, that state would never be collected.
    idle = dask_worker is None or not dask_worker.state.tasks
    collecting = gc.isenabled()
    gc.disable()
    try:
        for name in fresh:
            try:
                importlib.import_module(name)
            except ImportError:  # the task that needs it raises the real error
                pass
    finally:
        if idle:
            gc.freeze()
        if collecting:
            gc.enable()
