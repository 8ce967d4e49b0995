"""TS map benchmark: xgamma's `ts_map` against Gammapy 2.1's ``TSMapEstimator`` on the same image, one core.

The case of the Gammapy cross-check test (``tests/estimators/ts_map_gc.py``, shared): the CTA 1DC
runs 110380, 111140, 111159, a galactic CAR image at 0.02 deg around (0, 0), 0.1-10 TeV squashed with
an index-2 power law, offset cut 4 deg, a point-source kernel of 0.4 deg (21 x 21 pixels, the
PSF at the centre), the background map as the (frozen) background model, upper limits at 2 sigma.
Cases (``--cases``):

* ``gc-2deg-fit1.2``: 2 x 2 deg image, fit mask of the central 1.2 x 1.2 deg (3600 pixels fitted),
  exactly the test's case;
* ``gc-2deg``: the same image, every pixel fitted (10 000 pixels);
* ``gc-4deg``: 4 x 4 deg, every pixel fitted (40 000 pixels).

Both tools' inputs (map making, PSF) are built before any timer starts. Then, in this one
process, the tools alternate ``--repeat`` times (default 6): Gammapy ``TSMapEstimator.run``
(``n_jobs=1``), xgamma ``ts_map`` on the numpy-backed image (row ``numpy``) and on the image as
dask chunks of 256 x 256 pixels with dask's synchronous scheduler, graph building included
(row ``dask``). BLAS / OpenMP threads are pinned to 1: one core for both. cold = the first
repetition, warm = best of the others (>= 5 with the default).

Columns: times (s), ``ratio warm`` = Gammapy warm / xgamma warm (> 1: xgamma faster), and as a
sanity check on the timed results: ``fitted`` = pixels with a TS value, ``max dS`` = max |sqrt(TS)
xgamma - Gammapy| over the pixels with TS > 4, ``max dF`` = max relative flux difference there;
``load1`` = 1-minute load average when the row was printed.

Usage::

    XGAMMA_DATA=/work/shared/data python benchmarks/bench_ts.py [--repeat 6] [--cases gc-2deg-fit1.2 gc-2deg gc-4deg]
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # before numpy is imported: one core

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "estimators"))

from ts_map_gc import gammapy_inputs, xgamma_inputs  # noqa: E402

#: name -> (image width in deg, fit-mask width in deg)
CASES = {"gc-2deg-fit1.2": (2.0, 1.2), "gc-2deg": (2.0, 4.0), "gc-4deg": (4.0, 8.0)}


def _xgamma_run(images, kernel, chunked: bool):
    import dask

    from xgamma.estimators.ts_map import ts_map

    if chunked:
        images = images.chunk({"lat": 256, "lon": 256})
    with dask.config.set(scheduler="synchronous"):
        result = ts_map(images, kernel=kernel, selection_optional=("ul",))
        return result.compute()


def run_case(name: str, store: Path, repeat: int) -> None:
    width, fit_width = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CTA 1DC background unit, said once per file by astropy and Gammapy
        logging.getLogger("gammapy").setLevel(logging.ERROR)
        ours = xgamma_inputs(store, width=width, fit_width=fit_width)
        theirs = gammapy_inputs(store, ours["images"]["mask_fit"].values, width=width, n_jobs=1)
    times: dict[str, list[float]] = {"gammapy": [], "numpy": [], "dask": []}
    results = {}
    for _ in range(repeat):
        for tool in times:
            start = time.perf_counter()
            if tool == "gammapy":
                results[tool] = theirs["estimator"].run(theirs["dataset"])
            else:
                results[tool] = _xgamma_run(ours["images"], ours["kernel"], chunked=tool == "dask")
            times[tool].append(time.perf_counter() - start)
    reference = results["gammapy"]
    gp_cold, gp_warm = times["gammapy"][0], min(times["gammapy"][1:] or times["gammapy"])
    flux_ref = reference.flux.quantity[0].to_value("cm-2 s-1")
    for tool in ("numpy", "dask"):
        result = results[tool]
        ts = result.ts.values[0]
        significant = ts > 4
        d_sqrt_ts = np.abs(result.sqrt_ts.values[0] - reference.sqrt_ts.data[0])[significant].max()
        d_flux = np.abs(result.flux.values[0] / flux_ref - 1)[significant].max()
        cold, warm = times[tool][0], min(times[tool][1:] or times[tool])
        print(f"| {name} | {tool} | {cold:.3f} / {warm:.3f} | {gp_cold:.2f} / {gp_warm:.2f} | {gp_warm / warm:.1f} "
              f"| {np.isfinite(ts).sum()} | {d_sqrt_ts:.3f} | {d_flux:.4f} | {os.getloadavg()[0]:.2f} |", flush=True)
    print(f"  {name}: all times (s): " + "; ".join(f"{tool} " + " ".join(f"{t:.3f}" for t in values)
                                                for tool, values in times.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=6, help="repetitions per tool, alternating (default 6)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    data = os.environ.get("XGAMMA_DATA")
    if not data:
        sys.exit("bench_ts.py: set XGAMMA_DATA to the shared DL3 data (cta-1dc, hess-dl3-dr1)")
    store = Path(data).expanduser().resolve() / "cta-1dc" / "index" / "gps"
    print(f"TS maps, one core, {args.repeat} alternating repetitions; load average {os.getloadavg()[0]:.2f}\n")
    print("| case | xgamma | xgamma cold / warm (s) | Gammapy cold / warm (s) | ratio warm | fitted | max dS "
          "| max dF | load1 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
    for name in args.cases:
        run_case(name, store, args.repeat)


if __name__ == "__main__":
    main()
