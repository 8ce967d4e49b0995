"""Source detection on simulated fields: every injected source found, nothing spurious, over 20 seeds.

The field of ``tests/estimators/detection_field.py``: four 30-min wobble runs (``xgamma.simulate``,
CTA-like analytic IRFs) on five sources of known flux (four point sources, one Gaussian of
0.2 deg), imaged at 0.5-100 TeV. For each seed, `xgamma.estimators.detect_sources` (threshold
sqrt(TS) = 5) runs from a background model alone; a detection within 0.15 deg of an injected
source is a match, any other is spurious. The CI test runs seed 1; this runs seeds 1-20 and
prints one line per seed and the totals.

Usage::

    python benchmarks/validate_detection.py [n_seeds]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "estimators"))

from detection_field import SOURCES, field_dataset, match  # noqa: E402

from xgamma.estimators import detect_sources  # noqa: E402


def main(n_seeds: int = 20) -> None:
    names = [name for name, *_ in SOURCES]
    print(f"{'seed':>4s} {'found':>5s} {'spurious':>8s} {'min TS':>7s} " + " ".join(f"{n:>6s}" for n in names)
          + f" {'t4 shape':>9s} {'s':>5s}")
    missed, spurious_total, low_ts, wrong_shape = 0, 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, n_seeds + 1):
            start = time.perf_counter()
            result = detect_sources(field_dataset(Path(tmp), seed), threshold=5, max_sources=8)
            found, spurious = match(result.sources)
            ts = {n: float(result.sources[result.sources["name"] == found[n]][0]["ts"]) if n in found else np.nan
                  for n in names}
            shape = (result.sources[result.sources["name"] == found["t4"]][0]["morphology"]
                     if "t4" in found else "-")
            missed += len(names) - len(found)
            spurious_total += len(spurious)
            low_ts += sum(1 for v in ts.values() if not v > 25)
            wrong_shape += shape != "gaussian"
            print(f"{seed:4d} {len(found):5d} {len(spurious):8d} {np.nanmin(list(ts.values())):7.1f} "
                  + " ".join(f"{ts[n]:6.1f}" for n in names) + f" {shape:>9s} {time.perf_counter() - start:5.0f}",
                  flush=True)
    print(f"\n{n_seeds} seeds: {missed} injected sources missed, {spurious_total} spurious detections, "
          f"{low_ts} found with TS <= 25, {wrong_shape} times the extended source not fitted as a Gaussian")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
