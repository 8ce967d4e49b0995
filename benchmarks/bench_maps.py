"""Map making benchmark: xgamma, Gammapy 2.1 and the numpy floor in the same run, alternating processes.

Two parts, each tool in fresh processes, BLAS/OpenMP threads pinned to 1, xgamma on dask's
synchronous scheduler (one core) unless ``--threads``:

* **stage**: map making alone (open the data store, select runs, counts + exposure + background,
  stacked; imports excluded). Each round starts one xgamma process, one Gammapy process and, for
  the reference case, one process of the numpy floor (``floor_maps.py``), each repeating the
  stage ``--repeat`` times; ``--rounds`` rounds alternate the tools. cold = first repetition of the
  first round; warm = best of all other repetitions of all rounds.
* **process** (``--process``): the whole command as a user runs it, ``xgamma run
  examples/cta-gc-maps.yaml`` (-> maps.fits + images.fits) against the equivalent Gammapy script
  (MapDatasetMaker + SafeMaskMaker offset-max, stack, write the cube and ``to_image()``), best of
  ``--rounds`` alternating runs; interpreter start and imports included.

Cases: the reference configuration (3 CTA 1DC runs, 10 x 400 x 500 galactic CAR cube), H.E.S.S. DL3
DR1 PKS 2155-304 runs (1, 4 and 16 runs; 4 x 4 deg TAN, 0.02 deg, safe energy range), and a map-size
scan on the CTA runs. Columns: ``x/floor`` = xgamma warm / floor warm; ``graph`` = seconds of the
xgamma stage before the compute (open the data store, select, build the graph); ``tasks`` = tasks
computed; ``ovh %`` = share of the compute not spent inside tasks (the scheduler's per-task
overhead, sync scheduler; one extra repetition timed task by task); ``d counts`` = counts xgamma - Gammapy (events
within float32 rounding of a pixel edge); ``bkg rel`` = relative difference of the background total.

Usage (one command; ~3 minutes on a quiet 2-core machine)::

    XGAMMA_DATA=/work/shared/data python benchmarks/bench_maps.py [--rounds 3] [--repeat 3] [--process]
        [--cases cta-3runs-10x400x500 hess-1run ...] [--threads]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from common import CASE_CWD, ENV, python, time_processes

HERE = Path(__file__).resolve().parent
REFERENCE = "cta-3runs-10x400x500"

CASES = {
    REFERENCE: dict(
        store="cta-1dc/index/gps", obs_ids=[110380, 111140, 111159], center=(0, 0), frame="galactic",
        proj="CAR", width=(10, 8), binsz=0.02, offset_max=4.0, safe=False),
    "hess-1run": dict(store="hess-dl3-dr1", object="PKS 2155-304", nobs=1, center=(329.717, -30.2256),
                      frame="icrs", proj="TAN", width=(4, 4), binsz=0.02, offset_max=2.0, safe=True),
    "hess-4runs": dict(store="hess-dl3-dr1", object="PKS 2155-304", nobs=4, center=(329.717, -30.2256),
                       frame="icrs", proj="TAN", width=(4, 4), binsz=0.02, offset_max=2.0, safe=True),
    "hess-16runs": dict(store="hess-dl3-dr1", object="PKS 2155-304", nobs=16, center=(329.717, -30.2256),
                        frame="icrs", proj="TAN", width=(4, 4), binsz=0.02, offset_max=2.0, safe=True),
    "cta-3runs-10x200x250": dict(
        store="cta-1dc/index/gps", obs_ids=[110380, 111140, 111159], center=(0, 0), frame="galactic",
        proj="CAR", width=(10, 8), binsz=0.04, offset_max=4.0, safe=False),
    "cta-3runs-10x800x1000": dict(
        store="cta-1dc/index/gps", obs_ids=[110380, 111140, 111159], center=(0, 0), frame="galactic",
        proj="CAR", width=(10, 8), binsz=0.01, offset_max=4.0, safe=False),
}

XGAMMA = textwrap.dedent("""
    import json, resource, sys, time
    import astropy.units as u, dask, dask.array, numpy as np
    from dask.callbacks import Callback
    # What the stage uses, imported up front as the Gammapy script does with gammapy.makers.
    import xgamma.irf.aeff, xgamma.irf.background, xgamma.io.events, xgamma.makers.observation
    from xgamma.geometry import SkyGeometry, energy_edges
    from xgamma.io.datastore import DataStore
    from xgamma.makers import make_maps
    case, data, repeat, threads = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    scheduler = "threads" if threads else "sync"

    def stage(timer=None):
        store = DataStore(f"{data}/{case['store']}")
        if "object" in case:
            store = store.select(object_name=case["object"])
            ids = store.obs_ids[: case["nobs"]]
        else:
            ids = case["obs_ids"]
        geometry = SkyGeometry.create(tuple(case["center"]), width=[w * u.deg for w in case["width"]],
                                      binsz=case["binsz"] * u.deg, frame=case["frame"], projection=case["proj"],
                                      energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 10))
        maps = make_maps(store.observations(ids), geometry, offset_max=case["offset_max"] * u.deg,
                         safe_energy="aeff-default" if case["safe"] else None)
        if timer is None:
            return maps.compute(scheduler=scheduler)
        t0 = time.perf_counter()
        with timer:
            maps.compute(scheduler=scheduler)
        timer.compute = time.perf_counter() - t0

    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        maps = stage()
        times.append(time.perf_counter() - t0)

    class TaskTimer(Callback):  # time spent inside tasks, to tell the scheduling overhead apart
        def _start(self, dsk):
            self.inside, self.tasks, self.t = 0.0, 0, {}
        def _pretask(self, key, dsk, state):
            self.t[key] = time.perf_counter()
        def _posttask(self, key, result, dsk, state, worker_id):
            self.inside += time.perf_counter() - self.t.pop(key)
            self.tasks += 1

    timer = TaskTimer()
    t0 = time.perf_counter()
    stage(timer)
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "peak_mb": peak, "counts": float(maps.counts.sum()),
                      "xgamma": sys.modules["xgamma"].__path__[0],
                      "background": float(maps.background.sum()), "tasks": timer.tasks,
                      "inside": timer.inside, "compute": timer.compute, "total": total}))
