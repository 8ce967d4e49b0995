"""Maximum-likelihood fit of a map dataset with iminuit (MIGRAD, then HESSE, optional MINOS).

How a fit earns ``success``:

1. Free source positions are bounded to the data (:mod:`xgamma.fit.limits`), so MIGRAD cannot
   wander where the likelihood is flat in position.
2. Parameters are scaled to O(1) numbers and given initial steps of their expected size.
3. The parameters the predicted counts are linear in (amplitudes, background norms; the Cash
   statistic is convex in them) are fitted first with the others held at their start. A bad
   start (a faint source on the tail of the real one, a background 10 % off) otherwise gives
   MIGRAD a first Newton step dominated by the background norm, along which a position whose
   curvature was measured on a PSF tail moves by degrees: on the CTA Galactic Centre runs with a
   free norm that step took ``lat_0`` from 0.01 to -2.4 deg, to a false minimum reported valid.
4. MIGRAD runs with the requested strategy, again with strategy 2 if its answer is invalid or at
   a bound, then HESSE.
5. ``success`` is False, with the reasons in ``message``, when the minimum is not valid, the
   covariance is not accurate, a parameter sits at a bound, a source centre is outside the data,
   a source has a negative TS, or another position gives a lower statistic
   (:mod:`xgamma.fit.scan`, the fit stopped in a local minimum).
6. Known biases are recorded, and warned about beyond their tolerance: the exposure at the
   energy bins' centres (:mod:`xgamma.fit.exposure_check`) and the estimator's own first-order
   finite-sample bias (:mod:`xgamma.fit.bias`), beyond 0.1 of an error.

Steps 2-4 are `xgamma.fit.minimize.minimize`, which the scan calls too; this module adds the
checks that need the dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from xgamma.exceptions import FitError
from xgamma.fit.bias import check_bias, finite_sample_bias
from xgamma.fit.dataset import MapDataset
from xgamma.fit.exposure_check import bin_centre_exposure, check_bin_centre_exposure
from xgamma.fit.limits import Limit, default_limits, outside_data
from xgamma.fit.minimize import minimize, scale_of
from xgamma.fit.result import FitResult
from xgamma.fit.statistic import Likelihood, model_parameters
from xgamma.models.sky_model import SkyModel

__all__ = ["fit", "minimize", "scale_of", "source_ts", "stat_profile"]

#: A statistic this much below the fit's elsewhere means the fit stopped in a local minimum.
STATISTIC_TOLERANCE = 0.1

#: Restarts from a lower point one pixel away before giving up.
MAX_RESTARTS = 3


def source_ts(
    likelihood: Likelihood,
    statistic: float,
    *,
    limits: dict[str, Limit] | None = None,
    strategy: int = 1,
) -> dict[str, float]:
    """Test statistic of each sky model: C without it (the rest refitted) - C with it.

    Parameters
    ----------
    likelihood : Likelihood
        At the best fit (its models are copied, not changed).
    statistic : float
        The statistic at the best fit.

    Returns
    -------
    dict
        ``{model name: TS}``.
    """
    out = {}
    for source in [m for m in likelihood.models if isinstance(m, SkyModel)]:
        rest = likelihood.with_models([m.copy() for m in likelihood.models if m is not source])
        if rest.free_labels:
            without = minimize(rest, strategy=strategy, limits=limits).statistic
        else:
            without = rest(np.array([]))
        out[source.name] = float(without - statistic)
    return out


def fit(
    dataset: MapDataset,
    *,
    minos: Sequence[str] = (),
    strategy: int = 1,
    tolerance: float = 0.1,
    update: bool = True,
    scan_positions: bool = True,
) -> FitResult:
    """Fit the free parameters of ``dataset.models`` by minimising the Cash statistic.

    See the module docstring for what makes ``success`` True.

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
    scan_positions : bool
        Look for a lower minimum elsewhere for every source with a free position
        (:func:`xgamma.fit.scan.lower_minimum`); a fit that stopped in a local minimum is
        reported as failed. Default is True.

    Returns
    -------
    FitResult
        With the TS of each sky model (:func:`source_ts`), the bias of the bin-centre
        exposure at each (``bin_centre_exposure``) and the first-order finite-sample bias of
        every free parameter (``bias``, :func:`xgamma.fit.bias.finite_sample_bias`).

    Warns
    -----
    DataWarning
        When a source's bin-centre predicted counts are more than
        `~xgamma.fit.exposure_check.BIN_CENTRE_EXPOSURE_TOLERANCE` off the spectrally integrated
        ones (:func:`~xgamma.fit.exposure_check.check_bin_centre_exposure`). A successful fit
        whose sky-model parameter has a first-order bias beyond `~xgamma.fit.bias.BIAS_TOLERANCE`
        of its error logs a warning naming it (logger ``"xgamma"``, :func:`~xgamma.fit.bias.check_bias`).

    Raises
    ------
    FitError
        If there is no free parameter, a start is outside its bounds, or a map is NaN inside
        the fit mask.
    """
    from xgamma.fit.scan import lower_minimum, neighbour_minimum

    if not dataset.models:
        raise FitError(f"dataset {dataset.name!r} has no models to fit")
    likelihood = dataset.likelihood()  # may raise FitError for NaN maps
    limits = default_limits(likelihood.models, likelihood.arrays)
    options = {"strategy": strategy, "tolerance": tolerance, "limits": limits}
    result = minimize(likelihood, **options)
    notes = []
    for _ in range(MAX_RESTARTS if result.success else 0):
        # A lower point one pixel away (a kink of a bilinear point source, a close pair of
        # fluctuations): continue from there.
        lower = next((found for found in (neighbour_minimum(likelihood, m, result.statistic, limits=limits,
                                                            tolerance=STATISTIC_TOLERANCE)
                                          for m in likelihood.models) if found is not None), None)
        if lower is None:
            break
        for target, source in zip(likelihood.models, lower):
            for pt, ps in zip(target.parameters, source.parameters):
                pt.value = ps.value
        previous = result.statistic
        result = minimize(likelihood, **options)
        notes.append(f"restarted one pixel from MIGRAD's minimum (statistic lower by "
                     f"{previous - result.statistic:.3g})")
    if minos:
        result = minimize(likelihood, minos=minos, **options)
    reasons = [r for r in (outside_data(likelihood.arrays, m) for m in likelihood.models) if r]
    result.ts = source_ts(likelihood, result.statistic, limits=limits, strategy=strategy)
    reasons += [f"source {name!r} has TS = {ts:.3g} < 0: the fit without it is better, so this is not the minimum"
                for name, ts in result.ts.items() if ts < -STATISTIC_TOLERANCE]
    if scan_positions and result.success and not reasons:
        for source in likelihood.models:
            found = lower_minimum(likelihood, source, result.statistic, ts=result.ts.get(source.name, 0.0),
                                  limits=limits, tolerance=STATISTIC_TOLERANCE)
            if found:
                reasons.append(found)
    if reasons:
        result.success = False
        result.message = result.message.replace("converged: ", "failed: ", 1)
    result.message = "; ".join([result.message, *reasons, *notes])
    result.nfev = likelihood.nfev
    result.bin_centre_exposure = bin_centre_exposure(dataset)
    check_bin_centre_exposure(dataset, result.bin_centre_exposure)
    if result.success:  # a failed fit's point is no MLE: its first-order bias would mean nothing
        result.bias = finite_sample_bias(likelihood, result.errors)
        check_bias(result.bias, likelihood.models)
    if update:
        for target, source in zip(dataset.models, likelihood.models):
            for pt, ps in zip(target.parameters, source.parameters):
                pt.value, pt.error = ps.value, ps.error
    return result


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
            limits = default_limits(likelihood.models, likelihood.arrays)
            stats.append(minimize(likelihood, strategy=strategy, limits=limits).statistic)
        else:
            stats.append(likelihood(np.array([])))
        target.frozen = False
    return xr.DataArray(np.array(stats), dims=("parameter",), coords={"parameter": np.asarray(values, float)},
                        name=f"stat_profile[{parameter}]", attrs={"units": ""})
