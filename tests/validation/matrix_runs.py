"""Runs of the validation matrix, cached for the test session: xgamma's (through
`xgamma.workflow.run_analysis`, as a user runs a configuration) and Gammapy's (`gammapy_reference`).

Cells that share maps share the map making (Gammapy's stacked datasets are the slow part, a few
seconds each: the last two are kept); fits and significance summaries are small and all kept.
"""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gammapy_reference as gp
from matrix_cells import Cell, xgamma_config

from xgamma.exceptions import DataWarning


@dataclass
class XgammaFit:
    success: bool
    message: str
    values: dict
    errors: dict
    statistic: float
    ts: float
    seconds: float
    warnings: tuple[str, ...] = ()  # the DataWarnings of the run
    exposure_ratio: float = float("nan")  # `FitResult.bin_centre_exposure` of the source


class MatrixRuns:
    """Cached xgamma and Gammapy results of matrix cells (one instance per test session)."""

    def __init__(self, data_dir: Path, keep_maps: int = 2) -> None:
        self.data_dir = Path(data_dir)
        self.keep_maps = keep_maps
        self._maps: OrderedDict = OrderedDict()
        self._results: dict = {}

    def _cached(self, key, compute):
        if key not in self._results:
            self._results[key] = compute()
        return self._results[key]

    def gammapy_maps(self, cell: Cell, options: dict | None = None) -> gp.StackedMaps:
        """Gammapy's stacked maps of the cell; ``options``: keywords of `gammapy_reference.stacked_maps`
        that change Gammapy's conventions (no ring then)."""
        options = options or {}
        key = (cell.maps_key, tuple(sorted(options.items())))
        if key not in self._maps:
            self._maps[key] = gp.stacked_maps(cell, self.data_dir, ring=not cell.edisp and not options, **options)
            while len(self._maps) > self.keep_maps:
                self._maps.popitem(last=False)
        self._maps.move_to_end(key)
        return self._maps[key]

    def gammapy_fit(self, cell: Cell, start: dict | None = None, options: dict | None = None) -> gp.FitReference:
        """Gammapy's fit of the cell from ``start`` on the maps made with ``options`` (`gammapy_maps`)."""
        frozen = None if start is None else tuple(sorted(start.items()))
        key = ("gammapy-fit", cell, frozen, tuple(sorted((options or {}).items())))
        return self._cached(key, lambda: gp.fit_reference(cell, self.gammapy_maps(cell, options), start))

    def gammapy_statistic_at(self, cell: Cell, values: dict) -> float:
        """Gammapy's Cash at the position in ``values``, the rest refitted (`gammapy_reference.statistic_at_position`)."""
        key = ("gammapy-statistic-at", cell, tuple(sorted(values.items())))
        return self._cached(key, lambda: gp.statistic_at_position(cell, self.gammapy_maps(cell), values))

    def gammapy_significance(self, cell: Cell) -> gp.SignificanceReference:
        # The ring needs the maps without energy dispersion (same counts, images of each run).
        plain = Cell(cell.data, cell.safe, "cube", cell.norm, cell.geom)
        return self._cached(("gammapy-significance", cell.significance_key),
                            lambda: gp.significance_reference(plain, self.gammapy_maps(plain)))

    def xgamma_fit(self, cell: Cell) -> XgammaFit:
        def compute() -> XgammaFit:
            from xgamma.workflow import run_analysis

            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                # The data warnings of a cell are recorded, and `test_matrix` asserts exactly the
                # expected ones (`matrix_cells.expected_warnings`): 20 true bins are coarse for
                # CTA's migration, and PKS 2155-304's soft spectrum on 10 reco bins without a
                # safe range makes the bin-centre exposure 6 % off. Gammapy takes the migration and
                # the exposure at the bins' centres as xgamma does, so those cells still compare
                # like with like.
                warnings.simplefilter("always", DataWarning)
                result = run_analysis(xgamma_config(cell, self.data_dir)).fit_result
            recorded = [w for w in caught if issubclass(w.category, DataWarning)]
            for other in (w for w in caught if not issubclass(w.category, DataWarning)):
                warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
            names = ("lon_0", "lat_0", "amplitude", "index")
            return XgammaFit(bool(result.success), result.message,
                             {n: float(result.values[f"source.{n}"]) for n in names},
                             {n: float(result.errors[f"source.{n}"]) for n in names},
                             float(result.statistic), float(result.ts["source"]), time.perf_counter() - start,
                             tuple(str(w.message) for w in recorded),
                             float(result.bin_centre_exposure["source"]["ratio"]))

        return self._cached(("xgamma-fit", cell), compute)

    def xgamma_significance(self, cell: Cell) -> dict:
        def compute() -> dict:
            from xgamma.workflow import run_analysis

            config = xgamma_config(cell, self.data_dir, fit=False, significance=True)
            return run_analysis(config).summary["significance"]

        return self._cached(("xgamma-significance", cell.significance_key), compute)