""")

GAMMAPY = textwrap.dedent("""
    import json, resource, sys, time, warnings, logging
    warnings.simplefilter("ignore"); logging.disable(logging.WARNING)
    import astropy.units as u, numpy as np
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom
    case, data, repeat = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        store = DataStore.from_dir(f"{data}/{case['store']}")
        if "object" in case:
            table = store.obs_table
            ids = [int(i) for i in table["OBS_ID"][table["OBJECT"] == case["object"]]][: case["nobs"]]
        else:
            ids = case["obs_ids"]
        observations = store.get_observations(ids)
        axis = MapAxis.from_energy_bounds(0.1, 10, 10, "TeV")
        geom = WcsGeom.create(skydir=tuple(case["center"]), binsz=case["binsz"], width=tuple(case["width"]),
                              frame=case["frame"], proj=case["proj"], axes=[axis])
        stacked = MapDataset.create(geom=geom)
        maker = MapDatasetMaker(selection=["counts", "exposure", "background"])
        methods = ["offset-max", "aeff-default"] if case["safe"] else ["offset-max"]
        safe = SafeMaskMaker(methods=methods, offset_max=case["offset_max"] * u.deg)
        for obs in observations:
            stacked.stack(safe.run(maker.run(stacked.copy(), obs), obs))
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "peak_mb": peak, "counts": float(stacked.counts.data.sum()),
                      "background": float(stacked.background.data.sum())}))
""")

# The whole process of `xgamma run examples/cta-gc-maps.yaml`, written with Gammapy.
GAMMAPY_PROCESS = textwrap.dedent("""
    import sys, warnings, logging
    warnings.simplefilter("ignore"); logging.disable(logging.WARNING)
    import astropy.units as u
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom
    data, out = sys.argv[1], sys.argv[2]
    observations = DataStore.from_dir(f"{data}/cta-1dc/index/gps").get_observations([110380, 111140, 111159])
    axis = MapAxis.from_energy_bounds(0.1, 10, 10, "TeV")
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.02, width=(10, 8), frame="galactic", proj="CAR", axes=[axis])
    stacked = MapDataset.create(geom=geom)
    maker = MapDatasetMaker(selection=["counts", "exposure", "background"])
    safe = SafeMaskMaker(methods=["offset-max"], offset_max=4 * u.deg)
    for obs in observations:
        stacked.stack(safe.run(maker.run(stacked.copy(), obs), obs))
    stacked.write(f"{out}/maps.fits", overwrite=True)
    stacked.to_image().write(f"{out}/images.fits", overwrite=True)
