"""How xgamma's ring + significance chain scales: observations, map size, dask workers.

The chain is the one of ``xgamma run``'s significance stage (see `bench_ring.py`): open the data
store, per-run maps (counts, exposure, background) through `xgamma.workflow.stages.observation_images`,
ring background (per run, then stacked), correlated Li & Ma significance; one ``dask.compute``.

Three scans, each measurement in a fresh process, run ``--repeat`` times (default 3), best kept:

* ``nobs``: 1, 2, 4, 8, 16, 19 H.E.S.S. DL3 DR1 MSH 15-52 runs (the 19 runs of `bench_ring.py`,
  in run-number order), ICRS TAN 3 x 3 deg, 0.02 deg, 0.1-10 TeV in 10 bins, safe energy
  'aeff-default', offset_max 2 deg; ring r_in 0.5 deg, width 0.3 deg; correlation radius 0.1 deg.
  Synchronous scheduler (one core).
* ``size``: the same field with 16 runs at 0.04, 0.02 and 0.01 deg pixels, and the CTA 1DC
  Galactic-centre configuration (3 runs, 10 x 8 deg) at 0.04, 0.02 and 0.01 deg. Synchronous.
* ``workers``: the 16-run MSH 15-52 case, and the CTA case at 0.01 deg (larger tasks), on dask's
  synchronous scheduler, the threaded scheduler
  with 2 threads, and a ``distributed.LocalCluster`` of 1 and of 2 worker processes
  (`xgamma.cluster.local_cluster`, as ``xgamma run --workers K``: one thread per worker, glibc
  malloc settings for map-sized arrays); cluster start-up is excluded from the time and printed
  apart.

Columns: ``wall`` = best total time (graph building with data-store opening + compute), ``graph``
= the best repetition's graph-building part, ``ring`` = ring + significance alone on the same runs'
images held in memory as numpy (best of ``--repeat``; ``-`` for the workers scan), ``tasks`` /
``opt`` = tasks in the graph of the chain before / after dask's optimisation (culling, fusion),
``MB`` = peak RSS of the process that ran the chain (for a cluster: of the client process, and
``wrk MB`` the largest worker peak). The machine is
shared: the 1-minute load average is printed with each row.

Usage::

    XGAMMA_DATA=/work/shared/data python benchmarks/bench_scaling.py [--scans nobs size workers] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ring import CASES, select_obs_ids  # noqa: E402

SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    import astropy.units as u, dask, numpy as np
    from dask.base import collections_to_expr
    from xgamma.background.exclusion import make_exclusion_mask
    from xgamma.background import RingBackground
    from xgamma.workflow import Analysis
    from xgamma.workflow.stages import observation_images
    from xgamma.estimators.significance import significance_maps
    from xgamma.geometry import SkyGeometry, energy_edges
    from xgamma.io.datastore import DataStore

    case, data, repeat, mode = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def images_graph():
        observations = DataStore(f"{data}/{case['store']}").select(obs_ids=case["obs_ids"]).observations()
        geometry = SkyGeometry.create(tuple(case["center"]), width=[w * u.deg for w in case["width"]],
                                      binsz=case["binsz"] * u.deg, frame=case["frame"], projection=case["proj"],
                                      energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 10))
        lon, lat, r = case["exclusion"]
        exclusion = make_exclusion_mask(geometry.to_image(), f"{case['frame']}; circle({lon}, {lat}, {r})")
        state = Analysis(
            config={"maps": {"offset_max": f"{case['offset_max']} deg",
                             "safe_energy": "aeff-default" if case["safe"] else None}},
            observations=observations, geometry=geometry)
        return observation_images(state), exclusion

    def chain(images, exclusion):
        ring = RingBackground(r_in=f"{case['r_in']} deg", width=f"{case['ring_width']} deg", exclusion=exclusion,
                              offset_max=f"{case['ring_offset_max']} deg")
        result = ring.run(images)
        return result, significance_maps(result, correlation_radius=f"{case['radius']} deg")

    kwargs, client, startup = {}, None, 0.0
    if mode == "sync":
        kwargs = {"scheduler": "sync"}
    elif mode == "threads2":
        kwargs = {"scheduler": "threads", "num_workers": 2}
    else:  # distK: LocalCluster of K worker processes, one thread each
        from distributed import Client
        from xgamma.cluster import local_cluster  # what `xgamma run --workers K` starts
        t0 = time.perf_counter()
        cluster = local_cluster(int(mode[4:]))
        client = Client(cluster)
        startup = time.perf_counter() - t0

    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        images, exclusion = images_graph()
        result, maps = chain(images, exclusion)
        t1 = time.perf_counter()
        result, maps = dask.compute(result, maps, **kwargs)
        t2 = time.perf_counter()
        if best is None or t2 - t0 < best[0]:
            best = (t2 - t0, t1 - t0)
    out = {"wall": best[0], "graph": best[1], "startup": startup, "load1": __import__("os").getloadavg()[0],
           "sig_max": float(np.nanmax(maps["significance"].values))}
    lazy_images, exclusion = images_graph()
    lazy = list(chain(lazy_images, exclusion))
    out["tasks"] = len(collections_to_expr(lazy, optimize_graph=False).__dask_graph__())
    out["tasks_opt"] = len(collections_to_expr(lazy, optimize_graph=True).__dask_graph__())
    if client is not None:
        out["worker_mb"] = max(client.run(lambda: __import__("resource").getrusage(
            __import__("resource").RUSAGE_SELF).ru_maxrss / 1024).values())
        client.close()
        cluster.close()
    else:
        # ring + significance alone, from the same images held in memory (numpy-backed)
        in_memory = lazy_images.compute(scheduler="sync")
        ring_times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            dask.compute(*chain(in_memory, exclusion), scheduler="sync")
            ring_times.append(time.perf_counter() - t0)
        out["ring"] = min(ring_times)
        out["pixels"] = int(in_memory.sizes["lat"] * in_memory.sizes["lon"])
    out["peak_mb"] = peak_mb()
    print(json.dumps(out))
""")


