"""The validation matrix of issue 10 as a table: every cell's xgamma and Gammapy 2.1 numbers.

Runs the same comparison as tests/validation/test_matrix.py (same cells, same reference, same
acceptance) and prints one row per cell: deviations of position (in Gammapy sigma), amplitude,
index, errors, TS, the significance peak, and what failed. ``--json FILE`` also writes every
number. Cells sharing maps run in one process; ``--processes`` spreads the groups.

    python benchmarks/validation_matrix.py                 # the CI cells
    python benchmarks/validation_matrix.py --all --processes 2 --json matrix.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "validation"))

from matrix_cells import ALL_CELLS, CI_CELLS, Cell  # noqa: E402


def _run_group(args: tuple[list[Cell], str]) -> list[dict]:
    import warnings

    warnings.simplefilter("ignore")
    from matrix_runs import MatrixRuns
    from test_matrix import compare_fit, reference_fit

    cells, data_dir = args
    runs = MatrixRuns(Path(data_dir))
    rows = []
    for cell in cells:
        start = time.perf_counter()
        row = {"cell": cell.id}
        try:
            ours = runs.xgamma_fit(cell)
            reference = reference_fit(runs, cell)
            failures = [] if ours.success else [f"xgamma failed: {ours.message}"]
            failures += [] if reference.success else ["Gammapy failed"]
            failures += compare_fit(ours, reference, cell)
            significance = runs.xgamma_significance(cell)["max_significance"]
            gp_significance = runs.gammapy_significance(cell).peak
            if abs(significance / gp_significance - 1) > 0.02:
                failures.append(f"significance peak: {significance:.3f} vs {gp_significance:.3f}")
            row.update(xgamma=dataclasses.asdict(ours), gammapy=dataclasses.asdict(reference),
                       significance=significance, gammapy_significance=gp_significance,
                       restarted=reference.start != runs.gammapy_fit(cell).start, failures=failures)
        except Exception as exc:  # a crash is a result of the matrix too
            row["failures"] = [f"error: {type(exc).__name__}: {exc}"]
        row["seconds"] = time.perf_counter() - start
        print(_format(row), flush=True)
        rows.append(row)
    return rows


def _format(row: dict) -> str:
    if "xgamma" not in row:
        return f"{row['cell']:<52} ERROR {row['failures'][0]}"
    ours, ref = row["xgamma"], row["gammapy"]
    dev = [(ours["values"][n] - ref["values"][n]) / ref["errors"][n] for n in ("lon_0", "lat_0")]
    amp = ours["values"]["amplitude"] / ref["values"]["amplitude"] - 1
    index = ((ours["values"]["index"] - ref["values"]["index"]) / ref["errors"]["index"]
             if ref["errors"]["index"] > 0 else 0.0)
    errors = max(abs(ours["errors"][n] / ref["errors"][n] - 1) for n in ("lon_0", "lat_0", "amplitude"))
    ts = ours["ts"] / ref["ts"] - 1
    sig = row["significance"] / row["gammapy_significance"] - 1
    status = "ok" if not row["failures"] else "FAIL " + "; ".join(row["failures"])
    return (f"{row['cell']:<52} pos {dev[0]:+.2f} {dev[1]:+.2f} amp {amp:+6.1%} idx {index:+.2f} err {errors:5.1%} "
            f"TS {ts:+6.1%} sig {sig:+6.1%} {'R' if row['restarted'] else ' '} {row['seconds']:5.0f}s {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="all 108 cells (default: the CI cells)")
    parser.add_argument("--only", help="run the cells whose id contains this text")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every number to this file")
    args = parser.parse_args()
    data_dir = os.environ.get("XGAMMA_DATA")
    if not data_dir:
        sys.exit("set XGAMMA_DATA to the shared data folder")
    cells = list(ALL_CELLS if args.all or args.only else CI_CELLS)
    if args.only:
        cells = [c for c in cells if args.only in c.id]
    groups: dict = {}
    for cell in cells:
        groups.setdefault(cell.maps_key, []).append(cell)
    jobs = [(group, data_dir) for group in groups.values()]
    start = time.perf_counter()
    print(f"{len(cells)} cells in {len(jobs)} map groups, {args.processes} process(es); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.processes > 1:
        with get_context("spawn").Pool(args.processes) as pool:
            rows = [row for rows in pool.imap_unordered(_run_group, jobs) for row in rows]
    else:
        rows = [row for job in jobs for row in _run_group(job)]
    failed = [row["cell"] for row in rows if row["failures"]]
    print(f"{len(rows) - len(failed)} of {len(rows)} cells match; {time.perf_counter() - start:.0f} s; "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(sorted(rows, key=lambda r: r["cell"]), indent=1))


if __name__ == "__main__":
    main()
