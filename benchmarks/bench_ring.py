"""Ring background + Li & Ma significance benchmark: xgamma vs Gammapy 2.1 in the same run.

Two cases (issue 4):

* ``cta-gc``: CTA 1DC runs 110380, 111140, 111159; galactic CAR 10 x 8 deg, 0.02 deg, 0.1-10 TeV in
  10 bins, maps offset_max 4 deg; exclusion circle(-0.054, -0.053, 0.3) galactic; ring r_in 0.3 deg,
  width 0.3 deg, ring offset_max 3 deg; correlation radius 0.1 deg.
* ``hess-msh1552``: the H.E.S.S. DL3 DR1 runs pointed within 2.5 deg of MSH 15-52 (RA 228.53,
  Dec -59.16) whose OBJECT is 'MSH 15-5-02' (17 runs) or 'MSH15-52' (2 runs): 19 runs, 20136-20368;
  run 20151 (OBJECT 'custom', same pointing) is in the cone but left out, and printed as such.
  ICRS TAN 3 x 3 deg, 0.02 deg, 0.1-10 TeV in 10 bins, safe energy 'aeff-default', offset_max 2 deg
  (maps and ring); exclusion circle of 0.3 deg around the source; ring r_in 0.5 deg, width 0.3 deg;
  correlation radius 0.1 deg.

Two timed stages per case, each tool in its own fresh process:

* ``ring``: ring background + stacking + correlated significance only, starting from per-observation
  energy-squashed images already in memory. xgamma: `RingBackground.run` + `significance_maps` on a
  numpy-backed ``obs_id`` Dataset (row ``ring/numpy``), and the same Dataset chunked as the pipeline
  chunks it (256 x 256 pixels, one observation per chunk) computed with dask's synchronous
  scheduler (row ``ring/dask``). Gammapy: `RingBackgroundMaker` on each run's ``MapDataset.to_image()``, stacked
  ``MapDatasetOnOff``, `ExcessMapEstimator` (correlation radius 0.1 deg, correlate_off). Building the
  inputs (map making, squashing / ``to_image``) is outside the timed region for both.
* ``e2e``: the whole chain: open the data store, select runs, per-run maps (counts, exposure,
  background), squash, ring, stack, significance. xgamma goes through the pipeline's own
  `xgamma.workflow.stages.observation_images` (as ``xgamma run`` does) and one ``dask.compute``.

Times: first repetition = cold, best of the others = warm; ratio = Gammapy / xgamma (warm).
Memory: the process's peak RSS (``getrusage``) and, for ``ring``, the peak RSS reached inside the
timed region (the high-water mark is reset with ``/proc/self/clear_refs`` just before it).
Sanity check: max |significance difference| xgamma - Gammapy over pixels finite in both
(``max|dS|``), the same over the pixels whose correlated counts agree (``same on``: leaves out
the few pixels around events that the two map makers bin differently), whether the finite masks
are identical (``mask``) and whether the peak pixel is the same (``peak``).

xgamma runs on one core (dask synchronous scheduler; BLAS/OpenMP threads = 1) unless ``--threads``.

Each (case, stage) runs ``--rounds`` xgamma processes alternating with as many Gammapy processes
(``--repeat`` repetitions each): cold = first repetition of the first process, warm = best of all
the others (>= 5 with the defaults). ``--process`` adds whole processes: ``xgamma run`` of the
cta-gc configuration without the fit (maps, ring, significance -> FITS) against the same
Gammapy script, best of ``--rounds`` alternating runs.

Usage (one command)::

    XGAMMA_DATA=/work/shared/data python benchmarks/bench_ring.py [--rounds 3] [--repeat 3] [--process]
        [--cases cta-gc hess-msh1552] [--stages ring e2e] [--threads] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
from common import ENV, python, time_processes

CASES = {
    "cta-gc": dict(
        store="cta-1dc/index/gps", obs_ids=[110380, 111140, 111159], center=(0.0, 0.0), frame="galactic",
        proj="CAR", width=(10, 8), binsz=0.02, offset_max=4.0, safe=False,
        exclusion=(-0.054, -0.053, 0.3), r_in=0.3, ring_width=0.3, ring_offset_max=3.0, radius=0.1),
    "hess-msh1552": dict(
        store="hess-dl3-dr1", cone=(228.53, -59.16, 2.5), objects=("MSH 15-5-02", "MSH15-52"),
        center=(228.53, -59.16), frame="icrs",
        proj="TAN", width=(3, 3), binsz=0.02, offset_max=2.0, safe=True,
        exclusion=(228.53, -59.16, 0.3), r_in=0.5, ring_width=0.3, ring_offset_max=2.0, radius=0.1),
}

# Shared by both scripts: peak-RSS helpers (Linux).
_RSS = """
import resource
def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

