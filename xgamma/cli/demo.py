"""``xgamma demo``: simulate a small data store (or take a real one) and run the whole workflow."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from xgamma.exceptions import ConfigError, FitError

__all__ = ["run_demo", "demo_config", "real_data_config", "compare_with_truth", "recovery_problems",
           "DemoRecoveryError", "MAX_PULL"]

#: Largest |pull| (fitted - injected) / error the demo accepts for each fitted parameter.
MAX_PULL = 3.0


class DemoRecoveryError(FitError):
    """The demo's fit did not recover the injected sources; ``summary`` holds the demo's report."""

    def __init__(self, message: str, summary: str) -> None:
        super().__init__(message)
        self.summary = summary


def demo_config(datastore: Path) -> dict:
    """The analysis configuration of the simulated demo store (raw, before validation)."""
    from xgamma.simulate import DEMO_TRUTH

    point, extended = DEMO_TRUTH["point"], DEMO_TRUTH["extended"]
    return {
        "data": {"datastore": str(datastore)},
        "geometry": {"center": {"lon": "0.9 deg", "lat": "0 deg", "frame": "galactic"}, "width": ["5 deg", "4 deg"],
                     "binsz": "0.02 deg", "projection": "CAR",
                     "energy": {"min": "0.1 TeV", "max": "10 TeV", "nbins": 10}},
        "maps": {"offset_max": "2.5 deg", "safe_energy": "aeff-default",
                 "squash": {"spectrum": {"type": "powerlaw", "index": 2}}},
        "models": [
            {"name": "point", "spatial": {"type": "point", "lon_0": f"{point['glon'] - 0.05} deg",
                                          "lat_0": f"{point['glat'] + 0.05} deg", "frame": "galactic"},
             "spectral": {"type": "powerlaw2", "emin": "0.1 TeV", "emax": "10 TeV",
                          "index": {"value": point["index"], "frozen": True}, "amplitude": "1e-11 cm-2 s-1"}},
            {"name": "extended", "spatial": {"type": "gaussian", "lon_0": f"{extended['glon'] + 0.05} deg",
                                             "lat_0": f"{extended['glat'] - 0.05} deg", "sigma": "0.15 deg",
                                             "frame": "galactic"},
             "spectral": {"type": "powerlaw2", "emin": "0.1 TeV", "emax": "10 TeV",
                          "index": {"value": extended["index"], "frozen": True}, "amplitude": "1e-11 cm-2 s-1"}},
        ],
        "background_model": {"norm": {"value": 1, "frozen": False}, "tilt": {"value": 0, "frozen": True}},
        "fit": {"on": "images"},
        "exclusion": {"regions": [f"galactic; circle({point['glon']}, {point['glat']}, 0.3)",
                                  f"galactic; circle({extended['glon']}, {extended['glat']}, 0.6)"]},
        "ring": {"r_in": "0.7 deg", "width": "0.3 deg", "offset_max": "2.5 deg"},
        "significance": {"correlation_radius": "0.1 deg"},
        "plots": True,
    }


def real_data_config(datastore: Path, *, max_observations: int = 8) -> dict:
    """A configuration for a real data store: the most observed target, its nearest runs."""
    from xgamma.io.datastore import DataStore

    store = DataStore(datastore)
    table = store.obs_table
    if len(table) == 0:
        raise ConfigError(f"--data {datastore}: the data store has no observations")
    if "OBJECT" in table.colnames:
        name, _ = Counter(str(o) for o in table["OBJECT"]).most_common(1)[0]
        rows = table[np.array([str(o) == name for o in table["OBJECT"]])]
    else:
        rows = table
    ra, dec = np.asarray(rows["RA_PNT"], float), np.asarray(rows["DEC_PNT"], float)
    from astropy.coordinates import SkyCoord

    pointings = SkyCoord(ra, dec, unit="deg")
    center = SkyCoord(np.median(ra), np.median(dec), unit="deg")
    order = np.argsort(pointings.separation(center).deg)[:max_observations]
    obs_ids = [int(rows["OBS_ID"][i]) for i in order]
    lon, lat = center.ra.deg, center.dec.deg
    return {
        "data": {"datastore": str(datastore), "obs_ids": obs_ids},
        "geometry": {"center": {"lon": f"{lon} deg", "lat": f"{lat} deg", "frame": "icrs"}, "width": ["4 deg", "4 deg"],
                     "binsz": "0.02 deg", "projection": "TAN",
                     "energy": {"min": "0.1 TeV", "max": "10 TeV", "nbins": 10}},
        "maps": {"offset_max": "2 deg", "safe_energy": "aeff-default"},
        "models": [{"name": "source", "spatial": {"type": "point", "lon_0": f"{lon} deg", "lat_0": f"{lat} deg",
                                                   "frame": "icrs"},
                    "spectral": {"type": "powerlaw2", "emin": "0.1 TeV", "emax": "10 TeV",
                                 "index": {"value": 2, "frozen": True}, "amplitude": "1e-11 cm-2 s-1"}}],
        "background_model": {"norm": {"value": 1, "frozen": False}, "tilt": {"value": 0, "frozen": True}},
        "psf": {"position": {"lon": f"{lon} deg", "lat": f"{lat} deg", "frame": "icrs"}},
        "fit": {"on": "images"},
        "exclusion": {"regions": [f"icrs; circle({lon}, {lat}, 0.3)"]},
        "ring": {"r_in": "0.5 deg", "width": "0.3 deg", "offset_max": "2 deg"},
        "significance": {"correlation_radius": "0.1 deg"},
        "plots": True,
    }


def compare_with_truth(fit: dict[str, Any]) -> list[dict[str, Any]]:
    """Fitted vs injected values of the demo sources, with pulls (fit - truth) / error."""
    from xgamma.simulate import DEMO_TRUTH

    rows = []
    parameters = {(p["model"], p["name"]): p for p in fit["parameters"]}
    for model, truth in DEMO_TRUTH.items():
        for name, true in (("lon_0", truth["glon"]), ("lat_0", truth["glat"]), ("amplitude", truth["flux"]),
                           ("sigma", truth.get("sigma_deg"))):
            p = parameters.get((model, name))
            if p is None or true is None:
                continue
            error = p["error"] or float("nan")
            rows.append({"model": model, "parameter": name, "injected": true, "fitted": p["value"], "error": error,
                         "unit": p["unit"], "pull": (p["value"] - true) / error})
    return rows


def recovery_problems(rows: list[dict[str, Any]], success: bool) -> list[str]:
    """What keeps the demo's fit from counting as a recovery of the injected sources (empty: none).

    The fit must succeed and every fitted parameter must lie within `MAX_PULL` errors of its
    injected value.
    """
    problems = [] if success else ["the fit did not converge"]
    for r in rows:
        if not abs(r["pull"]) <= MAX_PULL:  # also catches a NaN pull (no error)
            problems.append(f"{r['model']}.{r['parameter']} = {r['fitted']:.4g} +- {r['error']:.3g} "
                            f"vs injected {r['injected']:.4g} (pull {r['pull']:+.1f})")
    return problems


def _format(rows: list[dict[str, Any]], significance: dict[str, Any], seconds: float) -> str:
    lines = ["xgamma demo: fitted vs injected", f"{'model':10s} {'parameter':10s} {'injected':>12s} {'fitted':>12s} "
             f"{'error':>11s} {'pull':>6s}"]
    for r in rows:
        lines.append(f"{r['model']:10s} {r['parameter']:10s} {r['injected']:12.4g} {r['fitted']:12.4g} "
                     f"{r['error']:11.3g} {r['pull']:6.2f}")
    if significance:
        pos = significance.get("max_position") or {}
        dist = significance.get("off_distribution", {})
        lines.append(f"peak significance {significance.get('max_significance', float('nan')):.1f} sigma at "
                     f"({pos.get('lon', float('nan')):.3f}, {pos.get('lat', float('nan')):.3f}) deg {pos.get('frame', '')}")
        lines.append(f"off-pixel significance distribution: mean {dist.get('mean', float('nan')):.3f}, "
                     f"width {dist.get('std', float('nan')):.3f} ({dist.get('n_pixels', 0)} pixels)")
    lines.append(f"total time {seconds:.1f} s")
    return "\n".join(lines)


def run_demo(*, output: str | os.PathLike = "xgamma-demo", data: str | os.PathLike | None = None, seed: int = 0,
             progress: bool = False) -> str:
    """Run the reference workflow on simulated (or given) data and write every product to ``output``.

    Parameters
    ----------
    output : path-like
        Output folder (created); the simulated data store goes to ``output/datastore``.
    data : path-like, optional
        A real DL3 data store to analyse instead of simulated data.
    seed : int
        Random seed of the simulation. Default is 0.
    progress : bool
        Show progress bars.

    Returns
    -------
    summary : str
        Human-readable summary with the pulls of every fitted parameter (also written to
        ``output/summary.txt``).

    Raises
    ------
    DemoRecoveryError
        On simulated data, when the fit fails or a fitted parameter is more than `MAX_PULL`
        errors from its injected value (after writing every product and the summary).
    """
    import time

    from xgamma.workflow import run_analysis
    from xgamma.io.fits_maps import atomic_path

    start = time.perf_counter()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if data is None:
        from xgamma.simulate import demo_datastore

        store = demo_datastore(output / "datastore", seed=seed, overwrite=True)
        raw = demo_config(store)
    else:
        if not Path(data).is_dir():
            raise ConfigError(f"--data: data store directory not found: {data}")
        raw = real_data_config(Path(data))
    analysis = run_analysis(raw, output=output, progress=progress)
    fit = json.loads((output / "fit.json").read_text())
    rows = compare_with_truth(fit) if data is None else []
    problems = recovery_problems(rows, bool(fit["success"])) if data is None else []
    text = _format(rows, analysis.summary.get("significance", {}), time.perf_counter() - start)
    verdict = ("recovery FAILED: " + "; ".join(problems) if problems
               else f"every fitted parameter within {MAX_PULL:g} sigma of its injected value" if rows else "")
    text = f"{text}\n{verdict}" if verdict else text
    with atomic_path(output / "summary.txt", overwrite=True) as tmp:
        tmp.write_text(text + "\n")
    with atomic_path(output / "demo.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps({"truth_comparison": rows, "recovered": not problems, "problems": problems,
                                   **analysis.summary}, indent=2, default=float))
    if problems:
        raise DemoRecoveryError(f"demo: the fit did not recover the injected sources: {'; '.join(problems)}", text)
    return text
