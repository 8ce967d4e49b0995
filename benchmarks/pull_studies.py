"""Pull studies of issue 10: >= 200 simulations per configuration with `xgamma.simulate`.

Each realisation is a DL3 data store simulated by `xgamma.simulate` (source + background events
through the analytic IRFs, two wobble pointings of 30 min), binned and fitted from the true values
by `xgamma.testing.pulls.simulate_and_fit`. Studies (`STUDIES`):

* ``point``, ``gaussian``, ``disk``: the simulated migration is 1 % (delta-like), 12 reco bins; fits
  ``squashed`` (images squashed with the source's spectrum: weighting = source) and
  ``squashed-index-2`` (weighting index 2, source index 2.3: weighting != source), the index
  fixed at its true value (``images``, the workflow's `MapDataset.to_image`, is in the CI pull
  test tests/validation/test_simulated_pulls.py);
* ``point-edisp``, ``gaussian-edisp``, ``disk-edisp``: a migration of 15 % width and +5 % bias;
  fit ``cube-edisp`` (true-energy exposure, 24 bins of 0.1-30 TeV, and migration kernel, free
  index). ``*-edisp-band``: the same sources and realisations, the amplitude fitted as the flux
  over the analysed 0.3-10 TeV instead of 0.1-10 TeV. ``*-edisp-coarse`` (not run by default):
  12 true bins, too coarse for the migration (the kernel is evaluated at each true bin's centre,
  as Gammapy's): biased amplitude, and `xgamma.fit.source_kernels` warns.


Realisations are run in blocks of ``--block`` seeds, round-robin over the studies, so that a
study stopped early still has comparable N for every study. Each result is appended to a JSON
lines file as soon as it is fitted; ``--table`` prints the markdown table of docs/validation.md
from that file (mean and width of the pulls with their standard errors, failed fits).

    python benchmarks/pull_studies.py --n 200 --processes 2 --out pulls.jsonl
    python benchmarks/pull_studies.py --table --out pulls.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

from xgamma.testing.pulls import PullSetup, PullStudy, simulate_and_fit

IMAGE_FITS = ("squashed", "squashed-index-2")
EDISP_FITS = ("cube-edisp",)
SOURCES = ("point", "gaussian", "disk")
STUDIES = {
    # 12 reco bins (factor 1.34): the exposure of each bin is the effective area at its centre
    # (as Gammapy's), which over 6 bins of factor 1.8 puts the amplitude 0.3-0.4 % low.
    **{source: PullSetup(source=source, fits=IMAGE_FITS, energy=(0.3, 10.0, 12)) for source in SOURCES},
    **{f"{source}-edisp": PullSetup(source=source, fits=EDISP_FITS, edisp_sigma=0.15, edisp_bias=0.05,
                                    energy_true=(0.1, 30.0, 24)) for source in SOURCES},
    # The same sources and realisations with the amplitude defined over the analysed range
    # (0.3-10 TeV) instead of 0.1-10 TeV (extrapolated below the data with the free index).
    **{f"{source}-edisp-band": PullSetup(source=source, fits=EDISP_FITS, edisp_sigma=0.15, edisp_bias=0.05,
                                         energy_true=(0.1, 30.0, 24), flux_energy=(0.3, 10.0)) for source in SOURCES},
    # The true axis of 12 bins (61 % wide, 4x the migration width): the amplitude comes out 4 % low.
    **{f"{source}-edisp-coarse": PullSetup(source=source, fits=EDISP_FITS, edisp_sigma=0.15, edisp_bias=0.05,
                                           energy_true=(0.1, 30.0, 12)) for source in SOURCES},
}
DEFAULT_STUDIES = [name for name in STUDIES if not name.endswith("-coarse")]


def _task(args: tuple[str, int]) -> dict:
    study, seed = args
    start = time.perf_counter()
    try:
        fits = simulate_and_fit(STUDIES[study], seed)
    except Exception as exc:  # a crash is a result too: it is counted, never hidden
        fits = {"error": f"{type(exc).__name__}: {exc}"}
    return {"study": study, "seed": seed, "fits": fits, "seconds": time.perf_counter() - start}


def _init() -> None:
    import warnings

    import dask

    warnings.simplefilter("ignore")
    dask.config.set(scheduler="synchronous")  # one process per core


def run(studies: list[str], n: int, block: int, processes: int, out: Path, first_seed: int) -> None:
    done = {(r["study"], r["seed"]) for r in _read(out)} if out.exists() else set()
    tasks = [(study, seed) for lo in range(first_seed, first_seed + n, block) for study in studies
             for seed in range(lo, min(lo + block, first_seed + n)) if (study, seed) not in done]
    print(f"{len(tasks)} realisations to run ({len(done)} already in {out}); {processes} process(es); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    start = time.perf_counter()
    with out.open("a") as stream:
        if processes > 1:
            from multiprocessing import get_context

            with get_context("spawn").Pool(processes, initializer=_init) as pool:
                for i, row in enumerate(pool.imap_unordered(_task, tasks), 1):
                    stream.write(json.dumps(row) + "\n")
                    stream.flush()
                    if i % 20 == 0:
                        print(f"{i}/{len(tasks)} in {time.perf_counter() - start:.0f} s; "
                              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        else:
            _init()
            for task in tasks:
                stream.write(json.dumps(_task(task)) + "\n")
                stream.flush()


def _read(out: Path) -> list[dict]:
    """The results in ``out``, one per (study, seed): the first written wins (a seed gives the same data)."""
    rows = {}
    for line in out.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows.setdefault((row["study"], row["seed"]), row)
    return list(rows.values())


def table(out: Path) -> str:
    """Markdown table: one row per (study, fit, parameter)."""
    by_study = defaultdict(list)
    for row in _read(out):
        by_study[row["study"]].append(row)
    lines = ["| study | fit | parameter | N | mean pull | width | failed fits |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, setup in STUDIES.items():
        rows = by_study.get(name, [])
        crashed = [r for r in rows if "error" in r["fits"]]
        study = PullStudy(setup, [r["fits"] for r in rows if "error" not in r["fits"]])
        summary = study.summary()
        for fit in setup.fits:
            failed = len(study.failures(fit))
            total = len(study.results)
            for parameter, s in summary[fit].items():
                lines.append(f"| {name} | {fit} | {parameter} | {s['n']} | {s['mean']:+.3f} +- {s['mean_error']:.3f} "
                             f"| {s['width']:.3f} +- {s['width_error']:.3f} | {failed}/{total}"
                             + (f" ({len(crashed)} crashed)" if crashed else "") + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="realisations per study")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--block", type=int, default=20, help="seeds per study before moving to the next study")
    parser.add_argument("--studies", default=",".join(DEFAULT_STUDIES), help=f"comma-separated, of {', '.join(STUDIES)}")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("pulls.jsonl"), help="JSON lines results (appended)")
    parser.add_argument("--table", action="store_true", help="print the table of --out and exit")
    args = parser.parse_args()
    if not args.table:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        run(args.studies.split(","), args.n, args.block, args.processes, args.out, args.first_seed)
    print(table(args.out))


if __name__ == "__main__":
    main()