XGAMMA = _RSS + textwrap.dedent("""
    import json, sys, time
    import astropy.units as u, dask, numpy as np
    from astropy.coordinates import SkyCoord
    from xgamma.background.exclusion import make_exclusion_mask
    from xgamma.background import RingBackground
    from xgamma.workflow import Analysis
    from xgamma.workflow.stages import observation_images
    from xgamma.estimators.significance import significance_maps
    from xgamma.geometry import SkyGeometry, energy_edges
    from xgamma.io.datastore import DataStore

    case, data, repeat, stage, out = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    scheduler = sys.argv[6]
    dask.config.set(scheduler=scheduler)
    peak_before = peak_mb()  # imports only

    def inputs():
        store = DataStore(f"{data}/{case['store']}").select(obs_ids=case["obs_ids"])
        observations = store.observations()
        geometry = SkyGeometry.create(tuple(case["center"]), width=[w * u.deg for w in case["width"]],
                                      binsz=case["binsz"] * u.deg, frame=case["frame"], projection=case["proj"],
                                      energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 10))
        lon, lat, r = case["exclusion"]
        exclusion = make_exclusion_mask(geometry.to_image(), f"{case['frame']}; circle({lon}, {lat}, {r})")
        state = Analysis(
            config={"maps": {"offset_max": f"{case['offset_max']} deg",
                             "safe_energy": "aeff-default" if case["safe"] else None}},
            observations=observations, geometry=geometry)
        return observation_images(state), exclusion  # lazy, as in run_significance

    def chain(images, exclusion):
        ring = RingBackground(r_in=f"{case['r_in']} deg", width=f"{case['ring_width']} deg", exclusion=exclusion,
                              offset_max=f"{case['ring_offset_max']} deg")
        result = ring.run(images)
        maps = significance_maps(result, correlation_radius=f"{case['radius']} deg")
        return dask.compute(result, maps)[1]

    def save(maps):  # significance and correlated counts (n_on) images
        shape = maps["significance"].shape[-2:]
        np.save(out, np.stack([maps[name].values.reshape(shape) for name in ("significance", "counts")]))

    result = {"peak_imports_mb": peak_before}
    if stage == "ring":
        lazy, exclusion = inputs()
        images = lazy.compute()  # numpy-backed, outside the timed region
        result["obs_ids"] = [int(i) for i in images.obs_id]
        # the pipeline's chunking of the same images: one observation and 256 x 256 pixels per chunk
        chunked = images.chunk({"obs_id": 1, "energy": 1, "lat": 256, "lon": 256})
        # The pipeline's maps have numpy coordinates (only the map data are lazy); `chunk` made them lazy too.
        chunked = chunked.assign_coords({name: images.coords[name] for name in images.coords})
        for label, data_in in (("numpy", images), ("dask", chunked)):
            times = []
            reset_peak()
            for _ in range(repeat):
                t0 = time.perf_counter()
                maps = chain(data_in, exclusion)
                times.append(time.perf_counter() - t0)
            result[label] = {"times": times, "peak_mb": peak_mb()}
            if label == "numpy":
                save(maps)
    else:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            images, exclusion = inputs()
            maps = chain(images, exclusion)
            times.append(time.perf_counter() - t0)
        result["obs_ids"] = [int(i) for i in images.obs_id]
        result["e2e"] = {"times": times, "peak_mb": peak_mb()}
        save(maps)
    result["peak_mb"] = peak_mb()
    print(json.dumps(result))
""")

