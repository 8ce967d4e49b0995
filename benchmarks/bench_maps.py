"""Map making benchmark: xgamma vs Gammapy 2.1 in the same run, each case in a fresh process.

Cases: the reference configuration (3 CTA 1DC runs, 10 x 400 x 500 cube, counts + exposure +
background, stacked) and H.E.S.S. DL3 DR1 PKS 2155-304 runs (1, 4 and 16 runs; 4 x 4 deg TAN,
0.02 deg, safe energy range), plus a map-size scan on the CTA runs. For each case it prints the
wall time of map making (data reading included, imports excluded; first = cold, best of the
following = warm), the ratio, and each process's peak resident memory.

xgamma runs with dask's synchronous scheduler (one core) unless ``--threads`` is given.

Usage::

    XGAMMA_DATA=../shared/data python benchmarks/bench_maps.py [--repeat 3] [--threads]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

CASES = {
    "cta-3runs-10x400x500": dict(
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
    # What the run uses, imported up front as the Gammapy script does with gammapy.makers.
    import xgamma.irf.aeff, xgamma.irf.background, xgamma.io.events
    from xgamma.geometry import SkyGeometry, energy_edges
    from xgamma.io.datastore import DataStore
    from xgamma.makers import make_maps
    case, data, repeat, threads = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
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
        maps = maps.compute(scheduler="threads" if threads else "sync")
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "peak_mb": peak, "counts": float(maps.counts.sum()),
                      "background": float(maps.background.sum())}))
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


def _run(script: str, case: dict, data: str, repeat: int, threads: bool) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args = [sys.executable, "-c", script, json.dumps(case), data, str(repeat), "1" if threads else "0"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", action="store_true", help="xgamma on dask's threaded scheduler (2 cores)")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    data = os.environ.get("XGAMMA_DATA")
    if not data:
        sys.exit("set XGAMMA_DATA to the shared data folder")
    header = f"{'case':24s} {'xgamma cold':>11s} {'warm':>7s} {'gammapy cold':>12s} {'warm':>7s} {'ratio warm':>10s} " \
             f"{'ratio cold':>10s} {'xg MB':>7s} {'gp MB':>7s} {'d counts':>8s} {'bkg rel':>8s}"
    print(header)
    for name in args.cases:
        case = CASES[name]
        ours = _run(XGAMMA, case, data, args.repeat, args.threads)
        ref = _run(GAMMAPY, case, data, args.repeat, False)
        warm_x, warm_g = min(ours["times"][1:] or ours["times"]), min(ref["times"][1:] or ref["times"])
        print(f"{name:24s} {ours['times'][0]:11.3f} {warm_x:7.3f} {ref['times'][0]:12.3f} {warm_g:7.3f} "
              f"{warm_g / warm_x:10.1f} {ref['times'][0] / ours['times'][0]:10.1f} {ours['peak_mb']:7.0f} "
              f"{ref['peak_mb']:7.0f} {ours['counts'] - ref['counts']:8.0f} "
              f"{ours['background'] / ref['background'] - 1:8.1e}", flush=True)


if __name__ == "__main__":
    main()
