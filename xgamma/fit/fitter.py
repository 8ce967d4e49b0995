"""Maximum-likelihood fit of a map dataset with iminuit (MIGRAD, then HESSE, optional MINOS)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from astropy.units import UnitBase
import xarray as xr

from xgamma.exceptions import FitError
from xgamma.fit.dataset import MapDataset
from xgamma.fit.result import FitResult
from xgamma.fit.statistic import Likelihood, model_parameters
from xgamma.models.parameter import unit_string

__all__ = ["fit", "minimize", "scale_of", "stat_profile"]


def scale_of(value: float, unit: UnitBase) -> float:
    """Internal scale of a parameter for the minimizer (power of ten of its value; 1 for angles).

    MIGRAD works best when free parameters are O(1): amplitudes of 1e-11 are divided by 1e-11.
    Angles stay in degrees (a position near 0 has no natural scale).
    """
    if unit.physical_type == "angle" or value == 0:
        return 1.0
    return 10.0 ** math.floor(math.log10(abs(value)))


def fit(
    dataset: MapDataset,
    *,
    minos: Sequence[str] = (),
    strategy: int = 1,
    tolerance: float = 0.1,
    update: bool = True,
) -> FitResult:
    """Fit the free parameters of ``dataset.models`` by minimising the Cash statistic.

    Parameters
    ----------
    dataset : MapDataset
        Dataset with models attached.
    minos : sequence of str
        Parameter labels (``"model.name"``) to get MINOS asymmetric errors for.
    strategy : int
        iminuit strategy (0 fast, 1 default, 2 careful).
    tolerance : float
        MIGRAD tolerance (EDM goal 0.002 x tolerance x errordef).
    update : bool
        Write the best-fit values and errors back into ``dataset.models``.

    Returns
    -------
    FitResult

    Raises
    ------
    FitError
        If there is no free parameter, or a map is NaN inside the fit mask.
    """
    if not dataset.models:
        raise FitError(f"dataset {dataset.name!r} has no models to fit")
    likelihood = dataset.likelihood()  # may raise FitError for NaN maps
    result = minimize(likelihood, minos=minos, strategy=strategy, tolerance=tolerance)
    if update:
        for target, source in zip(dataset.models, likelihood.models):
            for pt, ps in zip(target.parameters, source.parameters):
                pt.value, pt.error = ps.value, ps.error
    return result


def minimize(
    likelihood: Likelihood,
    *,
    minos: Sequence[str] = (),
    strategy: int = 1,
    tolerance: float = 0.1,
) -> FitResult:
    """Minimise a :class:`~xgamma.fit.statistic.Likelihood` (numpy only: runs on a worker).

    The likelihood's models are left at the best fit, with their errors set.
    See :func:`fit` for the parameters.
    """
    from iminuit import Minuit

    pairs = model_parameters(likelihood.models)
    free = [(label, p) for label, p in pairs if not p.frozen]
    if not free:
        raise FitError(f"all parameters are frozen ({[label for label, _ in pairs]}): nothing to fit")
    scales = np.array([scale_of(p.value, p.unit) for _, p in free])

    def fcn(x: np.ndarray) -> float:
        return likelihood(np.asarray(x) * scales)

    x0 = np.array([p.value for _, p in free]) / scales
    labels = [label for label, _ in free]
    m = Minuit(fcn, x0, name=labels)
    m.errordef = Minuit.LEAST_SQUARES  # C = 2 x (-ln L): one sigma is Delta C = 1
    m.strategy = strategy
    m.tol = tolerance
    for i, (label, p) in enumerate(free):
        lo = p.min / scales[i] if math.isfinite(p.min) else None
        hi = p.max / scales[i] if math.isfinite(p.max) else None
        if lo is not None or hi is not None:
            m.limits[label] = (-np.inf if lo is None else lo, np.inf if hi is None else hi)
        if p.error > 0:
            step = p.error / scales[i]
        elif p.unit.physical_type == "angle":
            step = 0.01  # deg: a fraction of typical PSF widths
        else:
            step = 0.1 * abs(x0[i]) if x0[i] != 0 else 0.1
        m.errors[label] = step
    m.migrad()
    m.hesse()
    minos_errors: dict[str, tuple[float, float]] = {}
    for label in minos:
        if label not in labels:
            raise FitError(f"minos: {label!r} is not a free parameter; free: {labels}")
        m.minos(label)
        me = m.merrors[label]
        k = labels.index(label)
        minos_errors[label] = (me.lower * scales[k], me.upper * scales[k])

    best = np.array(m.values) * scales
    likelihood.set_values(best)
    cov_free = np.array(m.covariance) * np.outer(scales, scales) if m.covariance is not None \
        else np.full((len(free), len(free)), np.nan)
    all_labels = [label for label, _ in pairs]
    cov = np.zeros((len(pairs), len(pairs)))
    index = [all_labels.index(label) for label in labels]
    cov[np.ix_(index, index)] = cov_free
    errors = dict(zip(labels, np.sqrt(np.clip(np.diag(cov_free), 0, None))))
    rows = []
    for label, p in pairs:
        model_name, name = label.rsplit(".", 1)
        if label in errors:
            p.error = float(errors[label])
        rows.append({"model": model_name, "name": name, "value": p.value,
                     "error": float(errors.get(label, 0.0)), "unit": unit_string(p.unit), "frozen": p.frozen})
    covariance = xr.DataArray(cov, dims=("param_i", "param_j"),
                              coords={"param_i": all_labels, "param_j": all_labels}, name="covariance")
    fmin = m.fmin
    success = bool(fmin.is_valid and m.accurate)
    message = (f"MIGRAD valid={fmin.is_valid} edm={fmin.edm:.3g} hesse_accurate={m.accurate} "
               f"at_limit={fmin.has_parameters_at_limit}")
    return FitResult(parameters=rows, covariance=covariance, statistic=float(fmin.fval),
                     success=success, nfev=int(m.nfcn), message=message, minos=minos_errors)


def stat_profile(
    dataset: MapDataset,
    parameter: str,
    *,
    values: Sequence[float],
    strategy: int = 1,
) -> xr.DataArray:
    """Likelihood profile of one parameter: the other free parameters refitted at each value.

    Parameters
    ----------
    dataset : MapDataset
        Dataset with models (their current values are the starting point at each step).
    parameter : str
        Label ``"model.name"`` of a free parameter.
    values : sequence of float
        Values to scan (in the parameter's unit).

    Returns
    -------
    xarray.DataArray
        Cash statistic, dim ``parameter`` (its coordinate holds ``values``), ``attrs["units"] = ""``.
    """
    likelihood = dataset.likelihood()
    pairs = dict(model_parameters(likelihood.models))
    if parameter not in pairs or pairs[parameter].frozen:
        free = [k for k, p in pairs.items() if not p.frozen]
        raise FitError(f"stat_profile: {parameter!r} is not a free parameter; free: {free}")
    target = pairs[parameter]
    start = {k: p.value for k, p in pairs.items()}
    stats = []
    for value in values:
        for k, p in pairs.items():
            p.value = start[k]
        target.value = float(value)
        target.frozen = True
        likelihood.refresh()
        if likelihood.free_labels:
            stats.append(minimize(likelihood, strategy=strategy).statistic)
        else:
            stats.append(likelihood(np.array([])))
        target.frozen = False
    return xr.DataArray(np.array(stats), dims=("parameter",), coords={"parameter": np.asarray(values, float)},
                        name=f"stat_profile[{parameter}]", attrs={"units": ""})