GAMMAPY = _RSS + textwrap.dedent("""
    import json, sys, time, warnings, logging
    warnings.simplefilter("ignore"); logging.disable(logging.WARNING)
    import astropy.units as u, numpy as np
    from astropy.coordinates import SkyCoord
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.estimators import ExcessMapEstimator
    from gammapy.makers import MapDatasetMaker, RingBackgroundMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom
    from regions import CircleSkyRegion

    case, data, repeat, stage, out = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    peak_before = peak_mb()

    def observations():
        store = DataStore.from_dir(f"{data}/{case['store']}")
        return store.get_observations(case["obs_ids"])

    def image_datasets(obs_list):
        axis = MapAxis.from_energy_bounds(0.1, 10, 10, "TeV")
        geom = WcsGeom.create(skydir=tuple(case["center"]), binsz=case["binsz"], width=tuple(case["width"]),
                              frame=case["frame"], proj=case["proj"], axes=[axis])
        lon, lat, r = case["exclusion"]
        region = CircleSkyRegion(SkyCoord(lon, lat, unit="deg", frame=case["frame"]), r * u.deg)
        exclusion = ~geom.to_image().region_mask([region])
        maker = MapDatasetMaker(selection=["counts", "exposure", "background"])
        methods = ["offset-max", "aeff-default"] if case["safe"] else ["offset-max"]
        safe = SafeMaskMaker(methods=methods, offset_max=case["ring_offset_max"] * u.deg)
        empty = MapDataset.create(geom=geom)
        images = [safe.run(maker.run(empty.copy(name=str(obs.obs_id)), obs), obs).to_image() for obs in obs_list]
        return images, exclusion

    def chain(images, exclusion):
        ring = RingBackgroundMaker(r_in=f"{case['r_in']} deg", width=f"{case['ring_width']} deg",
                                   exclusion_mask=exclusion)
        stacked = None
        for image in images:
            on_off = ring.run(image)
            if stacked is None:
                # masked first so that every run's off counts are cut alike by its safe mask
                stacked = on_off.to_masked(name="stacked")
            else:
                stacked.stack(on_off)
        estimator = ExcessMapEstimator(correlation_radius=f"{case['radius']} deg", correlate_off=True)
        return estimator.run(stacked)

    result = {"peak_imports_mb": peak_before}
    if stage == "ring":
        obs_list = observations()
        images, exclusion = image_datasets(obs_list)  # outside the timed region
        result["obs_ids"] = [int(o.obs_id) for o in obs_list]
        times = []
        reset_peak()
        for _ in range(repeat):
            t0 = time.perf_counter()
            maps = chain(images, exclusion)
            times.append(time.perf_counter() - t0)
        result["ring"] = {"times": times, "peak_mb": peak_mb()}
    else:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            obs_list = observations()
            images, exclusion = image_datasets(obs_list)
            maps = chain(images, exclusion)
            times.append(time.perf_counter() - t0)
        result["obs_ids"] = [int(o.obs_id) for o in obs_list]
        result["e2e"] = {"times": times, "peak_mb": peak_mb()}
    shape = maps["sqrt_ts"].data.shape[-2:]
    np.save(out, np.stack([maps[name].data.reshape(shape) for name in ("sqrt_ts", "counts")]))
    result["peak_mb"] = peak_mb()
    print(json.dumps(result))
""")


