"""Start-up cost of the xgamma process against the budgets of issue 13.

Each measurement is a fresh interpreter, best of ``--repeat`` runs (default 7):

* ``python -c "import xgamma"`` (budget 0.4 s) and a bare ``python -c pass`` for reference;
* ``xgamma --help`` as installed (the console script; budget 0.5 s) and ``python -m xgamma.cli.main --help``;
* the imports of ``xgamma run examples/cta-gc-maps.yaml`` (``python -X importtime``): total, and
  the packages with the largest own import time (self time of all their modules, wherever
  imported from), so that a new heavy import shows up.

Usage::

    XGAMMA_DATA=/work/shared/data python benchmarks/bench_imports.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUDGETS = {"import xgamma": 0.4, "xgamma --help": 0.5}


def best_of(args: list[str], repeat: int, env: dict | None = None) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(args, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - t0)
    return min(times)


def run_imports(data: str) -> tuple[float, list[tuple[str, float]]]:
    """Total import time of a maps run and each top-level package's own import time (s)."""
    env = dict(os.environ, XGAMMA_DATA=data, OPENBLAS_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run([sys.executable, "-X", "importtime", "-m", "xgamma.cli.main", "run",
                                 str(HERE.parent / "examples" / "cta-gc-maps.yaml"), "-q", "-o", out],
                                capture_output=True, text=True, env=env, check=True)
    packages: dict[str, float] = {}
    total = 0.0
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, _, name = line[len("import time:"):].split("|")
        seconds = int(self_us) / 1e6  # self time: each package's own share, nested or not
        total += seconds
        package = name.strip().split(".")[0]
        packages[package] = packages.get(package, 0.0) + seconds
    return total, sorted(packages.items(), key=lambda item: -item[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    data = os.environ.get("XGAMMA_DATA")
    if not data:
        sys.exit("set XGAMMA_DATA to the shared data folder")
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}; best of {args.repeat}")
    rows = {
        "python -c pass": best_of([sys.executable, "-c", "pass"], args.repeat),
        "import xgamma": best_of([sys.executable, "-c", "import xgamma"], args.repeat),
        "python -m xgamma.cli.main --help": best_of([sys.executable, "-m", "xgamma.cli.main", "--help"], args.repeat),
    }
    script = shutil.which("xgamma")
    if script:
        rows["xgamma --help"] = best_of([script, "--help"], args.repeat)
    for label, seconds in rows.items():
        budget = BUDGETS.get(label)
        verdict = "" if budget is None else f"  (budget {budget} s: {'ok' if seconds <= budget else 'OVER'})"
        print(f"{label:34s} {seconds:6.3f} s{verdict}")
    if script:
        print(f"  (console script {script}; a pyenv shim adds its own start-up: compare with the -m row)")
    total, packages = run_imports(data)
    print(f"\nimports of `xgamma run examples/cta-gc-maps.yaml`: {total:.2f} s (python -X importtime, one run)")
    for package, seconds in packages[:12]:
        print(f"  {package:24s} {seconds:6.3f} s")


if __name__ == "__main__":
    main()