""")

def _json_run(args: list[str]) -> dict:
    out = subprocess.run(args, capture_output=True, text=True, env=ENV, check=False, cwd=CASE_CWD)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cold_warm(runs: list[list[float]]) -> tuple[float, float]:
    """First repetition of the first process; best of everything else."""
    rest = runs[0][1:] + [t for times in runs[1:] for t in times]
    return runs[0][0], min(rest or runs[0])


def stage(name: str, data: str, rounds: int, repeat: int, threads: bool) -> None:
    case = CASES[name]
    xg, gp, floor = [], [], []
    for _ in range(rounds):
        xg.append(_json_run([sys.executable, "-c", XGAMMA, json.dumps(case), data, str(repeat),
                             "1" if threads else "0"]))
        gp.append(_json_run([sys.executable, "-c", GAMMAPY, json.dumps(case), data, str(repeat)]))
        if name == REFERENCE:
            floor.append(_json_run([sys.executable, str(HERE / "floor_maps.py"), "--repeat", str(repeat)]))
    xg_cold, xg_warm = _cold_warm([r["times"] for r in xg])
    gp_cold, gp_warm = _cold_warm([r["times"] for r in gp])
    floor_warm = _cold_warm([r["times"] for r in floor])[1] if floor else float("nan")
    overhead = min(1 - r["inside"] / r["compute"] for r in xg)
    outside = min(r["total"] - r["compute"] for r in xg)
    last_x, last_g = xg[-1], gp[-1]
    print(f"# {name}: xgamma imported from {', '.join(sorted({r['xgamma'] for r in xg}))}", flush=True)
    print(f"{name:22s} {xg_cold:7.3f} {xg_warm:7.3f} {gp_cold:7.3f} {gp_warm:7.3f} {gp_warm / xg_warm:6.1f} "
          f"{floor_warm:7.3f} {xg_warm / floor_warm:7.2f} {outside:6.3f} {last_x['tasks']:5d} {100 * overhead:5.1f} "
          f"{max(r['peak_mb'] for r in xg):6.0f} {max(r['peak_mb'] for r in gp):6.0f} "
          f"{last_x['counts'] - last_g['counts']:8.0f} {last_x['background'] / last_g['background'] - 1:8.1e} "
          f"{os.getloadavg()[0]:5.2f}", flush=True)


def process(data: str, rounds: int) -> None:
    config = HERE.parent / "examples" / "cta-gc-maps.yaml"
    commands = {"xgamma run": python("-m", "xgamma.cli.main", "run", str(config), "--quiet", "--output"),
                "gammapy script": python("-c", GAMMAPY_PROCESS, data)}
    time_processes(commands, rounds, data, "images.fits", "cta-gc-maps (maps.fits + images.fits)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of processes (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of the stage per process (default 3)")
    parser.add_argument("--threads", action="store_true", help="xgamma on dask's threaded scheduler (2 cores)")
    parser.add_argument("--cases", nargs="*", default=[REFERENCE, "hess-1run", "hess-16runs"], choices=list(CASES))
    parser.add_argument("--process", action="store_true", help="also time the whole `xgamma run` process")
    args = parser.parse_args()
    data = os.environ.get("XGAMMA_DATA")
    if not data:
        sys.exit("set XGAMMA_DATA to the shared data folder")
    data = os.path.abspath(data)  # the cases run in another folder
    print(f"load average (1, 5, 15 min) at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores; rounds {args.rounds} x repeat {args.repeat}; "
          f"xgamma scheduler: {'threads' if args.threads else 'sync'}")
    print(f"{'case':22s} {'xg cold':>7s} {'warm':>7s} {'gp cold':>7s} {'warm':>7s} {'ratio':>6s} {'floor':>7s} "
          f"{'x/floor':>7s} {'graph':>6s} {'tasks':>5s} {'ovh %':>5s} {'xg MB':>6s} {'gp MB':>6s} {'d counts':>8s} "
          f"{'bkg rel':>8s} {'load1':>5s}")
    for name in args.cases:
        stage(name, data, args.rounds, args.repeat, args.threads)
    if args.process:
        process(data, args.rounds)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
