"""A pull study's set-up at a multiple of its livetime: a bias that stays a fixed fraction of the
value grows, in pulls, as sqrt(livetime); a fluctuation or a finite-sample effect does not.

At ``--scale`` times the livetime of ``benchmarks/pull_studies.py``'s study, HESSE pulls only
(no likelihood-ratio profiles), seeds ``77_000_000 + first + k`` (used by no study of the table
of record). A mean pull m at 1x that comes from a fixed offset shows as m x sqrt(scale) here.

Usage::

    python benchmarks/pull_high_statistics.py gaussian-edisp --scale 30 --n 80 [--first 0]
"""

from __future__ import annotations

import argparse
import dataclasses as dc
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pull_studies import STUDIES  # noqa: E402

from xgamma.testing.pulls import simulate_and_fit  # noqa: E402

SEED_BASE = 77_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--scale", type=float, default=30.0, help="livetime multiple")
    parser.add_argument("--n", type=int, default=80, help="realisations")
    parser.add_argument("--first", type=int, default=0, help="first seed after SEED_BASE")
    args = parser.parse_args()

    import dask

    warnings.simplefilter("ignore")
    dask.config.set(scheduler="synchronous")
    setup = dc.replace(STUDIES[args.study], livetime=STUDIES[args.study].livetime * args.scale)
    truth = setup.truth()
    start = time.perf_counter()
    fits = [simulate_and_fit(setup, SEED_BASE + args.first + k) for k in range(args.n)]
    print(f"{args.study} at {args.scale:g}x livetime, seeds {SEED_BASE + args.first}-{SEED_BASE + args.first + args.n - 1}, "
          f"{time.perf_counter() - start:.0f} s")
    for name in setup.fits:
        done = [f[name] for f in fits if f[name]["success"]]
        print(f"fit {name}: {len(done)}/{len(fits)} successful")
        for parameter in setup.parameters(name):
            true = truth.parameter(parameter).value
            values = np.array([f["values"][parameter] for f in done])
            if parameter == "lon_0":  # the truth sits at lon 0: compare on (-180, 180]
                values = (values + 180.0) % 360.0 - 180.0
            errors = np.array([f["errors"][parameter] for f in done])
            pulls = (values - true) / errors
            print(f"  {parameter:10s} mean pull {pulls.mean():+.3f} +- {pulls.std(ddof=1) / np.sqrt(len(pulls)):.3f}  "
                  f"width {pulls.std(ddof=1):.3f}  mean offset {np.mean(values - true):+.2e} (error {errors.mean():.2e})")


if __name__ == "__main__":
    main()