def _run(case: dict, data: str, repeat: int, mode: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args = [sys.executable, "-c", SCRIPT, json.dumps(case), data, str(repeat), mode]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


HEADER = (f"{'scan':8s} {'case':22s} {'runs':>4s} {'pixels':>7s} {'mode':>8s} {'wall s':>7s} {'graph s':>7s} "
          f"{'ring s':>7s} {'tasks':>6s} {'opt':>6s} {'MB':>6s} {'wrk MB':>6s} {'max S':>6s} {'load1':>5s}")


def _row(scan: str, name: str, case: dict, mode: str, res: dict) -> str:
    pixels = res.get("pixels")
    if pixels is None:
        pixels = round(case["width"][0] / case["binsz"]) * round(case["width"][1] / case["binsz"])
    ring = f"{res['ring']:7.3f}" if "ring" in res else f"{'-':>7s}"
    worker = f"{res['worker_mb']:6.0f}" if "worker_mb" in res else f"{'-':>6s}"
    return (f"{scan:8s} {name:22s} {len(case['obs_ids']):4d} {pixels:7d} {mode:>8s} {res['wall']:7.2f} "
            f"{res['graph']:7.2f} {ring} {res['tasks']:6d} {res['tasks_opt']:6d} {res['peak_mb']:6.0f} {worker} "
            f"{res['sig_max']:6.2f} {res['load1']:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scans", nargs="*", default=["nobs", "size", "workers"], choices=["nobs", "size", "workers"])
    parser.add_argument("--nobs", nargs="*", type=int, default=[1, 2, 4, 8, 16, 19])
    parser.add_argument("--binsz", nargs="*", type=float, default=[0.04, 0.02, 0.01])
    parser.add_argument("--modes", nargs="*", default=["sync", "threads2", "dist1", "dist2"])
    args = parser.parse_args()
    data = os.environ.get("XGAMMA_DATA")
    if not data:
        sys.exit("set XGAMMA_DATA to the shared data folder")
    msh = dict(CASES["hess-msh1552"])
    msh["obs_ids"] = select_obs_ids(data, msh)
    cta = dict(CASES["cta-gc"])
    print(f"load average (1, 5, 15 min) at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores; best of {args.repeat}")
    print(f"MSH 15-52 runs: {msh['obs_ids']}")
    print(HEADER, flush=True)
    jobs = []
    if "nobs" in args.scans:
        for n in args.nobs:
            jobs.append(("nobs", f"msh1552-{n}runs", dict(msh, obs_ids=msh["obs_ids"][:n]), "sync"))
    if "size" in args.scans:
        for binsz in args.binsz:
            jobs.append(("size", f"msh1552-16runs-{binsz:g}deg", dict(msh, obs_ids=msh["obs_ids"][:16], binsz=binsz),
                         "sync"))
        for binsz in args.binsz:
            jobs.append(("size", f"cta-gc-{binsz:g}deg", dict(cta, binsz=binsz), "sync"))
    if "workers" in args.scans:
        for mode in args.modes:
            jobs.append(("workers", "msh1552-16runs", dict(msh, obs_ids=msh["obs_ids"][:16]), mode))
        for mode in args.modes:  # larger tasks: the per-task overhead of a cluster matters less
            jobs.append(("workers", "cta-gc-0.01deg", dict(cta, binsz=0.01), mode))
    for scan, name, case, mode in jobs:
        res = _run(case, data, args.repeat, mode)
        print(_row(scan, name, case, mode, res), flush=True)
        if res.get("startup"):
            print(f"{'':8s} (cluster start-up {res['startup']:.2f} s, not in wall)", flush=True)
    print(f"load average (1, 5, 15 min) at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
