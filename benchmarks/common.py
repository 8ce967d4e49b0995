"""Helpers shared by the benchmark scripts (imported from the scripts' folder)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: One BLAS / OpenMP thread in every benchmarked process.
THREAD_LIMITS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: Environment of every benchmarked process (this one's at import, with `THREAD_LIMITS`).
ENV = dict(os.environ, **THREAD_LIMITS)
#: Working folder of every benchmarked process: not the current one, which `python -c` / `-m` put first on
#: sys.path (a checkout there would shadow the xgamma that PYTHONPATH asks for).
CASE_CWD = tempfile.gettempdir()


def time_processes(commands: dict[str, list[str]], rounds: int, data: str, product: str, title: str) -> None:
    """Time whole processes, alternating the commands, and print the best of ``rounds`` runs of each.

    Each command gets a fresh output folder as its last argument and must write ``product`` there
    (checked, so that a failing tool is not timed as a fast one). Interpreter start-up and imports
    are included. The first command is the reference of the printed ratio (``last / first``).
    """
    env = dict(ENV, XGAMMA_DATA=os.path.abspath(data))
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(rounds):
        for label, args in commands.items():
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                result = subprocess.run([*args, out], capture_output=True, text=True, env=env, check=False,
                                        cwd=CASE_CWD)
                times[label].append(time.perf_counter() - t0)
                if result.returncode != 0 or not (Path(out) / product).is_file():
                    raise RuntimeError(f"{label} failed: {result.stderr[-3000:]}")
    best = {label: min(t) for label, t in times.items()}
    print(f"\nwhole process, {title}, best of {rounds} alternating runs:")
    for label, t in times.items():
        print(f"  {label:15s} best {best[label]:6.2f} s   all: {' '.join(f'{x:.2f}' for x in t)}")
    first, last = list(best)[0], list(best)[-1]
    print(f"  ratio {best[last] / best[first]:.1f}x; load average {os.getloadavg()[0]:.2f}", flush=True)


def python(*args: str) -> list[str]:
    """A command line running this interpreter."""
    return [sys.executable, *args]
