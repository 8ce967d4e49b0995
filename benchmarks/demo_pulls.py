"""Pulls of the demo's fit over many simulated data stores (issue 10: extended-source recovery).

For each seed, `xgamma.simulate.demo_datastore` writes the demo's four observations (a point source
of index 2 and a Gaussian of sigma 0.2 deg and index 2.3, 1 deg apart, on the CTA-like analytic
background) and the demo's analysis (`xgamma.cli.demo.demo_config`) runs its maps and fit stages
(no ring background, no plots). The pulls (fitted - injected) / error of every fitted parameter
are collected; the table gives their mean and width (standard deviation) with the standard errors
of both, so a mean is biased when it is several standard errors from 0 and a width is wrong when
it is several standard errors from 1.

Usage::

    python benchmarks/demo_pulls.py --seeds 20                # fit.on: images (the demo's setting)
    python benchmarks/demo_pulls.py --seeds 20 --fit-on cube  # the energy-dependent cube fit
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def pulls_for_seed(seed: int, fit_on: str, folder: Path) -> list[dict]:
    from xgamma.cli.demo import compare_with_truth, demo_config
    from xgamma.simulate import demo_datastore
    from xgamma.workflow import run_analysis

    store = demo_datastore(folder / f"store-{seed}", seed=seed, overwrite=True)
    config = demo_config(store)
    for section in ("exclusion", "ring", "significance", "plots"):
        config.pop(section, None)
    config["fit"]["on"] = fit_on
    analysis = run_analysis(config)
    result = analysis.fit_result
    rows = compare_with_truth(result.to_dict())
    for row in rows:
        row["success"] = bool(result.success)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="number of simulated data stores (seeds 0..N-1)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--fit-on", choices=("images", "cube"), default="images")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    table: dict[tuple[str, str], list[float]] = {}
    failures = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xgamma-demo-pulls-") as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows = pulls_for_seed(seed, args.fit_on, Path(tmp))
            failures += not rows[0]["success"]
            for row in rows:
                table.setdefault((row["model"], row["parameter"]), []).append(row["pull"])
            print(f"seed {seed}: " + " ".join(f"{r['model']}.{r['parameter']}={r['pull']:+.2f}" for r in rows),
                  flush=True)
    print(f"\nfit.on: {args.fit_on}; {args.seeds} seeds, {failures} fits not successful; "
          f"{time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.1f}")
    print(f"{'model':10s} {'parameter':10s} {'mean pull':>16s} {'width':>16s}")
    for (model, name), values in table.items():
        p = np.asarray(values)
        n = p.size
        mean, width = p.mean(), p.std(ddof=1)
        print(f"{model:10s} {name:10s} {mean:+7.2f} +- {width / np.sqrt(n):4.2f} "
              f"{width:7.2f} +- {width / np.sqrt(2 * (n - 1)):4.2f}")


if __name__ == "__main__":
    main()
