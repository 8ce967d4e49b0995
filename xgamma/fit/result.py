"""Fit result: best-fit values, errors, labelled covariance, statistic and a readable table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["FitResult"]


@dataclass
class FitResult:
    """Outcome of :func:`xgamma.fit.fit`.

    Attributes
    ----------
    parameters : list of dict
        One row per parameter: ``model``, ``name``, ``value``, ``error``, ``unit``, ``frozen``
        (values and errors in the parameter's unit; frozen parameters have error 0).
    covariance : xarray.DataArray
        Covariance of all parameters, dims ``("param_i", "param_j")`` labelled ``"model.name"``
        (rows and columns of frozen parameters are 0).
    statistic : float
        Cash statistic at the best fit.
    success : bool
        True only when MIGRAD found a valid minimum, HESSE an accurate covariance, no parameter
        sits at a bound and (from :func:`xgamma.fit.fit`) every source centre is on the data, every
        TS is >= 0 and no lower minimum was found elsewhere (see :mod:`xgamma.fit.fitter`).
    nfev : int
        Number of statistic evaluations.
    message : str
        ``"converged: ..."`` or ``"failed: ..."`` with MIGRAD's status, then every reason for a
        failure and notes (strategy-2 rerun, restarts, MINOS skipped).
    minos : dict
        ``{"model.name": (lower, upper)}`` asymmetric errors when MINOS ran.
    ts : dict
        ``{sky model name: TS}``: the statistic without the source (the rest refitted) minus
        the statistic with it (filled by :func:`xgamma.fit.fit`).
    bin_centre_exposure : dict
        ``{sky model name: {"ratio", "corrected"}}``: the source's spectrally integrated over
        bin-centre predicted counts (fitted fluxes are off by about ``ratio - 1`` unless
        ``corrected``, i.e. the fit used ``spectral_exposure``), see
        :mod:`xgamma.fit.exposure_check` (filled by :func:`xgamma.fit.fit`).
    bias : dict
        ``{"model.name": {"bias", "ratio"}}``: the first-order finite-sample bias of each free
        parameter's estimate (parameter unit) and its ratio to the error, see
        :mod:`xgamma.fit.bias` (filled by :func:`xgamma.fit.fit` for a successful fit; empty when
        unknown or when the fit failed).
    """

    parameters: list[dict[str, Any]]
    covariance: xr.DataArray
    statistic: float
    success: bool
    nfev: int
    message: str = ""
    minos: dict[str, tuple[float, float]] = field(default_factory=dict)
    ts: dict[str, float] = field(default_factory=dict)
    bin_centre_exposure: dict[str, dict[str, Any]] = field(default_factory=dict)
    bias: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [f"{p['model']}.{p['name']}" for p in self.parameters]

    @property
    def values(self) -> dict[str, float]:
        """``{"model.name": value}``."""
        return {k: p["value"] for k, p in zip(self.labels, self.parameters)}

    @property
    def errors(self) -> dict[str, float]:
        """``{"model.name": 1-sigma error}``."""
        return {k: p["error"] for k, p in zip(self.labels, self.parameters)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (``fit.json``): success, message, statistic, nfev, parameters, covariance, ts,
        minos, bin_centre_exposure, bias."""
        def clean(x: float) -> float | None:
            return None if not math.isfinite(x) else float(x)

        return {
            "success": bool(self.success),
            "message": self.message,
            "statistic": clean(self.statistic),
            "nfev": int(self.nfev),
            "parameters": [{"model": p["model"], "name": p["name"], "value": clean(p["value"]),
                            "error": clean(p["error"]), "unit": p["unit"], "frozen": bool(p["frozen"])}
                           for p in self.parameters],
            "covariance": {"names": self.labels,
                           "matrix": [[clean(v) for v in row] for row in np.asarray(self.covariance.values)]},
            "ts": {name: clean(ts) for name, ts in self.ts.items()},
            "minos": {label: [clean(lo), clean(hi)] for label, (lo, hi) in self.minos.items()},
            "bin_centre_exposure": {name: {"ratio": clean(entry["ratio"]), "corrected": bool(entry["corrected"])}
                                    for name, entry in self.bin_centre_exposure.items()},
            "bias": {label: {k: clean(v) for k, v in entry.items()} for label, entry in self.bias.items()},
        }

    def __str__(self) -> str:
        head = (f"FitResult: success={self.success}  statistic={self.statistic:.4f}  nfev={self.nfev}\n"
                f"  {self.message}\n")
        width = max([len(x) for x in self.labels] + [9])
        lines = [f"  {'parameter':<{width}}  {'value':>13}  {'error':>11}  unit"]
        for label, p in zip(self.labels, self.parameters):
            err = "frozen" if p["frozen"] else f"{p['error']:.4g}"
            lines.append(f"  {label:<{width}}  {p['value']:>13.6g}  {err:>11}  {p['unit']}")
            if label in self.minos:
                lo, hi = self.minos[label]
                lines.append(f"  {'':<{width}}  {'minos':>13}  {lo:+.3g} / {hi:+.3g}")
        lines += [f"  TS of {name}: {ts:.2f}" for name, ts in self.ts.items()]
        return head + "\n".join(lines)

    def __repr__(self) -> str:
        return f"FitResult(success={self.success}, statistic={self.statistic:.4f}, nfev={self.nfev})"
