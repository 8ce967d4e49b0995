"""The validation matrix of issue 10: every cell's fit and significance against Gammapy 2.1.

Cells (`matrix_cells`): {CTA GC, H.E.S.S. Crab, H.E.S.S. PKS 2155-304} x {safe energy off,
aeff-default, aeff-max 10 %} x {fit on images, cube, cube with energy dispersion} x {background
norm frozen, free} x {CAR galactic, TAN icrs}: 108 cells. xgamma runs the cell's configuration
through `run_analysis` with ``fit.point_method: bilinear`` (Gammapy's point-source convention;
the default ``exact`` is compared in tests/fit/test_reference_fit.py); Gammapy's reference is
made at test time (`gammapy_reference`).

Acceptance per cell (issue 10):

* position (lon_0, lat_0) within 0.2 Gammapy sigma;
* amplitude within 3 %, index (cube cells) within 0.2 sigma;
* errors of position, amplitude and index within 10 %;
* TS within 2 %;
* peak of the correlated Li & Ma significance map within 2 % (it depends on the data, safe
  range and geometry only, so the cells sharing those share it).

Bilinear point sources have kinks at pixel centres where MIGRAD can stop: when the positions
differ by more than the tolerance, Gammapy is refitted from xgamma's best fit, and its lower
minimum is the reference (the statistic of the same likelihood decides, never xgamma's).

Plain ``python -m pytest`` runs `matrix_cells.CI_CELLS` (every value of every axis at least
once); ``python -m pytest tests/validation --validation`` runs all 108 cells (~1 h on 2 busy
cores). Cells that cannot match are listed in docs/validation.md with the reason, and assert
the documented difference instead (`KNOWN_DIFFERENCES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from matrix_cells import ALL_CELLS, CI_CELLS, Cell

#: Acceptance of issue 10: positions and index in Gammapy sigma, the rest relative.
TOLERANCES = {"position": 0.2, "amplitude": 0.03, "index": 0.2, "errors": 0.10, "ts": 0.02, "significance": 0.02}


@dataclass(frozen=True)
class KnownDifference:
    """A cell that cannot match, with the measured reason (also in docs/validation.md).

    ``tolerances`` replaces the issue's bound for the named criteria only; the cell must still
    miss the issue's bound on exactly those criteria (so a cell that starts to match, or misses
    another criterion, fails the test) and must stay within the stated bounds.
    """

    reason: str
    tolerances: dict


_THRESHOLD_BINS = ("H.E.S.S. Crab without a safe range, cube without energy dispersion (true axis = the "
                   "10 reco bins): the index differs by 0.3-0.45 sigma; maps identical per bin, the same "
                   "cells with 20 true bins and energy dispersion match (docs/validation.md)")
_TWO_MINIMA = ("GC on TAN ICRS: two bilinear-kink minima 0.005 deg (2.2 sigma) apart in lat whose "
               "statistics differ by < 0.5 in both codes, each code's likelihood preferring its own")
KNOWN_DIFFERENCES = {
    "hess-crab-off-cube-frozen-car-galactic": KnownDifference(_THRESHOLD_BINS, {"index": 0.5}),
    "hess-crab-off-cube-free-car-galactic": KnownDifference(_THRESHOLD_BINS, {"index": 0.5}),
    "hess-crab-off-cube-frozen-tan-icrs": KnownDifference(_THRESHOLD_BINS, {"index": 0.5}),
    "hess-crab-off-cube-free-tan-icrs": KnownDifference(_THRESHOLD_BINS, {"index": 0.5}),
    "cta-gc-off-images-frozen-tan-icrs": KnownDifference(_TWO_MINIMA, {"position": 2.5}),
    "cta-gc-off-cube-free-tan-icrs": KnownDifference(_TWO_MINIMA, {"position": 2.5}),
}


def _order(cell: Cell) -> tuple:
    # Cells sharing maps run one after the other (the Gammapy maps cache keeps the last two).
    return (cell.data, cell.safe, cell.geom, cell.edisp, cell.fit, cell.norm)


def _params():
    for cell in sorted(ALL_CELLS, key=_order):
        marks = () if cell in CI_CELLS else (pytest.mark.validation,)
        yield pytest.param(cell, id=cell.id, marks=marks)


def _position_mismatch(ours, reference) -> bool:
    return any(abs(ours.values[n] - reference.values[n]) > TOLERANCES["position"] * reference.errors[n]
               for n in ("lon_0", "lat_0"))


def reference_fit(matrix_runs, cell: Cell):
    """Gammapy's fit from the cell's start or, if lower, from xgamma's best fit (see the module docstring)."""
    ours = matrix_runs.xgamma_fit(cell)
    reference = matrix_runs.gammapy_fit(cell)
    if _position_mismatch(ours, reference):
        restart = matrix_runs.gammapy_fit(cell, start=ours.values)
        if restart.success and restart.statistic < reference.statistic:
            return restart
    return reference


