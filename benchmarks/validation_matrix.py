"""The validation matrix of issue 10 as a table: every cell's xgamma and Gammapy 2.1 numbers.

Runs the same comparison as tests/validation/test_matrix.py (same cells, same reference, same
acceptance) and prints one row per cell: deviations of position (in Gammapy sigma), amplitude,
index, errors, TS, the significance peak, and what failed. ``--json FILE`` also writes every
number. Cells sharing maps run in one process; ``--processes`` spreads the groups.

    python benchmarks/validation_matrix.py                 # the CI cells
    python benchmarks/validation_matrix.py --all --processes 2 --json matrix.jsonl
    python benchmarks/validation_matrix.py --table --json matrix.jsonl   # docs/validation.md's table
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "validation"))

from matrix_cells import ALL_CELLS, CI_CELLS, Cell  # noqa: E402


def _run_group(args: tuple[list[Cell], str, Path | None]) -> list[dict]:
    import warnings

    warnings.simplefilter("ignore")
    from matrix_runs import MatrixRuns
    from test_matrix import KNOWN_DIFFERENCES, TOLERANCES, compare_fit, reference_fit

    cells, data_dir, json_lines = args
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
            failures += list(compare_fit(ours, reference, cell).values())
            significance = runs.xgamma_significance(cell)["max_significance"]
            gp_significance = runs.gammapy_significance(cell).peak
            if abs(significance / gp_significance - 1) > TOLERANCES["significance"]:
                failures.append(f"significance peak: {significance:.3f} vs {gp_significance:.3f}")
            row.update(xgamma=dataclasses.asdict(ours), gammapy=dataclasses.asdict(reference),
                       significance=significance, gammapy_significance=gp_significance,
                       restarted=reference.start != runs.gammapy_fit(cell).start, failures=failures)
            known = KNOWN_DIFFERENCES.get(cell.id)
            if known is not None and known.gammapy_options:  # Gammapy with xgamma's conventions
                changed = reference_fit(runs, cell, known.gammapy_options)
                row.update(gammapy_options=known.gammapy_options, gammapy_changed=dataclasses.asdict(changed),
                           changed_failures=list(compare_fit(ours, changed, cell).values()))
            if known is not None and known.cash_at_ours is not None:
                row["cash_at_ours"] = runs.gammapy_statistic_at(cell, ours.values) - reference.statistic
        except Exception as exc:  # a crash is a result of the matrix too
            row["failures"] = [f"error: {type(exc).__name__}: {exc}"]
        row["seconds"] = time.perf_counter() - start
        print(_format(row), flush=True)
        if json_lines is not None:  # as soon as it is known: a long run stopped early keeps its cells
            with json_lines.open("a") as stream:
                stream.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows


def _deviations(row: dict) -> dict:
    """xgamma - Gammapy: positions and index in Gammapy sigma, the rest relative."""
    ours, ref = row["xgamma"], row["gammapy"]
    sigma = {n: (ours["values"][n] - ref["values"][n]) / ref["errors"][n] if ref["errors"][n] > 0 else 0.0
             for n in ("lon_0", "lat_0", "index")}
    names = ("lon_0", "lat_0", "amplitude") + (("index",) if ref["errors"]["index"] > 0 else ())
    return {**sigma, "amplitude": ours["values"]["amplitude"] / ref["values"]["amplitude"] - 1,
            "errors": max(abs(ours["errors"][n] / ref["errors"][n] - 1) for n in names),
            "ts": ours["ts"] / ref["ts"] - 1, "significance": row["significance"] / row["gammapy_significance"] - 1}


def _format(row: dict) -> str:
    if "xgamma" not in row:
        return f"{row['cell']:<52} ERROR {row['failures'][0]}"
    d = _deviations(row)
    status = "ok" if not row["failures"] else "FAIL " + "; ".join(row["failures"])
    return (f"{row['cell']:<52} pos {d['lon_0']:+.2f} {d['lat_0']:+.2f} amp {d['amplitude']:+6.1%} "
            f"idx {d['index']:+.2f} err {d['errors']:5.1%} TS {d['ts']:+6.1%} sig {d['significance']:+6.1%} "
            f"{'R' if row['restarted'] else ' '} {row['seconds']:5.0f}s {status}")


def _evidence(row: dict) -> str:
    """What the known difference's test also checks, as measured in this row."""
    if "gammapy_options" in row:
        changed = {**row, "gammapy": row["gammapy_changed"]}
        d = _deviations(changed)
        match = "; ".join(row["changed_failures"]) or "matches"
        return (f" (Gammapy with {', '.join(row['gammapy_options'])}: {match}, position {d['lon_0']:+.2f}, "
                f"{d['lat_0']:+.2f}, amplitude {d['amplitude']:+.1%})")
    if "cash_at_ours" in row:
        return f" (Gammapy's Cash at xgamma's position {row['cash_at_ours']:+.3f} from its minimum)"
    return ""


def markdown(rows: list[dict]) -> str:
    """The table of docs/validation.md: one row per cell."""
    from test_matrix import KNOWN_DIFFERENCES

    lines = ["| cell | lon_0, lat_0 (sigma) | amplitude | index (sigma) | errors (max) | TS | significance peak | result |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in sorted(rows, key=lambda r: r["cell"]):
        if "xgamma" not in row:
            lines.append(f"| {row['cell']} | | | | | | | {row['failures'][0]} |")
            continue
        d = _deviations(row)
        result = "ok" if not row["failures"] else "; ".join(row["failures"])
        if row["failures"] and row["cell"] in KNOWN_DIFFERENCES:
            result = "known difference: " + result + _evidence(row)
        index = f"{d['index']:+.2f}" if row["gammapy"]["errors"]["index"] > 0 else "frozen"
        lines.append(f"| {row['cell']} | {d['lon_0']:+.2f}, {d['lat_0']:+.2f} | {d['amplitude']:+.1%} | {index} "
                     f"| {d['errors']:.1%} | {d['ts']:+.1%} | {d['significance']:+.1%} | {result} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="all 108 cells (default: the CI cells)")
    parser.add_argument("--only", help="run the cells whose id contains this text")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every number to this file (JSON lines, appended cell by cell)")
    parser.add_argument("--table", action="store_true", help="print the markdown table of the --json file and exit")
    args = parser.parse_args()
    if args.table:
        print(markdown([json.loads(line) for line in args.json.read_text().splitlines() if line.strip()]))
        return
    data_dir = os.environ.get("XGAMMA_DATA")
    if not data_dir:
        sys.exit("set XGAMMA_DATA to the shared data folder")
    cells = list(ALL_CELLS if args.all or args.only else CI_CELLS)
    if args.only:
        cells = [c for c in cells if args.only in c.id]
    if args.json and args.json.exists():  # resume: cells already in the file are not run again
        done = {json.loads(line)["cell"] for line in args.json.read_text().splitlines() if line.strip()}
        cells = [c for c in cells if c.id not in done]
    groups: dict = {}
    for cell in cells:
        groups.setdefault(cell.maps_key, []).append(cell)
    # Round-robin over (data set, safe range), so that a run stopped early has seen all of them.
    by_data: dict = {}
    for key, group in groups.items():
        by_data.setdefault(key[:2], []).append(group)
    ordered = [g for batch in itertools.zip_longest(*by_data.values()) for g in batch if g is not None]
    jobs = [(group, data_dir, args.json) for group in ordered]
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


if __name__ == "__main__":
    main()
