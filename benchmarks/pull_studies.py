"""Pull studies of issue 10: >= 200 simulations per configuration with `xgamma.simulate`.

Each realisation is a DL3 data store simulated by `xgamma.simulate` (source + background events
through the analytic IRFs, two wobble pointings of 30 min), binned and fitted from the true values
by `xgamma.testing.pulls.simulate_and_fit`. Studies (`STUDIES`):

* ``point``, ``gaussian``, ``disk``: the simulated migration is 1 % (delta-like), 12 reco bins; fits
  ``images`` (the workflow's ``fit.on: images``, `MapDataset.to_image`: each source predicted per
  energy bin with its own spectrum), ``squashed`` (images squashed with the source's spectrum:
  weighting = source) and ``squashed-index-2`` (weighting index 2, source index 2.3: weighting !=
  source), the index fixed at its true value;
* ``point-edisp``, ``gaussian-edisp``, ``disk-edisp``: a migration of 15 % width and +5 % bias;
  fit ``cube-edisp`` (true-energy exposure, 24 bins of 0.1-30 TeV, and migration kernel, free
  index). ``*-edisp-band``: the same sources, the amplitude fitted as the flux over the analysed
  0.3-10 TeV instead of 0.1-10 TeV. ``*-edisp-coarse`` (not run by default):
  12 true bins, too coarse for the migration (the kernel is evaluated at each true bin's centre,
  as Gammapy's): biased amplitude, and `xgamma.fit.source_kernels` warns.


Every fit reports two pulls per parameter: the Hesse pull (fitted - true) / HESSE error and the
likelihood-ratio pull sign(fitted - true) sqrt(C_profile(true) - C_min)
(`xgamma.testing.pulls.likelihood_ratio_pulls`, one profile fit per parameter).

**Seeds.** Realisation i of a study uses seed ``SEED_OFFSETS[study] + i`` (``--first-seed`` moves
i), so no two studies share events: a seed draws the same photons whatever the source's
morphology, and studies run on the same seeds have correlated means. (Before 26 Nov every study
used seeds 0-199; ``--shared-seeds`` reproduces that.)

Realisations are run in blocks of ``--block`` seeds, round-robin over the studies, so that a
run stopped early (by the clock) still has comparable N for every study; ``--table`` then uses,
for every study, the first N realisations with N the largest number every study has complete
(``--all`` takes every realisation in the file instead). Each result is appended to a JSON lines
file as soon as it is fitted; ``--table`` prints the markdown table of docs/validation.md from
that file (mean and width of both pulls with their standard errors, the coverage of their
1-sigma intervals, i.e. the fraction with |pull| <= 1, failed fits).

    python benchmarks/pull_studies.py --n 400 --processes 2 --out pulls.jsonl
    python benchmarks/pull_studies.py --table --out pulls.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

from xgamma.testing.pulls import PULL_KINDS, PullSetup, PullStudy, simulate_and_fit

IMAGE_FITS = ("images", "squashed", "squashed-index-2")
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
#: First seed of each study: 100000 apart, so that no two studies share a realisation (and none
#: shares the seeds 0-199 of the first runs).
SEED_OFFSETS = {name: 100_000 * (k + 1) for k, name in enumerate(STUDIES)}


def _task(args: tuple[str, int]) -> dict:
    study, seed = args
    start = time.perf_counter()
    try:
        fits = simulate_and_fit(STUDIES[study], seed, likelihood_ratio=True)
    except Exception as exc:  # a crash is a result too: it is counted, never hidden
        fits = {"error": f"{type(exc).__name__}: {exc}"}
    return {"study": study, "seed": seed, "fits": fits, "seconds": time.perf_counter() - start}


def _init() -> None:
    import warnings

    import dask

    warnings.simplefilter("ignore")
    dask.config.set(scheduler="synchronous")  # one process per core


def _seed(study: str, i: int, shared: bool) -> int:
    return i if shared else SEED_OFFSETS[study] + i


def run(studies: list[str], n: int, block: int, processes: int, out: Path, first_seed: int, shared: bool) -> None:
    done = {(r["study"], r["seed"]) for r in _read(out)} if out.exists() else set()
    tasks = [(study, _seed(study, i, shared)) for lo in range(first_seed, first_seed + n, block) for study in studies
             for i in range(lo, min(lo + block, first_seed + n)) if (study, _seed(study, i, shared)) not in done]
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


def _complete(rows: list[dict], first: int) -> int:
    """Number of consecutive realisations ``first, first + 1, ...`` present in ``rows``."""
    have = {r["seed"] - first for r in rows}
    n = 0
    while n in have:
        n += 1
    return n


def _selected(out: Path, shared: bool, everything: bool) -> dict[str, list[dict]]:
    """The rows of each study in ``out``: all of them, or the first N of every study (the rule of
    the module docstring, fixed before looking at any pull)."""
    by_study = defaultdict(list)
    for row in _read(out):
        by_study[row["study"]].append(row)
    if everything:
        return by_study
    present = [name for name in STUDIES if by_study.get(name)]
    n = min(_complete(by_study[name], _seed(name, 0, shared)) for name in present) if present else 0
    return {name: [r for r in by_study[name] if 0 <= r["seed"] - _seed(name, 0, shared) < n] for name in present}


def _cell(s: dict) -> list[str]:
    return [f"{s['mean']:+.3f} +- {s['mean_error']:.3f}", f"{s['width']:.3f} +- {s['width_error']:.3f}",
            f"{s['coverage']:.3f}"]


def table(out: Path, *, shared: bool = False, everything: bool = False) -> str:
    """Markdown table: one row per (study, fit, parameter), the Hesse and likelihood-ratio pulls."""
    selected = _selected(out, shared, everything)
    lines = ["| study | fit | parameter | N | Hesse mean | Hesse width | Hesse 68 % | LR mean | LR width | LR 68 % "
             "| failed fits |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    seed_ranges = []
    for name, setup in STUDIES.items():
        rows = selected.get(name, [])
        if not rows:
            continue
        crashed = [r for r in rows if "error" in r["fits"]]
        study = PullStudy(setup, [r["fits"] for r in rows if "error" not in r["fits"]])
        has_lr = all("lr_pulls" in r[fit] for r in study.results for fit in setup.fits if r[fit]["success"])
        summaries = {kind: study.summary(kind) for kind in PULL_KINDS if kind == "hesse" or has_lr}
        seeds = sorted(r["seed"] for r in rows)
        for fit in setup.fits:
            failed = len(study.failures(fit))
            for parameter, s in summaries["hesse"][fit].items():
                lr = summaries.get("lr", {}).get(fit, {}).get(parameter)
                lr_cells = _cell(lr) if lr else ["-", "-", "-"]
                if lr and lr["undefined"]:
                    lr_cells[0] += f" ({lr['undefined']} undefined)"
                lines.append(f"| {name} | {fit} | {parameter} | {s['n']} | " + " | ".join(_cell(s) + lr_cells)
                             + f" | {failed}/{len(study.results)}" + (f" ({len(crashed)} crashed)" if crashed else "")
                             + " |")
        seed_ranges.append(f"{name} {seeds[0]}-{seeds[-1]}" + ("" if len(seeds) == seeds[-1] - seeds[0] + 1 else
                                                                 f" ({len(seeds)} seeds)"))
    return "\n".join(lines) + "\n\nSeeds: " + "; ".join(seed_ranges) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="realisations per study")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--block", type=int, default=20, help="seeds per study before moving to the next study")
    parser.add_argument("--studies", default=",".join(DEFAULT_STUDIES), help=f"comma-separated, of {', '.join(STUDIES)}")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("pulls.jsonl"), help="JSON lines results (appended)")
    parser.add_argument("--shared-seeds", action="store_true",
                        help="seeds 0.. for every study (the first runs' scheme) instead of SEED_OFFSETS")
    parser.add_argument("--table", action="store_true", help="print the table of --out and exit")
    parser.add_argument("--all", action="store_true", help="table of every realisation in --out, not the first "
                                                           "N complete in every study")
    args = parser.parse_args()
    if not args.table:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        run(args.studies.split(","), args.n, args.block, args.processes, args.out, args.first_seed,
            args.shared_seeds)
    print(table(args.out, shared=args.shared_seeds, everything=args.all))


if __name__ == "__main__":
    main()