def compare_fit(ours, reference, cell: Cell, tolerances: dict = TOLERANCES) -> dict[str, str]:
    """The acceptance criteria that ``ours`` misses against ``reference``: ``{criterion: what}``
    (empty: the cell matches)."""
    failures: dict[str, list[str]] = {}
    for name in ("lon_0", "lat_0"):
        pull = (ours.values[name] - reference.values[name]) / reference.errors[name]
        if abs(pull) > tolerances["position"]:
            failures.setdefault("position", []).append(
                f"{name}: {ours.values[name]:.5f} vs {reference.values[name]:.5f} ({pull:+.2f} sigma)")
    amplitude = ours.values["amplitude"] / reference.values["amplitude"] - 1
    if abs(amplitude) > tolerances["amplitude"]:
        failures.setdefault("amplitude", []).append(
            f"amplitude: {ours.values['amplitude']:.4g} vs {reference.values['amplitude']:.4g} ({amplitude:+.1%})")
    names = ["lon_0", "lat_0", "amplitude"]
    if cell.fit != "images":
        names.append("index")
        pull = (ours.values["index"] - reference.values["index"]) / reference.errors["index"]
        if abs(pull) > tolerances["index"]:
            failures.setdefault("index", []).append(
                f"index: {ours.values['index']:.4f} vs {reference.values['index']:.4f} ({pull:+.2f} sigma)")
    for name in names:
        ratio = ours.errors[name] / reference.errors[name] - 1
        if abs(ratio) > tolerances["errors"]:
            failures.setdefault("errors", []).append(
                f"error of {name}: {ours.errors[name]:.4g} vs {reference.errors[name]:.4g} ({ratio:+.1%})")
    ts = ours.ts / reference.ts - 1
    if abs(ts) > tolerances["ts"]:
        failures.setdefault("ts", []).append(f"TS: {ours.ts:.2f} vs {reference.ts:.2f} ({ts:+.1%})")
    return {criterion: "; ".join(what) for criterion, what in failures.items()}


@pytest.mark.gammapy
@pytest.mark.parametrize("cell", list(_params()))
def test_cell_matches_gammapy(cell, matrix_runs):
    ours = matrix_runs.xgamma_fit(cell)
    reference = reference_fit(matrix_runs, cell)
    assert reference.success, f"Gammapy's fit failed in {cell.id}"
    assert ours.success, ours.message
    failures = compare_fit(ours, reference, cell)
    known = KNOWN_DIFFERENCES.get(cell.id)
    if known is None:
        assert not failures, f"{cell.id}: " + "; ".join(failures.values())
    else:
        # Still the documented difference, and no worse than stated.
        assert set(failures) == set(known.tolerances), (known.reason, failures)
        wider = compare_fit(ours, reference, cell, {**TOLERANCES, **known.tolerances})
        assert not wider, (known.reason, wider)

    significance = matrix_runs.xgamma_significance(cell)["max_significance"]
    gp_significance = matrix_runs.gammapy_significance(cell).peak
    assert significance == pytest.approx(gp_significance, rel=TOLERANCES["significance"]), (
        significance, gp_significance)
