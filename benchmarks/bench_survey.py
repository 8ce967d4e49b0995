"""Survey scale: time and peak memory of a Galactic-plane mosaic vs runs and workers, next to Gammapy.

One command (``--quick`` for a few minutes)::

    python benchmarks/bench_survey.py [--quick] [--data DIR]

1. Simulates (once, cached in ``--data``, default ``$TMPDIR/xgamma-bench-survey``) a survey of
   ``max(--runs)`` runs with `xgamma.simulate.survey` (seed 0; H.E.S.S.-like tiling from l = 250 deg,
   0.7 deg apart, 28-min runs, three zenith-band IRF files). The first N runs of it are the N-run
   survey (each run's events depend only on the seed and its index).
2. For each N in ``--runs`` and each mode in ``--modes`` (``sync``: dask's synchronous scheduler, one
   core; ``w1``/``w2``: `xgamma.cluster.local_cluster` with 1 / 2 single-threaded worker processes,
   as ``xgamma run --workers K``; ``sync2``, on request: two ``sync`` processes at once, each the
   whole case, whose mean wall is the host's own ceiling for two workers: the same work with no
   scheduler, only two processes sharing the machine's memory bandwidth and caches), runs in a
   fresh process ``run_analysis`` of the survey configuration with ``output.format: zarr`` into a
   fresh folder, for two product sets:

   * ``maps``: stacked counts, exposure, background cubes (+ squashed images), streamed to zarr;
   * ``full``: the same + adaptive ring background (HGPS parameters: r_in 0.7 deg, width 0.44 deg,
     r_out_max 1.7 deg, step 0.1 deg, theta 0.22 deg) + excess and significance at 0.1 and 0.2 deg.

   Geometry: the H.E.S.S. survey's, l = 250..65 deg x |b| < 3 deg at 0.02 deg, 24 energy bins
   0.2-100 TeV (8750 x 300 x 24 = 63 M voxels per cube), 256-pixel chunks; maps.offset_max 2.5 deg,
   safe energy 'aeff-default'. ``--quick``: l = 250..275 deg, 10 bins, N = 10 and 100.
3. Gammapy 2.1 (``--gammapy``, default on): ``DatasetsMaker(n_jobs=2, stack_datasets=True,
   cutout_mode="trim")`` with ``MapDatasetMaker`` (counts, exposure, background) and
   ``SafeMaskMaker(offset-max 2.5 deg, aeff-default)`` on the same geometry and runs, for N up to
   ``--gammapy-max-runs`` (default 100: ~1 s per run; the stacked cube alone is ~1 GB in float32).
   It is run right after xgamma's cases of the same N (alternating tools).

Columns: ``wall`` = seconds from the start of ``run_analysis`` to the products published
(graph building + compute + zarr writes; cluster start-up excluded, printed as ``start``);
``s/run/core`` = wall x cores used / N (cores = 1 for sync and w1, 2 for w2 and Gammapy n_jobs=2);
``client MB`` = peak RSS of the driving process; ``worker MB`` = largest peak RSS of a worker
process (Gammapy: of its job processes); ``tasks`` = dask tasks run (a callback of the synchronous
scheduler, or distributed's task stream); ``out %`` = share of wall x cores spent outside the tasks'
compute (imports and graph building in the client, scheduling, transfers, idle workers, writes
outside tasks: an upper bound of the per-task overhead); ``task %`` = the same share of the tasks'
window (first task started to last task ended, x cores): the per-task overhead proper (scheduling
gaps, transfers, workers idle at the end), without the client's serial work before the first task
and after the last (issue target <= 10 %); ``lead s`` = seconds from the start of ``run_analysis`` to
the first task's start and ``tail s`` = from the last task's end to the products published (the
client's serial work the ``out %`` of the workers includes); ``load1`` = 1-minute load average at
the end of the case.

Repeats (``--repeat K``): this host's one-process times move by 20-27 % between consecutive runs,
so a ratio from one run of each mode says little. With K > 1 the modes run K times interleaved
(sync, w1, w2, sync, w1, w2, ...); every row is printed with its repeat number, the targets are
checked repeat by repeat (with ``sync2``: ``host 2 vs 1`` = 2 x sync / sync2 and ``w2 / (sync2 / 2)``,
what two workers achieve against what two processes can here), and a last table gives each repeat's
ratios (computed within the repeat),
their median and range, and the ratios of the median times. ``--code LABEL=DIR`` (repeatable) times
the xgamma package in DIR too (put first on the cases' PYTHONPATH, e.g. a ``git worktree`` of older
code): within each repeat the codes take turns, in reversed order every other repeat, so that a gain
can be told from the host's drift. Neither option changes a column. With K > 1 each repeat starts with
``host ref s``: the CPU seconds of a fixed numpy and Python workload (`HOST_REFERENCE`) in a fresh
process, a snapshot of this host's speed (it moves by 20-40 % within an hour, on a quiet machine); the
repeats table gives ``cost / host ref`` next to the cost.

The xgamma packages timed are byte-compiled first (`byte_compile`), as an installed package is.

``map s/run`` (the summary lines and the repeats table): the seconds of map making's own tasks (loads
and blocks: reading, binning, exposure and background of each run on each chunk) per run, from the
synchronous case: the run-by-run work alone. The cost per run above adds what a whole run needs
besides (the client's imports and graph, the chunk sums, the energy squash, the zarr writes).

Targets (issue 11): map making <= 0.03 s per run per core; peak RSS at N = 1000 below 2 GB per
worker; N = 1000 on 2 workers within 1.3 x N x (cost per run) / 2 and at least 1.6x faster than 1
worker; per-task overhead <= 10 %. The summary lines after the table compute these from the
measured rows. The host is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import CASE_CWD, THREAD_LIMITS

FULL = {"l_range": (250.0, 65.0), "nbins": 24, "runs": [10, 100, 1000]}
QUICK = {"l_range": (250.0, 275.0), "nbins": 10, "runs": [10, 100]}


def survey_config(store: str, n_runs: int, l_range: tuple[float, float], nbins: int, products: str) -> dict:
    first, last = l_range
    extent = (last - first) % 360.0
    config = {
        "data": {"datastore": store, "obs_ids": list(range(1, n_runs + 1))},
        "geometry": {"center": {"lon": f"{(first + extent / 2) % 360.0} deg", "lat": "0 deg"},
                     "width": [f"{extent} deg", "6 deg"], "binsz": "0.02 deg",
                     "energy": {"min": "0.2 TeV", "max": "100 TeV", "nbins": nbins}},
        "maps": {"offset_max": "2.5 deg", "safe_energy": "aeff-default", "chunks": 256},
        "output": {"format": "zarr"},
    }
    if products == "full":
        config["ring"] = {"method": "adaptive_ring", "r_in": "0.7 deg", "width": "0.44 deg", "r_out_max": "1.7 deg",
                          "stepsize": "0.1 deg", "theta": "0.22 deg", "threshold_alpha": 0.1}
        config["significance"] = {"correlation_radius": ["0.1 deg", "0.2 deg"]}
    return config


XGAMMA_CASE = textwrap.dedent("""
    import json, os, resource, sys, time, tempfile
    import dask
    config, mode = json.loads(sys.argv[1]), sys.argv[2]
    from dask.utils import key_split
    from xgamma.makers.chunks import MAP_TASK_PREFIXES
    from xgamma.workflow import run_analysis

    def is_map_task(key):  # the run-by-run work: loads and blocks (not sums, squash, ring, writes)
        return key_split(key) + "-" in MAP_TASK_PREFIXES

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def usage():  # CPU seconds (user + system) and page faults of this process so far
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime, r.ru_minflt + r.ru_majflt

    client = cluster = None
    start = 0.0
    if mode == "sync":
        from dask.callbacks import Callback

        class TaskTimes(Callback):  # tasks run and the seconds spent inside them (synchronous scheduler)
            def __init__(self):
                super().__init__()
                self.n, self.seconds, self.started, self.window = 0, 0.0, {}, (float("inf"), 0.0)
                self.map_seconds = 0.0

            def _pretask(self, key, dsk, state):
                self.started[key] = time.perf_counter()

            def _posttask(self, key, result, dsk, state, worker_id):
                self.n += 1
                now = time.perf_counter()
                self.seconds += now - self.started[key]
                if is_map_task(key):
                    self.map_seconds += now - self.started[key]
                self.window = (min(self.window[0], self.started.pop(key)), max(self.window[1], now))

        dask.config.set(scheduler="synchronous")
        tasks = TaskTimes()
        tasks.register()
    else:
        from distributed import Client, get_task_stream
        from xgamma.cluster import local_cluster
        t0 = time.perf_counter()
        cluster = local_cluster(int(mode[1:]))
        client = Client(cluster)
        start = time.perf_counter() - t0
        stream = get_task_stream(client)
        stream.__enter__()
    before = [usage()] + (list(client.run(usage).values()) if client is not None else [])
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        t0, epoch0 = time.perf_counter(), time.time()
        analysis = run_analysis(config, output=folder)
        wall = time.perf_counter() - t0
        stores = analysis.summary["mosaic"]["stores"]
    after = [usage()] + (list(client.run(usage).values()) if client is not None else [])
    cpu = sum(a[0] - b[0] for a, b in zip(after, before))
    faults = sum(a[1] - b[1] for a, b in zip(after, before))
    if client is None:
        n_tasks, busy, cores, window = tasks.n, tasks.seconds, 1, tasks.window[1] - tasks.window[0]
        map_busy = tasks.map_seconds
        lead = tasks.window[0] - t0
    else:
        stream.__exit__(None, None, None)
        n_tasks, cores = len(stream.data), int(mode[1:])
        computes = [s for task in stream.data for s in task["startstops"] if s["action"] == "compute"]
        busy = sum(s["stop"] - s["start"] for s in computes)
        map_busy = sum(s["stop"] - s["start"] for task in stream.data if is_map_task(task["key"])
                       for s in task["startstops"] if s["action"] == "compute")
        window = max(s["stop"] for s in computes) - min(s["start"] for s in computes)
        lead = min(s["start"] for s in computes) - epoch0
    out = {"wall": wall, "start": start, "client_mb": peak_mb(), "load1": os.getloadavg()[0],
           "xgamma": os.path.dirname(sys.modules["xgamma"].__file__),
           "chunks": sum(s["chunks"] for s in stores.values()), "tasks": n_tasks,
           "outside": 100 * max(0.0, 1 - busy / (wall * cores)),
           "between": 100 * max(0.0, 1 - busy / (window * cores)), "lead": lead, "tail": wall - lead - window,
           "cpu": cpu, "faults": faults, "map_s": map_busy}
    if client is not None:
        out["worker_mb"] = max(client.run(
            lambda: __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1024).values())
        client.close()
        cluster.close()
    print(json.dumps(out))
