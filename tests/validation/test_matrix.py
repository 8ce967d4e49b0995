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
once); ``python -m pytest tests/validation --validation`` runs all 108 cells in one process (95 min
measured at load average 5-9; `benchmarks/validation_matrix.py --processes 2`: 20 min at 4-6). Cells that cannot match are listed in docs/validation.md with
the reason, and assert the documented difference instead (`KNOWN_DIFFERENCES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from matrix_cells import ALL_CELLS, CI_CELLS, WARNINGS, Cell, expected_warnings

from xgamma.fit.exposure_check import BIN_CENTRE_EXPOSURE_TOLERANCE

#: Acceptance of issue 10: positions and index in Gammapy sigma, the rest relative.
TOLERANCES = {"position": 0.2, "amplitude": 0.03, "index": 0.2, "errors": 0.10, "ts": 0.02, "significance": 0.02}


@dataclass(frozen=True)
class KnownDifference:
    """A cell that cannot match, with the measured reason (also in docs/validation.md).

    ``tolerances`` replaces the issue's bound for the named criteria only; the cell must still
    miss the issue's bound on exactly those criteria (so a cell that starts to match, or misses
    another criterion, fails the test) and must stay within the stated bounds.

    ``gammapy_options``, when the cause is a Gammapy convention: keywords of
    `gammapy_reference.stacked_maps` that switch Gammapy to xgamma's convention. Gammapy run so
    must then match the cell on every criterion (the convention is the whole difference).

    ``cash_at_ours``, when the positions are different minima of a flat likelihood: Gammapy's
    own Cash at xgamma's position (the other parameters refitted) is at most this much above
    Gammapy's minimum (a parabolic likelihood would charge the square of the offset in sigma).
    """

    reason: str
    tolerances: dict
    gammapy_options: dict = field(default_factory=dict)
    cash_at_ours: float | None = None


_PSF_CORNERS = ("H.E.S.S. Crab without a safe range, cube without energy dispersion: Gammapy's PSF kernel is a "
                "square whose corners beyond its PSF maps' radius axis (0.66 deg) hold a linear extrapolation of "
                "the IRF table's last two nodes, rising with radius (1.5 % of the 0.40-0.63 TeV kernel, where the "
                "IRF has 0.03 %); with the axis to 1 deg Gammapy matches xgamma (docs/validation.md)")
_TWO_MINIMA = ("GC on TAN ICRS: both codes' likelihoods have two minima 0.005 deg (2.2 sigma) apart in lat with "
               "a ridge of ~1 between them and Cash values within 0.5 of each other; which is lower differs by cell "
               "and by code (docs/validation.md), and each fit stops in one of them")
_PSF_SAFE_RANGE = ("PKS 2155-304 with aeff-default: two Gammapy conventions. Its stacked PSF takes each run in "
                   "every energy bin, also those its safe range cuts (the broad PSFs of runs 33787/33788 enter "
                   "0.63-1 TeV, where their counts are dropped), and it convolves the flux with the PSF before it "
                   "multiplies by the exposure (exposure at the reconstructed, not the true, position: 0.9 % fewer "
                   "counts and a shift along the exposure gradient); with xgamma's conventions Gammapy matches "
                   "(docs/validation.md)")


def _known(ids: str, reason: str, tolerances: dict, gammapy_options: dict | None = None,
           cash_at_ours: float | None = None) -> dict:
    return {cell_id: KnownDifference(reason, tolerances, gammapy_options or {}, cash_at_ours)
            for cell_id in ids.split()}


KNOWN_DIFFERENCES = {
    **_known("hess-crab-off-cube-frozen-car-galactic hess-crab-off-cube-free-car-galactic "
             "hess-crab-off-cube-frozen-tan-icrs hess-crab-off-cube-free-tan-icrs", _PSF_CORNERS, {"index": 0.5},
             {"rad_max": 1.0}),
    **_known("cta-gc-off-images-frozen-tan-icrs cta-gc-off-cube-free-tan-icrs cta-gc-off-cube-edisp-free-tan-icrs "
             "cta-gc-aeff-default-images-frozen-tan-icrs cta-gc-aeff-default-cube-free-tan-icrs "
             "cta-gc-aeff-default-cube-edisp-free-tan-icrs",
             _TWO_MINIMA, {"position": 2.5}, cash_at_ours=0.6),
    **_known("hess-pks2155-aeff-default-cube-frozen-tan-icrs hess-pks2155-aeff-default-cube-free-tan-icrs",
             _PSF_SAFE_RANGE, {"position": 0.25},
             {"psf_safe_bins": True, "psf_after_exposure": True}),
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


def reference_fit(matrix_runs, cell: Cell, options: dict | None = None):
    """Gammapy's fit from the cell's start or, if lower, from xgamma's best fit (see the module docstring);
    ``options`` change Gammapy's conventions (`KnownDifference.gammapy_options`)."""
    ours = matrix_runs.xgamma_fit(cell)
    reference = matrix_runs.gammapy_fit(cell, options=options)
    if _position_mismatch(ours, reference):
        restart = matrix_runs.gammapy_fit(cell, start=ours.values, options=options)
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
    # Exactly the expected data warnings (each known bias is reported where it is large).
    warned = {kind for kind, start in WARNINGS.items() if any(w.startswith(start) for w in ours.warnings)}
    assert warned == expected_warnings(cell), ours.warnings
    assert len(ours.warnings) == len(warned), ours.warnings
    assert (abs(ours.exposure_ratio - 1) > BIN_CENTRE_EXPOSURE_TOLERANCE) == ("bin-centre-exposure" in warned)
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
        if known.gammapy_options:
            # The stated cause is the whole difference: Gammapy with xgamma's convention matches.
            changed = reference_fit(matrix_runs, cell, known.gammapy_options)
            assert changed.success, f"Gammapy's fit with {known.gammapy_options} failed in {cell.id}"
            remaining = compare_fit(ours, changed, cell)
            assert not remaining, (known.gammapy_options, remaining)
        if known.cash_at_ours is not None:
            # Another minimum of the same flat likelihood, not a 2-sigma shift (which costs ~4-5).
            at_ours = matrix_runs.gammapy_statistic_at(cell, ours.values)
            assert at_ours - reference.statistic <= known.cash_at_ours, (known.reason, at_ours, reference.statistic)

    significance = matrix_runs.xgamma_significance(cell)["max_significance"]
    gp_significance = matrix_runs.gammapy_significance(cell).peak
    assert significance == pytest.approx(gp_significance, rel=TOLERANCES["significance"]), (
        significance, gp_significance)
