"""A pull study's set-up at a multiple of its livetime: a bias that stays a fixed fraction of the
value grows, in pulls, as sqrt(livetime); a fluctuation or a finite-sample effect does not.

At ``--scale`` times the livetime of ``benchmarks/pull_studies.py``'s study, HESSE pulls only
(no likelihood-ratio profiles), seeds ``77_000_000 + first + k`` (used by no study of the table
of record). A mean pull m at 1x that comes from a fixed offset shows as m x sqrt(scale) here.

``--expected-background``: only the source's events are simulated, and the counts get the
expected background (the background map) instead: at a high ``--scale`` (e.g. 3000) each fit is
nearly an Asimov fit of the simulator's expectation through the whole chain (events, binning,
exposure, kernels, fit), with the source's Poisson noise alone. The mean offsets it prints, over
the ``--n`` realisations, are the fit's bias at high statistics with their standard errors.

``--mirror``: every realisation is also fitted with its counts mirrored in latitude. The
studies' set-ups are mirror-symmetric (the source at the map centre, the pointings at
+-wobble in latitude), so a symmetric prediction and fit give the mirrored latitude: the script
prints the largest |lat + lat mirrored| and |other - other mirrored|, in errors.

Usage::

    python benchmarks/pull_high_statistics.py gaussian-edisp --scale 30 --n 80 [--first 0] [--mirror]
    python benchmarks/pull_high_statistics.py disk-edisp --scale 3000 --n 20 --expected-background
"""

from __future__ import annotations

import argparse
import dataclasses as dc
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pull_studies import STUDIES  # noqa: E402

from xgamma.testing.pulls import simulate_and_fit  # noqa: E402

SEED_BASE = 77_000_000


def _values(fits: list[dict], name: str, parameter: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([f[name]["values"][parameter] for f in fits])
    if parameter == "lon_0":  # the truth sits at lon 0: compare on (-180, 180]
        values = (values + 180.0) % 360.0 - 180.0
    return values, np.array([f[name]["errors"][parameter] for f in fits])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--scale", type=float, default=30.0, help="livetime multiple")
    parser.add_argument("--n", type=int, default=80, help="realisations")
    parser.add_argument("--first", type=int, default=0, help="first seed after SEED_BASE")
    parser.add_argument("--expected-background", action="store_true",
                        help="source events only, the counts get the expected background")
    parser.add_argument("--mirror", action="store_true", help="also fit the counts mirrored in latitude")
    args = parser.parse_args()

    import dask

    warnings.simplefilter("ignore")
    dask.config.set(scheduler="synchronous")
    setup = dc.replace(STUDIES[args.study], livetime=STUDIES[args.study].livetime * args.scale)
    truth = setup.truth()
    start = time.perf_counter()
    fits = [simulate_and_fit(setup, SEED_BASE + args.first + k, expected_background=args.expected_background,
                             mirror=args.mirror) for k in range(args.n)]
    print(f"{args.study} at {args.scale:g}x livetime, seeds {SEED_BASE + args.first}-{SEED_BASE + args.first + args.n - 1}"
          f"{', expected background' if args.expected_background else ''}, {time.perf_counter() - start:.0f} s, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name in setup.fits:
        done = [f for f in fits if f[name]["success"] and (not args.mirror or f[f"{name} mirrored"]["success"])]
        print(f"fit {name}: {len(done)}/{len(fits)} successful")
        for parameter in setup.parameters(name):
            true = truth.parameter(parameter).value
            values, errors = _values(done, name, parameter)
            pulls = (values - true) / errors
            offset = values - true
            print(f"  {parameter:10s} mean pull {pulls.mean():+.3f} +- {pulls.std(ddof=1) / np.sqrt(len(pulls)):.3f}  "
                  f"width {pulls.std(ddof=1):.3f}  mean offset {offset.mean():+.2e} +- "
                  f"{offset.std(ddof=1) / np.sqrt(len(offset)):.1e} "
                  + (f"({offset.mean() / true:+.3%} of the truth; " if true else "(")
                  + f"error {errors.mean():.2e})")
            if args.mirror:
                mirrored, _ = _values(done, f"{name} mirrored", parameter)
                # Mirrored in latitude about 0 (the truth): lat_0 -> -lat_0, the rest unchanged.
                asymmetry = mirrored + values if parameter == "lat_0" else mirrored - values
                print(f"  {'':10s} mirrored: max |{'lat + lat' if parameter == 'lat_0' else 'difference'}| "
                      f"{np.max(np.abs(asymmetry) / errors):.1e} of an error")


if __name__ == "__main__":
    main()