def _run(script: str, case: dict, data: str, repeat: int, stage: str, out: str, scheduler: str) -> dict:
    args = [sys.executable, "-c", script, json.dumps(case), data, str(repeat), stage, out, scheduler]
    proc = subprocess.run(args, capture_output=True, text=True, env=ENV, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def select_obs_ids(data: str, case: dict) -> list[int]:
    """Runs of ``case``: its ``obs_ids``, or the runs pointed within ``cone`` whose OBJECT is in ``objects``.

    Done once here (both tools then get the same explicit list), so that the selection is visible.
    """
    if "obs_ids" in case:
        return list(case["obs_ids"])
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    table = Table.read(os.path.join(data, case["store"], "obs-index.fits.gz"))
    ra, dec, radius = case["cone"]
    pointings = SkyCoord(table["RA_PNT"], table["DEC_PNT"], unit="deg", frame="icrs")
    near = pointings.separation(SkyCoord(ra, dec, unit="deg", frame="icrs")).deg < radius
    objects = np.array([str(o).strip() for o in table["OBJECT"]])
    left_out = [f"{i} ('{o}')" for i, o in zip(table["OBS_ID"][near], objects[near]) if o not in case["objects"]]
    if left_out:
        print(f"  cone {case['cone']}: left out (OBJECT not in {list(case['objects'])}): {', '.join(left_out)}")
    return [int(i) for i in table["OBS_ID"][near & np.isin(objects, case["objects"])]]


def _cold_warm(times: list[float]) -> tuple[float, float]:
    """First repetition of the first process (cold); best of all other repetitions (warm)."""
    return times[0], min(times[1:] or times)


def _merged(rounds: list[dict]) -> dict:
    """One result from several processes: times concatenated (first process first), peaks maxed."""
    merged = dict(rounds[-1])
    for key, entry in rounds[-1].items():
        if isinstance(entry, dict) and "times" in entry:
            merged[key] = {"times": [t for r in rounds for t in r[key]["times"]],
                           "peak_mb": max(r[key]["peak_mb"] for r in rounds)}
    return merged


def compare(ours_file: str, ref_file: str) -> dict:
    """Significance (first image of each file) max |difference| on pixels finite in both, also
    restricted to pixels whose correlated counts (second image) agree, finite-mask agreement and
    same peak pixel.

    The two tools bin a few events differently (an event within float32 rounding of a pixel
    edge); each such event changes the correlated counts of the pixels within the correlation
    radius, where the significance of low-count pixels can move by a few tenths of a sigma. The
    second figure leaves those pixels out: it measures the ring / significance code alone.
    """
    (ours, ours_on), (ref, ref_on) = np.load(ours_file), np.load(ref_file)
    both = np.isfinite(ours) & np.isfinite(ref)
    same_on = both & (ours_on == ref_on)
    diff = np.abs(ours - ref)
    return {
        "max_abs_diff": float(np.max(diff[both])) if both.any() else float("nan"),
        "max_abs_diff_same_on": float(np.max(diff[same_on])) if same_on.any() else float("nan"),
        "n_diff_on": int((both & ~same_on).sum()),
        "n_finite": int(both.sum()),
        "same_mask": bool(np.array_equal(np.isfinite(ours), np.isfinite(ref))),
        "same_peak": bool(np.nanargmax(ours) == np.nanargmax(ref)),
        "peak_sigma": float(np.nanmax(ours)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating xgamma / Gammapy processes (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per process (default 3)")
    parser.add_argument("--threads", action="store_true", help="xgamma on dask's threaded scheduler (2 cores)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--keep", help="folder to keep the significance maps in (.npy), for inspection")
    parser.add_argument("--stages", nargs="*", default=["ring", "e2e"], choices=["ring", "e2e"])
    parser.add_argument("--process", action="store_true",
                        help="also time whole processes: `xgamma run` (maps + ring + significance) vs a Gammapy script")
    args = parser.parse_args()
    data = os.environ.get("XGAMMA_DATA")
    if not data:
        sys.exit("set XGAMMA_DATA to the shared data folder")
    scheduler = "threads" if args.threads else "sync"
    print(f"load average (1, 5, 15 min) at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores; xgamma scheduler: {scheduler}; rounds {args.rounds} x repeat {args.repeat}")
    header = (f"{'case':14s} {'stage':9s} {'xgamma cold':>11s} {'warm':>7s} {'gammapy cold':>12s} {'warm':>7s} "
              f"{'ratio warm':>10s} {'ratio cold':>10s} {'xg MB':>6s} {'gp MB':>6s} {'max|dS|':>8s} {'same on':>8s} "
              f"{'mask':>4s} {'peak':>4s} {'load1':>5s}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        os.makedirs(tmp, exist_ok=True)
        for name in args.cases:
            case = dict(CASES[name], obs_ids=select_obs_ids(data, CASES[name]))
            for stage in args.stages:
                xg_file = os.path.join(tmp, f"{name}-{stage}-xg.npy")
                gp_file = os.path.join(tmp, f"{name}-{stage}-gp.npy")
                rounds_x, rounds_g = [], []
                for _ in range(args.rounds):  # alternating processes: both tools see the same machine
                    rounds_x.append(_run(XGAMMA, case, data, args.repeat, stage, xg_file, scheduler))
                    rounds_g.append(_run(GAMMAPY, case, data, args.repeat, stage, gp_file, ""))
                ours, ref = _merged(rounds_x), _merged(rounds_g)
                if ours["obs_ids"] != ref["obs_ids"]:
                    raise RuntimeError(f"{name}: different runs: xgamma {ours['obs_ids']} gammapy {ref['obs_ids']}")
                check = compare(xg_file, gp_file)
                ref_entry = ref[stage]
                gp_cold, gp_warm = _cold_warm(ref_entry["times"])
                variants = ["numpy", "dask"] if stage == "ring" else ["e2e"]
                for variant in variants:
                    entry = ours[variant]
                    xg_cold, xg_warm = _cold_warm(entry["times"])
                    label = f"{stage}" if stage == "e2e" else f"ring/{variant}"
                    row = (f"{name:14s} {label:9s} {xg_cold:11.3f} {xg_warm:7.3f} {gp_cold:12.3f} {gp_warm:7.3f} "
                           f"{gp_warm / xg_warm:10.1f} {gp_cold / xg_cold:10.1f} {entry['peak_mb']:6.0f} "
                           f"{ref_entry['peak_mb']:6.0f} {check['max_abs_diff']:8.1e} "
                           f"{check['max_abs_diff_same_on']:8.1e} "
                           f"{'=' if check['same_mask'] else 'DIFF':>4s} {'=' if check['same_peak'] else 'DIFF':>4s} "
                           f"{os.getloadavg()[0]:5.2f}")
                    rows.append(row)
                    if len(rows) == 1:
                        print(header)
                    print(row, flush=True)
                print(f"  {name}: runs {ours['obs_ids']}; {check['n_finite']} pixels finite in both; "
                      f"{check['n_diff_on']} of them with different correlated counts; "
                      f"peak significance {check['peak_sigma']:.2f} sigma", flush=True)
    if args.process:
        process(data, args.rounds)
    print(f"load average (1, 5, 15 min) at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


# `xgamma run` of the reference configuration without the fit: maps, exclusion, ring, significance.
RING_CONFIG = """
data: {datastore: "${XGAMMA_DATA}/cta-1dc/index/gps", obs_ids: [110380, 111140, 111159]}
geometry:
  center: {lon: 0 deg, lat: 0 deg, frame: galactic}
  width: [10 deg, 8 deg]
  binsz: 0.02 deg
  projection: CAR
  energy: {min: 0.1 TeV, max: 10 TeV, nbins: 10}
maps: {offset_max: 4 deg}
exclusion: {regions: ["galactic; circle(-0.054, -0.053, 0.3)"]}
ring: {r_in: 0.3 deg, width: 0.3 deg, offset_max: 3 deg}
significance: {correlation_radius: 0.1 deg}
"""

# The same as a Gammapy script, writing the maps, the images and the significance / excess maps.
GAMMAPY_PROCESS = textwrap.dedent("""
    import sys, warnings, logging
    warnings.simplefilter("ignore"); logging.disable(logging.WARNING)
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from regions import CircleSkyRegion
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.estimators import ExcessMapEstimator
    from gammapy.makers import MapDatasetMaker, RingBackgroundMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom
    data, out = sys.argv[1], sys.argv[2]
    observations = DataStore.from_dir(f"{data}/cta-1dc/index/gps").get_observations([110380, 111140, 111159])
    axis = MapAxis.from_energy_bounds(0.1, 10, 10, "TeV")
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.02, width=(10, 8), frame="galactic", proj="CAR", axes=[axis])
    region = CircleSkyRegion(SkyCoord(-0.054, -0.053, unit="deg", frame="galactic"), 0.3 * u.deg)
    exclusion = ~geom.to_image().region_mask([region])
    stacked = MapDataset.create(geom=geom)
    maker = MapDatasetMaker(selection=["counts", "exposure", "background"])
    safe = SafeMaskMaker(methods=["offset-max"], offset_max=3 * u.deg)
    ring = RingBackgroundMaker(r_in="0.3 deg", width="0.3 deg", exclusion_mask=exclusion)
    on_off = None
    for obs in observations:
        dataset = maker.run(stacked.copy(name=str(obs.obs_id)), obs)
        stacked.stack(dataset)
        image = ring.run(safe.run(dataset, obs).to_image())
        if on_off is None:
            on_off = image.to_masked(name="stacked")
        else:
            on_off.stack(image)
    stacked.write(f"{out}/maps.fits", overwrite=True)
    stacked.to_image().write(f"{out}/images.fits", overwrite=True)
    maps = ExcessMapEstimator(correlation_radius="0.1 deg", correlate_off=True).run(on_off)
    maps.write(f"{out}/significance.fits", overwrite=True)
""")


def process(data: str, rounds: int) -> None:
    """Whole processes, best of ``rounds`` alternating runs: interpreter start and imports included."""
    with tempfile.TemporaryDirectory() as scratch:
        config = os.path.join(scratch, "ring.yaml")
        with open(config, "w") as f:
            f.write(RING_CONFIG)
        commands = {"xgamma run": python("-m", "xgamma.cli.main", "run", config, "--quiet", "--output"),
                    "gammapy script": python("-c", GAMMAPY_PROCESS, data)}
        time_processes(commands, rounds, data, "significance.fits",
                       "cta-gc maps + ring + significance (-> FITS)")

if __name__ == "__main__":
    main()
