"""MIGRAD + HESSE on a :class:`~xgamma.fit.statistic.Likelihood`: the minimizer that `fit` and the
local-minimum scan (:mod:`xgamma.fit.scan`) both call.

Steps 2-4 of :mod:`xgamma.fit.fitter`: parameters scaled to O(1) numbers with initial steps of
their expected size, the linear parameters fitted first, MIGRAD (again with strategy 2 when its
answer is invalid or at a bound), HESSE, and the checks on the minimum itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import xarray as xr
from astropy.units import UnitBase

from xgamma.exceptions import FitError, XgammaError
from xgamma.fit.limits import Limit, longitude_frames
from xgamma.fit.result import FitResult
from xgamma.fit.statistic import Likelihood, model_parameters
from xgamma.geometry.sky import wrap_longitude
from xgamma.models.parameter import Parameter, unit_string
from xgamma.models.sky_model import SkyModel

__all__ = ["minimize", "scale_of", "LINEAR_PARAMETERS"]

#: Parameters the predicted counts are proportional to (fitted first: step 3 of `xgamma.fit.fitter`).
LINEAR_PARAMETERS = frozenset({"amplitude", "norm"})


def scale_of(value: float, unit: UnitBase, default: float = 0.0) -> float:
    """Internal scale of a parameter for the minimizer (power of ten of its value; 1 for angles).

    MIGRAD works best when free parameters are O(1): amplitudes of 1e-11 are divided by 1e-11.
    Angles stay in degrees (a position near 0 has no natural scale). A zero value takes the
    scale of ``default`` (the parameter's declared default), else 1.
    """
    value = value if value != 0 else default
    if unit.physical_type == "angle" or value == 0 or not math.isfinite(value):
        return 1.0
    return 10.0 ** math.floor(math.log10(abs(value)))


def _declared_default(models: list, label: str) -> float:
    """The declared default value of parameter ``label`` ("model.name"), 0 when unknown."""
    model_name, name = label.rsplit(".", 1)
    for model in models:
        if model.name != model_name:
            continue
        parts = (model.spatial, model.spectral) if isinstance(model, SkyModel) else (model,)
        for part in parts:
            spec = getattr(type(part), name, None)
            if spec is not None and hasattr(spec, "default"):
                return float(spec.default)
    return 0.0


class _Objective:
    """The statistic as a function of the scaled free values; model errors become FitErrors."""

    def __init__(self, likelihood: Likelihood, scales: np.ndarray, labels: list[str]) -> None:
        self.likelihood, self.scales, self.labels = likelihood, scales, labels

    def __call__(self, x: np.ndarray) -> float:
        values = np.asarray(x) * self.scales
        if not np.all(np.isfinite(values)):
            return math.nan  # MIGRAD's step from a flat direction: an invalid point, not an error
        try:
            return self.likelihood(values)
        except XgammaError as error:
            at = ", ".join(f"{k}={v:.6g}" for k, v in zip(self.labels, values))
            raise FitError(f"statistic cannot be evaluated at {at}: {error}") from error


def _initial_step(p: Parameter, scale: float, pixel_scale: float) -> float:
    """MIGRAD's first step (scaled units): the known error, else the parameter's expected precision."""
    if p.error > 0:
        return p.error / scale
    if p.unit.physical_type == "angle":
        # Positions and sizes: half a pixel (PSF cores span a few pixels); sizes at least 10 %.
        return max(0.5 * pixel_scale, 0.1 * abs(p.value)) / scale
    return 0.1 * abs(p.value) / scale if p.value != 0 else 0.1


def _limits_of(free: list[tuple[str, Parameter]], limits: dict[str, Limit], frames: dict[str, str]
               ) -> list[Limit | None]:
    """Bounds of each free parameter; longitudes are moved by 360 deg into their bounds' branch."""
    out: list[Limit | None] = []
    for label, p in free:
        limit = limits.get(label)
        if limit is None and (math.isfinite(p.min) or math.isfinite(p.max)):
            limit = Limit(p.min, p.max, "parameter")
        if limit is not None:
            lo = -math.inf if math.isnan(limit.lo) else limit.lo
            hi = math.inf if math.isnan(limit.hi) else limit.hi
            if label in frames and math.isfinite(lo) and not lo <= p.value <= hi:
                p.value = lo + (p.value - lo) % 360.0
            if not lo <= p.value <= hi:
                where = "the data (map or fit mask)" if limit.origin == "data" else "its min/max"
                raise FitError(f"{label} starts at {p.value:g} {unit_string(p.unit)}, outside its bounds "
                               f"[{lo:g}, {hi:g}] from {where}; start inside them")
            limit = Limit(lo, hi, limit.origin)
        out.append(limit)
    return out


def _at_bound(label: str, p: Parameter, limit: Limit | None, error: float) -> str | None:
    if limit is None:
        return None
    # iminuit's rule: within half an error of a bound, the minimum and its errors are unreliable.
    for side, bound in (("lower", limit.lo), ("upper", limit.hi)):
        if math.isfinite(bound) and abs(p.value - bound) <= 0.5 * error:
            where = "the edge of the data" if limit.origin == "data" else "its " + ("min" if side == "lower" else "max")
            return f"{label} = {p.value:.6g} {unit_string(p.unit)} is at its {side} bound {bound:.6g} ({where})"
    return None


def _invalid_reason(fmin) -> str:
    detail = [f"edm={fmin.edm:.3g} (goal {fmin.edm_goal:.3g})"]
    if fmin.has_reached_call_limit:
        detail.append("call limit reached")
    if fmin.is_above_max_edm:
        detail.append("estimated distance to the minimum too large")
    if not fmin.has_posdef_covar:
        detail.append("curvature not positive-definite")
    return "MIGRAD found no valid minimum: " + ", ".join(detail)


def minimize(
    likelihood: Likelihood,
    *,
    minos: Sequence[str] = (),
    strategy: int = 1,
    tolerance: float = 0.1,
    limits: dict[str, Limit] | None = None,
) -> FitResult:
    """Minimise a :class:`~xgamma.fit.statistic.Likelihood` (numpy only: runs on a worker).

    Steps 2-4 of :mod:`xgamma.fit.fitter` plus the checks on the minimum itself (valid, accurate
    covariance, no parameter at a bound). The likelihood's models are left at the best fit, with
    their errors set; longitudes are wrapped to the frame's usual range.

    Parameters
    ----------
    likelihood : Likelihood
        The statistic and its models (the starting point).
    minos : sequence of str
        Parameter labels (``"model.name"``) to get MINOS asymmetric errors for (skipped, with a
        note in ``message``, when there is no valid minimum).
    strategy : int
        iminuit strategy (0 fast, 1 default, 2 careful).
    tolerance : float
        MIGRAD tolerance (EDM goal 0.002 x tolerance x errordef).
    limits : dict, optional
        ``{"model.name": Limit}`` bounds overriding the parameters' own (see
        :func:`xgamma.fit.limits.default_limits`).

    Raises
    ------
    FitError
        No free parameter, an unknown MINOS parameter, a start outside its bounds, or a statistic
        that cannot be evaluated.
    """
    from iminuit import Minuit

    pairs = model_parameters(likelihood.models)
    free = [(label, p) for label, p in pairs if not p.frozen]
    if not free:
        raise FitError(f"all parameters are frozen ({[label for label, _ in pairs]}): nothing to fit")
    labels = [label for label, _ in free]
    unknown = [label for label in minos if label not in labels]
    if unknown:
        raise FitError(f"minos: {unknown[0]!r} is not a free parameter; free: {labels}")
    frames = longitude_frames(likelihood.models)
    bounds = _limits_of(free, limits or {}, frames)
    scales = np.array([scale_of(p.value, p.unit, _declared_default(likelihood.models, label)) for label, p in free])
    pixel_scale = likelihood.arrays.grid.pixel_scale
    m = Minuit(_Objective(likelihood, scales, labels), np.array([p.value for _, p in free]) / scales, name=labels)
    m.errordef = Minuit.LEAST_SQUARES  # C = 2 x (-ln L): one sigma is Delta C = 1
    m.strategy = strategy
    m.tol = tolerance
    m.print_level = 0
    for i, ((label, p), limit) in enumerate(zip(free, bounds)):
        if limit is not None:
            m.limits[label] = (limit.lo / scales[i], limit.hi / scales[i])
        m.errors[label] = _initial_step(p, scales[i], pixel_scale)
    notes: list[str] = []
    try:
        nonlinear = [label for label, p in free if p.name not in LINEAR_PARAMETERS]
        if nonlinear and len(nonlinear) < len(free):
            for label in nonlinear:
                m.fixed[label] = True
            m.migrad()
            for label in nonlinear:
                m.fixed[label] = False
        m.migrad()
        if (not m.fmin.is_valid or m.fmin.has_parameters_at_limit) and strategy < 2:
            m.strategy = 2
            m.migrad()
            notes.append("MIGRAD rerun with strategy 2")
        m.hesse()
    except FitError:
        raise
    except (RuntimeError, ValueError, FloatingPointError) as error:
        raise FitError(f"iminuit failed: {error}") from error

    best = np.array(m.values) * scales
    finite = bool(np.all(np.isfinite(best)))
    if finite:
        likelihood.set_values(best)
    else:  # the parameters keep the last finite values evaluated
        best = np.array([p.value for _, p in free])
    covariance_ok = finite and m.covariance is not None and m.accurate
    cov_free = (np.array(m.covariance) * np.outer(scales, scales) if m.covariance is not None and finite
                else np.full((len(free), len(free)), np.nan))
    errors = dict(zip(labels, np.sqrt(np.clip(np.diag(cov_free), 0, None))))
    reasons = [] if m.fmin.is_valid and finite else [_invalid_reason(m.fmin)]
    if not finite:
        reasons.append("MIGRAD ended at non-finite parameter values (a direction without information)")
    if not covariance_ok:
        reasons.append("HESSE: the covariance is not accurate (failed, or forced positive-definite)")
    for i, ((label, p), limit) in enumerate(zip(free, bounds)):
        reason = _at_bound(label, p, limit, float(m.errors[i]) * scales[i])
        if reason:
            reasons.append(reason)

    minos_errors: dict[str, tuple[float, float]] = {}
    if minos and not (m.fmin.is_valid and finite):
        notes.append(f"MINOS not run for {list(minos)}: no valid minimum")
    elif minos:
        for label in minos:
            k = labels.index(label)
            try:
                m.minos(label)
            except RuntimeError as error:
                raise FitError(f"MINOS failed for {label}: {error}") from error
            me = m.merrors[label]
            if not me.is_valid:
                notes.append(f"MINOS errors of {label} are not valid")
            if me.lower_new_min or me.upper_new_min:
                reasons.append(f"MINOS found a lower minimum while scanning {label}")
            minos_errors[label] = (me.lower * scales[k], me.upper * scales[k])
        likelihood.set_values(best)  # MINOS leaves the parameters elsewhere

    for label, p in free:
        if label in frames:
            p.value = wrap_longitude(p.value, frames[label])
        p.error = float(errors[label]) if math.isfinite(errors[label]) else 0.0  # 0: unknown
    status = (f"MIGRAD edm={m.fmin.edm:.3g}, {m.nfcn} calls, covariance "
              f"{'accurate' if covariance_ok else 'not accurate'}")
    message = "; ".join([("converged: " if not reasons else "failed: ") + status, *reasons, *notes])
    statistic = float(m.fval) if finite else float(likelihood(best))
    return FitResult(parameters=_rows(pairs, errors), covariance=_covariance(pairs, labels, cov_free),
                     statistic=statistic, success=not reasons, nfev=int(m.nfcn), message=message, minos=minos_errors)


def _rows(pairs: list[tuple[str, Parameter]], errors: dict[str, float]) -> list[dict]:
    rows = []
    for label, p in pairs:
        model_name, name = label.rsplit(".", 1)
        rows.append({"model": model_name, "name": name, "value": p.value, "error": float(errors.get(label, 0.0)),
                     "unit": unit_string(p.unit), "frozen": p.frozen})
    return rows


def _covariance(pairs: list[tuple[str, Parameter]], labels: list[str], cov_free: np.ndarray) -> xr.DataArray:
    all_labels = [label for label, _ in pairs]
    cov = np.zeros((len(pairs), len(pairs)))
    index = [all_labels.index(label) for label in labels]
    cov[np.ix_(index, index)] = cov_free
    return xr.DataArray(cov, dims=("param_i", "param_j"), coords={"param_i": all_labels, "param_j": all_labels},
                        name="covariance")