""")

#: A fixed CPU-bound workload (numpy kernels like the block tasks' on cache-sized arrays, then a Python
#: loop), timed in a fresh process before each repeat: its CPU seconds follow this host's speed, which
#: moves by 20-40 % within an hour here, so a cost per run can be read against it.
HOST_REFERENCE = textwrap.dedent("""
    import time
    import numpy as np
    rng = np.random.default_rng(0)
    logs, rows, index = rng.random((25, 8192)), rng.random((9, 8192)), rng.integers(0, 8, 25)
    t0 = time.process_time()
    for _ in range(1000):
        values = np.exp(logs.astype(np.float32)).astype(np.float64)
        values *= np.take(rows, index, axis=0)
        values[1:] -= values[:-1]
        values /= 1.5
    total = 0
    for i in range(6_000_000):
        total += i * i % 7
    print(time.process_time() - t0)
""")

GAMMAPY_CASE = textwrap.dedent("""
    import json, os, resource, sys, time, warnings
    warnings.simplefilter("ignore")
    config = json.loads(sys.argv[1])
    import astropy.units as u
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import DatasetsMaker, MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom

    t0 = time.perf_counter()
    geometry = config["geometry"]
    observations = DataStore.from_dir(config["data"]["datastore"]).get_observations(config["data"]["obs_ids"])
    axis = MapAxis.from_energy_bounds(0.2, 100, geometry["energy"]["nbins"], "TeV")
    width = float(geometry["width"][0].split()[0])
    geom = WcsGeom.create(skydir=(float(geometry["center"]["lon"].split()[0]), 0), frame="galactic", binsz=0.02,
                          width=(width, 6), proj="CAR", axes=[axis])
    makers = [MapDatasetMaker(selection=["counts", "exposure", "background"]),
              SafeMaskMaker(methods=["offset-max", "aeff-default"], offset_max=2.5 * u.deg)]
    (stacked,) = DatasetsMaker(makers, stack_datasets=True, n_jobs=2, cutout_mode="trim").run(
        MapDataset.create(geom, name="stacked"), observations)  # Datasets([stacked])
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "start": 0.0, "client_mb": usage, "worker_mb": children,
                      "load1": os.getloadavg()[0], "counts": float(stacked.counts.data.sum())}))
""")


def warm_cache(store: Path) -> tuple[float | None, float]:
    """Read every file of the survey ``store`` once, so that each case starts from the page cache.

    This VM's kernel (DAMON ``pageout``) evicts file pages left unused for about a minute, so
    without it a case would read part of the 340 MB of runs from the disk, a part that depends
    on how long ago the previous case ran (the first sync case of a session took 37.6 s, the
    next ones 27 s). Returns the fraction of the files' bytes that was resident before (None
    without util-linux ``fincore``) and the seconds the reading took.
    """
    files = sorted(str(path) for path in store.rglob("*") if path.is_file())
    resident = None
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE", *files],
                             capture_output=True, text=True, check=True).stdout.split()
        sizes = [int(value) for value in out]
        resident = min(1.0, sum(sizes[0::2]) / max(sum(sizes[1::2]), 1))  # pages round up
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    t0 = time.perf_counter()
    for name in files:
        with open(name, "rb") as handle:
            while handle.read(1 << 24):
                pass
    return resident, time.perf_counter() - t0


def byte_compile(folders: list[str | None]) -> None:
    """Byte-compile the xgamma packages to be timed (``None``: the one imported here), as ``pip install``
    does: a user's Python then reads the modules' bytecode. Without it, under ``PYTHONDONTWRITEBYTECODE``
    (this sandbox sets it) every process of every case compiled xgamma's modules again: ~0.2 CPU-s each,
    three processes on two workers."""
    import compileall

    for folder in folders:
        package = Path(folder) / "xgamma" if folder else Path(__import__("xgamma").__file__).parent
        compileall.compile_dir(str(package), quiet=1)


def host_reference() -> float:
    """CPU seconds of `HOST_REFERENCE` in a fresh process (this host's speed now)."""
    result = subprocess.run([sys.executable, "-c", HOST_REFERENCE], capture_output=True, text=True, check=True,
                            env=dict(os.environ, **THREAD_LIMITS), cwd=CASE_CWD)
    return float(result.stdout.strip())


def _run(script: str, config: dict, *args: str, env: dict | None = None, copies: int = 1) -> dict:
    """Run ``script`` in a fresh process (``copies`` processes at once: see the ``sync2`` mode) and return
    its JSON result (the copies' mean wall, summed CPU and faults, largest peaks)."""
    resident, seconds = warm_cache(Path(config["data"]["datastore"]))
    env = dict(os.environ, **THREAD_LIMITS, **(env or {}))  # os.environ now: main() has set BENCH_TMP
    procs = [subprocess.Popen([sys.executable, "-c", script, json.dumps(config), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=CASE_CWD)
             for _ in range(copies)]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            return {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"}
        results.append(json.loads(out.strip().splitlines()[-1]))
    res = dict(results[0], cached=resident, warm_s=seconds)
    if copies > 1:
        res.update(wall=sum(r["wall"] for r in results) / copies, walls=[r["wall"] for r in results],
                   cpu=sum(r["cpu"] for r in results), faults=sum(r["faults"] for r in results),
                   client_mb=max(r["client_mb"] for r in results), load1=os.getloadavg()[0])
    return res


def ensure_survey(folder: Path, n_runs: int, l_range: tuple[float, float]) -> Path:
    """The simulated survey of ``n_runs`` runs (reused when already there)."""
    store = folder / f"survey-{n_runs}-seed0"
    marker = store / "survey.json"
    if marker.is_file() and json.loads(marker.read_text())["n_runs"] >= n_runs:
        print(f"survey: reusing {store}")
        return store
    from xgamma.simulate import survey

    t0 = time.perf_counter()
    survey(store, n_runs=n_runs, seed=0, l_range=l_range, overwrite=True)
    print(f"survey: {n_runs} runs simulated in {time.perf_counter() - t0:.1f} s -> {store} "
          f"(load1 {os.getloadavg()[0]:.2f})", flush=True)
    return store


HEADER = (f"{'tool':8s} {'products':8s} {'runs':>5s} {'mode':>5s} {'wall s':>8s} {'start s':>7s} "
          f"{'s/run/core':>10s} {'client MB':>9s} {'worker MB':>9s} {'chunks':>6s} {'tasks':>6s} {'out %':>5s} "
          f"{'task %':>6s} {'lead s':>6s} {'tail s':>6s} {'cpu s':>6s} {'faults k':>8s} {'cached':>6s} {'load1':>5s}")


def _row(tool: str, products: str, n: int, mode: str, res: dict) -> str:
    if "error" in res:
        return f"{tool:8s} {products:8s} {n:5d} {mode:>5s}  failed: {res['error']}"
    cores = 2 if mode in ("w2", "n_jobs2") else 1
    worker = f"{res['worker_mb']:9.0f}" if "worker_mb" in res else f"{'-':>9s}"
    tasks = (f"{res['tasks']:6d} {res['outside']:5.1f} {res['between']:6.1f} {res['lead']:6.2f} {res['tail']:6.2f}"
             if "tasks" in res else f"{'-':>6s} {'-':>5s} {'-':>6s} {'-':>6s} {'-':>6s}")
    usage = f"{res['cpu']:6.1f} {res['faults'] / 1e3:8.0f}" if "cpu" in res else f"{'-':>6s} {'-':>8s}"
    cached = f"{100 * res['cached']:5.0f}%" if res.get("cached") is not None else f"{'-':>6s}"
    return (f"{tool:8s} {products:8s} {n:5d} {mode:>5s} {res['wall']:8.2f} {res['start']:7.2f} "
            f"{res['wall'] * cores / n:10.4f} {res['client_mb']:9.0f} {worker} {res.get('chunks', 0):6d} {tasks} "
            f"{usage} {cached} {res['load1']:5.2f}")


def _summary(results: dict) -> None:
    """The issue's targets from the rows of one repeat (``results[tool, products, n, mode]`` = one row)."""
    print("\nTargets (issue 11):")
    for products in ("maps", "full"):
        sync = {n: r for (t, p, n, m), r in results.items() if t == "xgamma" and p == products and m == "sync"
                and "error" not in r}
        w2 = {n: r for (t, p, n, m), r in results.items() if t == "xgamma" and p == products and m == "w2"
              and "error" not in r}
        if not sync:
            continue
        n_max = max(sync)
        cost = sync[n_max]["wall"] / n_max
        line = f"  {products}: cost per run per core (sync, N = {n_max}) {cost:.4f} s"
        if products == "maps":
            line += f" (target <= 0.03 s: {'met' if cost <= 0.03 else 'NOT met'})"
        n_min = min(sync)
        if n_min < n_max:  # the fixed costs (data store, graph, zarr metadata) left out
            slope = (sync[n_max]["wall"] - sync[n_min]["wall"]) / (n_max - n_min)
            line += f"; marginal, N = {n_min} -> {n_max}: {slope:.4f} s"
        print(line)
        if "map_s" in sync[n_max]:
            print(f"  {products}: map making alone (load and block tasks, sync, N = {n_max}) "
                  f"{sync[n_max]['map_s'] / n_max:.4f} s per run per core (the cost above adds the client's imports "
                  "and graph, the chunk sums, the squash and the writes)")
        if n_max in w2:
            ideal = n_max * cost / 2
            ratio = w2[n_max]["wall"] / ideal
            speedup = sync[n_max]["wall"] / w2[n_max]["wall"]
            print(f"  {products}: N = {n_max} on 2 workers {w2[n_max]['wall']:.1f} s = {ratio:.2f} x N x cost / 2 "
                  f"(target <= 1.3: {'met' if ratio <= 1.3 else 'NOT met'}); speed-up over sync {speedup:.2f}")
        w1 = {n: r for (t, p, n, m), r in results.items() if t == "xgamma" and p == products and m == "w1"
              and "error" not in r}
        if n_max in w1 and n_max in w2:
            ratio = w1[n_max]["wall"] / w2[n_max]["wall"]
            print(f"  {products}: N = {n_max}: 2 workers {ratio:.2f}x faster than 1 (target >= 1.6: "
                  f"{'met' if ratio >= 1.6 else 'NOT met'})")
        for mode, rows in (("w1", w1), ("w2", w2)):
            if n_max in rows:
                share = rows[n_max]["between"]
                print(f"  {products}: N = {n_max} {mode}: per-task overhead {share:.1f} % of the tasks' window x cores "
                      f"(target <= 10 %: {'met' if share <= 10 else 'NOT met'}); with the client's serial work "
                      f"{rows[n_max]['outside']:.1f} %")
        peaks = [r.get("worker_mb", r["client_mb"]) for (t, p, n, m), r in results.items()
                 if t == "xgamma" and p == products and n == n_max and "error" not in r]
        if peaks:
            print(f"  {products}: peak RSS at N = {n_max}: {max(peaks):.0f} MB per process (target < 2048 MB)")


def _ratios(rows: dict) -> dict:
    """The target ratios of one repeat's xgamma rows (``rows[mode]``, largest N, one product set)."""
    out = {}
    if "sync" in rows:
        out["cost s/run"] = rows["sync"]["wall"] / rows["sync"]["n"]
        if "map_s" in rows["sync"]:
            out["map s/run"] = rows["sync"]["map_s"] / rows["sync"]["n"]
        if "host_s" in rows["sync"]:
            out["host ref s"] = rows["sync"]["host_s"]
            out["cost / host ref"] = out["cost s/run"] / rows["sync"]["host_s"]
        if "w2" in rows:
            out["w2 / (N x cost / 2)"] = rows["w2"]["wall"] / (rows["sync"]["wall"] / 2)
    if "w1" in rows and "w2" in rows:
        out["2 vs 1"] = rows["w1"]["wall"] / rows["w2"]["wall"]
    if "sync2" in rows and "sync" in rows:
        out["host 2 vs 1"] = 2 * rows["sync"]["wall"] / rows["sync2"]["wall"]
        if "w2" in rows:
            out["w2 / (sync2 / 2)"] = rows["w2"]["wall"] / (rows["sync2"]["wall"] / 2)
    return out


def _repeat_summary(repeats: list[dict], products: str, n: int, label: str = "") -> None:
    """Every repeat's times and ratios, then their medians and ranges and the ratios of the median times."""
    import statistics

    modes = ("sync", "w1", "w2", "sync2")
    rows = [{m: dict(r[("xgamma", products, n, m)], n=n) for m in modes
             if ("xgamma", products, n, m) in r and "error" not in r[("xgamma", products, n, m)]} for r in repeats]
    names = ["cost s/run", "map s/run", "w2 / (N x cost / 2)", "2 vs 1"]
    if any("host_s" in row.get("sync", {}) for row in rows):
        names = ["host ref s", *names, "cost / host ref"]
    if any("sync2" in row for row in rows):
        names += ["host 2 vs 1", "w2 / (sync2 / 2)"]
    code = f", code {label}" if label else ""
    print(f"\nRepeats ({products}, N = {n}{code}; modes interleaved, repeat by repeat; ratios within each repeat):")
    print(f"  {'rep':>3s} " + " ".join(f"{m + ' s':>7s}" for m in modes) + " "
          + " ".join(f"{name:>20s}" for name in names))
    per_repeat = []
    for k, row in enumerate(rows, start=1):
        ratios = _ratios(row)
        per_repeat.append(ratios)
        times = " ".join(f"{row[m]['wall']:7.2f}" if m in row else f"{'-':>7s}" for m in modes)
        print(f"  {k:3d} {times} " + " ".join(f"{ratios[name]:20.4f}" if name in ratios else f"{'-':>20s}"
                                             for name in names))
    medians = {m: statistics.median(row[m]["wall"] for row in rows if m in row)
               for m in modes if any(m in row for row in rows)}
    print("  median / range over the repeats:")
    for m, value in medians.items():
        walls = [row[m]["wall"] for row in rows if m in row]
        print(f"    {m:5s} wall {value:7.2f} s  (range {min(walls):.2f}-{max(walls):.2f})")
    for name in names:
        values = [r[name] for r in per_repeat if name in r]
        if values:
            print(f"    {name:20s} per repeat: median {statistics.median(values):.4f}, range {min(values):.4f}-"
                  f"{max(values):.4f}")
    from_medians = _ratios({m: {"wall": value, "n": n} for m, value in medians.items()})
    print("    from the median times: " + ", ".join(f"{name} {value:.4f}" for name, value in from_medians.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small geometry (l = 250..275 deg), N = 10, 100")
    parser.add_argument("--runs", nargs="*", type=int, help="numbers of runs (default 10 100 1000; quick: 10 100)")
    parser.add_argument("--modes", nargs="*", default=["sync", "w1", "w2"], choices=["sync", "w1", "w2", "sync2"],
                        help="sync2: two synchronous processes at once, each the whole case (the host's ceiling "
                             "for two workers; not in the default)")
    parser.add_argument("--products", nargs="*", default=["maps", "full"], choices=["maps", "full"])
    parser.add_argument("--no-gammapy", dest="gammapy", action="store_false", help="skip Gammapy")
    parser.add_argument("--gammapy-max-runs", type=int, default=100)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "xgamma-bench-survey",
                        help="folder of the simulated survey (kept between runs)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the xgamma modes of each N and product set this many times, interleaved (sync, w1, "
                             "w2, sync, w1, w2, ...), and report each repeat's ratios and their medians")
    parser.add_argument("--code", action="append", default=[], metavar="LABEL=DIR",
                        help="also time the xgamma package in DIR (first on PYTHONPATH of the cases, e.g. a git "
                             "worktree of older code), labelled LABEL; repeatable. Within each repeat the codes "
                             "take turns (order reversed every other repeat). Default: the xgamma imported here")
    args = parser.parse_args()
    setup = QUICK if args.quick else FULL
    runs = sorted(args.runs or setup["runs"])
    args.data.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BENCH_TMP", str(args.data))
    codes = [tuple(item.split("=", 1)) for item in args.code] or [("", None)]
    print(f"load average (1, 5, 15 min) at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores; geometry l = {setup['l_range'][0]}..{setup['l_range'][1]} deg x |b| < 3 deg, "
          f"0.02 deg, {setup['nbins']} energy bins")
    for label, folder in codes:
        if folder is not None:
            print(f"code {label}: {folder}")
    store = ensure_survey(args.data, max(runs), setup["l_range"])
    byte_compile([folder for _, folder in codes])
    prefixed = args.repeat > 1 or len(codes) > 1

    def prefix(k: int, label: str) -> str:
        return f"{k:3d} {label:8s} " if prefixed else ""

    print((f"{'rep':>3s} {'code':8s} " if prefixed else "") + HEADER, flush=True)
    repeats = {(label, k): {} for k in range(1, args.repeat + 1) for label, _ in codes}
    for n in runs:
        for products in args.products:
            config = survey_config(str(store), n, setup["l_range"], setup["nbins"], products)
            for k in range(1, args.repeat + 1):
                reference = host_reference() if args.repeat > 1 else None
                if reference is not None:
                    print(f"    (repeat {k}: host reference {reference:.3f} CPU-s, load1 {os.getloadavg()[0]:.2f})",
                          flush=True)
                for label, folder in (codes if k % 2 else codes[::-1]):
                    env = None if folder is None else {"PYTHONPATH": os.pathsep.join(
                        [folder, *filter(None, [os.environ.get("PYTHONPATH")])])}
                    for mode in args.modes:
                        copies = 2 if mode == "sync2" else 1
                        res = repeats[label, k]["xgamma", products, n, mode] = _run(
                            XGAMMA_CASE, config, "sync" if copies > 1 else mode, env=env, copies=copies)
                        if reference is not None:
                            res["host_s"] = reference
                        if label and k == 1 and mode == args.modes[0] and "xgamma" in res:
                            print(f"    (code {label}: xgamma imported from {res['xgamma']})")
                        print(prefix(k, label) + _row("xgamma", products, n, mode, res), flush=True)
        if args.gammapy and n <= args.gammapy_max_runs:
            config = survey_config(str(store), n, setup["l_range"], setup["nbins"], "maps")
            res = repeats[codes[0][0], 1]["gammapy", "maps", n, "n_jobs2"] = _run(GAMMAPY_CASE, config)
            print(prefix(1, "") + _row("gammapy", "maps", n, "n_jobs2", res), flush=True)
    for (label, k), results in repeats.items():
        if prefixed:
            print(f"\n[repeat {k}{', code ' + label if label else ''}]", end="")
        _summary(results)
    if prefixed:
        for label, _ in codes:
            for products in args.products:
                _repeat_summary([repeats[label, k] for k in range(1, args.repeat + 1)], products, max(runs), label)


if __name__ == "__main__":
    main()
