"""Li & Ma (1983) and known-background (Cash) significances; correlated excess and significance maps.

The statistics are pure numpy functions (element-wise, any shape); `significance_maps` lifts them
over (dask-backed) xarray maps after a top-hat correlation, so the result is lazy and does not
depend on the chunking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from xgamma.exceptions import EstimatorError
from xgamma.fit.statistic import cash_significance

__all__ = [
    "li_ma_significance",
    "cash_significance",
    "excess_error",
    "significance_maps",
    "SignificanceEstimator",
]


def li_ma_significance(n_on: Any, n_off: Any, alpha: Any) -> np.ndarray:
    r"""Li & Ma (1983) eq. 17 significance, signed by the excess ``n_on - alpha * n_off``.

    .. math::
        S = \mathrm{sign}(N_{on} - \alpha N_{off}) \sqrt{2 \left[ N_{on} \ln\left(\frac{1 + \alpha}
        {\alpha} \frac{N_{on}}{N_{on} + N_{off}}\right) + N_{off} \ln\left((1 + \alpha)
        \frac{N_{off}}{N_{on} + N_{off}}\right) \right]}

    A term with zero counts is zero (x ln x -> 0).

    Parameters
    ----------
    n_on, n_off : array_like
        On and off counts (>= 0).
    alpha : array_like
        On/off exposure ratio (> 0).

    Returns
    -------
    significance : `numpy.ndarray`
        In sigma; NaN where alpha is not positive and finite, where counts are negative or not
        finite, or where ``n_on + n_off == 0``.

    Examples
    --------
    >>> round(float(li_ma_significance(10, 5, 0.3)), 7)
    3.5853813
    >>> round(float(li_ma_significance(1, 20, 1.0)), 7)
    -4.5903736
    """
    arrays = [np.asarray(x, dtype=float) for x in (n_on, n_off, alpha)]
    scalar = all(x.ndim == 0 for x in arrays)
    n_on, n_off, alpha = np.broadcast_arrays(*(np.atleast_1d(x) for x in arrays))
    out = _li_ma_into(n_on, n_off, alpha, np.empty(n_on.shape))
    return out[0] if scalar else out


def _li_ma_into(n_on: np.ndarray, n_off: np.ndarray, alpha: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`li_ma_significance` of float arrays of one shape, written into ``out``.

    In place in one workspace, without ``where=`` ufuncs or boolean assignments: on large maps
    fresh temporaries (page faults) and masked loops cost several times the arithmetic. The
    operations are done in the textbook formula's order.
    """
    work = np.empty((3, *out.shape))  # one allocation (large enough for huge pages)
    total, one_plus, arg = work
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.add(n_on, n_off, out=total)
        np.add(1.0, alpha, out=one_plus)
        np.divide(one_plus, alpha, out=arg)
        arg *= n_on
        arg /= total
        arg += n_on == 0  # x ln x -> 0: the argument is 0 there, ln(0 + 1) = 0
        np.log(arg, out=out)
        out *= n_on
        np.multiply(one_plus, n_off, out=arg)
        arg /= total
        arg += n_off == 0
        np.log(arg, out=arg)
        arg *= n_off
        out += arg
        out *= 2.0
        np.maximum(out, 0.0, out=out)  # ts >= 0 analytically; rounding can make it a hair negative
        np.sqrt(out, out=out)
        excess = np.multiply(alpha, n_off, out=arg)
        np.subtract(n_on, excess, out=excess)
        np.copysign(out, excess, out=out)
        out *= excess != 0
        valid = (alpha > 0) & np.isfinite(alpha) & (n_on >= 0) & (n_off >= 0) & (total > 0) & np.isfinite(total)
        out += np.divide(0.0, valid, out=arg)  # 0 where valid, 0 / 0 = NaN elsewhere
    return out


def excess_error(n_on: Any, n_off: Any, alpha: Any) -> np.ndarray:
    """Symmetric error of the excess ``n_on - alpha n_off``: ``sqrt(n_on + alpha**2 n_off)`` (counts)."""
    n_on, n_off, alpha = (np.asarray(x, dtype=float) for x in (n_on, n_off, alpha))
    return np.sqrt(n_on + alpha**2 * n_off)


#: The maps of `_on_off_core`, in its channels' order.
ON_OFF_MAPS = ("counts", "off", "alpha", "background", "excess", "excess_error", "significance")


def _on_off_core(
    counts: np.ndarray, off: np.ndarray, second: np.ndarray, acc_off: np.ndarray, *, window: Any,
    core: tuple[slice, slice], kernel: np.ndarray, correlate_off: bool,
) -> np.ndarray:
    """On-off maps of one (overlapped) block: `ON_OFF_MAPS` (n_on, n_off, alpha, background, excess, error, S).

    ``second`` is the per-pixel alpha (``correlate_off``) or the acceptance (otherwise).
    """
    cy, cx = core
    has_off = acc_off > 0
    core_has_off = has_off[..., cy, cx]
    if not core_has_off.any():
        # No pixel of the core has an off measurement (a block that no run reaches): every map is NaN
        # there, whatever the correlations give (`_on_off_maps`' last step), so they are not made.
        shape = (*np.broadcast_shapes(counts.shape, acc_off.shape)[:-2], *core_has_off.shape[-2:])
        return np.full((len(ON_OFF_MAPS), *shape), np.nan)
    return _on_off_maps(counts, off, second, acc_off, has_off, core=core, kernel=kernel, correlate_off=correlate_off)


def _on_off_maps(counts: np.ndarray, off: np.ndarray, second: np.ndarray, acc_off: np.ndarray, has_off: np.ndarray,
                 *, core: tuple[slice, slice], kernel: np.ndarray, correlate_off: bool) -> np.ndarray:
    """`_on_off_core`'s maps (``has_off``: ``acc_off > 0``)."""
    from xgamma.convolution import convolve_padded, padded_planes

    cy, cx = core
    # The correlation inputs are written straight into the zero-padded FFT buffer, masks applied as
    # products and NaN set by adding a 0/NaN map: on large maps, fresh temporaries, ``where=``
    # ufuncs and boolean assignments cost several times the arithmetic.
    plane = counts.shape[-2:]
    leading = np.broadcast_shapes(counts.shape, acc_off.shape)[:-2]
    buffer = padded_planes((3 if correlate_off else 2, *leading), plane, kernel)
    inputs = buffer[..., : plane[0], : plane[1]]
    np.multiply(counts, has_off, out=inputs[0])  # a NaN left by the product counts as 0 in the FFT
    if correlate_off:
        np.multiply(off, has_off, out=inputs[1])
        np.multiply(np.where(has_off, second, 0.0), inputs[1], out=inputs[2])  # alpha * off per pixel
        n_on, n_off, background = convolve_padded(buffer, plane, kernel, rint=(True, True, False))[..., cy, cx]
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = background / np.where(n_off > 0, n_off, np.nan)
    else:
        inputs[1] = np.where(has_off, second, 0.0)  # acceptance
        sums = convolve_padded(buffer, plane, kernel, rint=(True, False))[..., cy, cx]
        n_on, n_off = sums[0], off[..., cy, cx]
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = sums[1] / np.where(has_off[..., cy, cx], acc_off[..., cy, cx], np.nan)
        background = alpha * n_off
    out = np.empty((len(ON_OFF_MAPS), *n_on.shape))  # one allocation for all outputs (huge pages, no page-fault storm)
    out[0], out[1], out[2], out[3] = n_on, n_off, alpha, background
    np.subtract(n_on, background, out=out[4])
    out[5] = excess_error(n_on, n_off, np.where(n_off > 0, alpha, 0.0))  # alpha is NaN only without off counts
    _li_ma_into(out[0], out[1], out[2], out[6])
    # A pixel without its own off measurement (outside every field of view) gets no value,
    # even if correlated neighbours have some (Gammapy's convention too): + 0 or + NaN.
    with np.errstate(invalid="ignore"):
        out += np.divide(0.0, has_off[..., cy, cx])
    return out


def _known_background_core(
    counts: np.ndarray, background: np.ndarray, *, window: Any, core: tuple[slice, slice], kernel: np.ndarray,
    correlate_off: bool,
) -> np.ndarray:
    """Known-background maps of one (overlapped) block: n_on, background, excess, error, S."""
    from xgamma.convolution import convolve_block

    cy, cx = core
    n_on = convolve_block(counts, kernel, rint=True)[..., cy, cx]
    mu = convolve_block(background, kernel)[..., cy, cx]
    return np.stack([n_on, mu, n_on - mu, np.sqrt(n_on), cash_significance(n_on, mu)])


def significance_maps(
    dataset: xr.Dataset,
    *,
    correlation_radius: Any = "0.1 deg",
    correlate_off: bool = True,
) -> xr.Dataset:
    """Correlated counts, background, excess, excess error and significance maps.

    With off counts (a ring background result: ``off``, ``alpha``, ``acceptance``,
    ``acceptance_off``), per pixel (``T`` = sum over the top-hat of ``correlation_radius``, counts
    masked where ``acceptance_off`` is 0):

    * ``correlate_off=True`` (default, Gammapy's default): ``n_on = T(counts)``,
      ``n_off = T(off)``, ``background = T(alpha * off)``, ``alpha = background / n_off``;
    * ``correlate_off=False`` (the H.E.S.S. survey convention, for single-ring maps):
      ``n_on = T(counts)``, ``n_off = off``, ``alpha = T(acceptance) / acceptance_off``,
      ``background = alpha * off``.

    The significance is Li & Ma eq. 17; all outputs are NaN where ``acceptance_off`` is 0 (pixels
    without an off measurement). Without ``off`` the background is known
    (``background`` model map) and the significance is the Cash one.

    Parameters
    ----------
    dataset : `xarray.Dataset`
        Maps (dims (..., "lat", "lon")) with ``counts`` and either the ring variables or
        ``background``.
    correlation_radius : str or `~astropy.units.Quantity`
        Top-hat radius (angle). Default is "0.1 deg".
    correlate_off : bool
        See above. Default is True.

    Returns
    -------
    maps : `xarray.Dataset`
        ``counts`` (correlated), ``background`` (correlated), ``excess``, ``excess_error``
        (counts), ``significance`` (sigma) and, in the on-off case, ``off`` and ``alpha`` (the
        correlated values entering Li & Ma); ``exclusion`` is carried over. Lazy for dask input.
    """
    from xgamma.blocks import overlap_apply, split_channels
    from xgamma.convolution import kernel_radius
    from xgamma.estimators.correlate import correlation_kernel
    from xgamma.maps import dataset_from_arrays, in_order, map_geometry

    if "counts" not in dataset:
        raise EstimatorError("significance maps need a 'counts' variable")
    counts = dataset["counts"]
    dims = counts.dims
    spatial = (*[d for d in dims if d not in ("lat", "lon")], "lat", "lon")
    kernel = correlation_kernel(correlation_radius, map_geometry(counts).pixel_scale)

    def arr(name: str) -> Any:
        return in_order(dataset.variables[name], spatial).data

    # Array-level maths (numpy or dask alike), wrapped into DataArrays once at the end: xarray's
    # per-operation alignment would cost more than the FFTs here. With dask, the masking, the
    # correlation and the statistics of a block are one task (one graph layer).
    if "off" in dataset:
        missing = {"alpha", "acceptance", "acceptance_off"} - set(dataset.data_vars)
        if missing:
            raise EstimatorError(f"on-off significance needs dataset variables {sorted(missing)}")
        names = ON_OFF_MAPS
        second = "alpha" if correlate_off else "acceptance"
        inputs = [arr("counts"), arr("off"), arr(second), arr("acceptance_off")]
        func = _on_off_core
    elif "background" in dataset:
        names = ("counts", "background", "excess", "excess_error", "significance")
        inputs = [arr("counts"), arr("background")]
        func = _known_background_core
    else:
        raise EstimatorError("significance maps need 'off' (ring background) or 'background' variables")
    out = overlap_apply(func, *inputs, depth=kernel_radius(kernel), n_out=len(names), kernel=kernel,
                        correlate_off=correlate_off, keep_chunks=False)
    arrays = split_channels(out, names)
    extra = {"exclusion": dataset.variables["exclusion"]} if "exclusion" in dataset else None
    attrs = {**dataset.attrs, "correlation_radius": str(correlation_radius), "correlate_off": int(correlate_off)}
    return dataset_from_arrays(in_order(counts, spatial), arrays, extra=extra, dims=dims, attrs=attrs)


@dataclass(frozen=True)
class SignificanceEstimator:
    """Correlated excess and significance maps (``name = "significance"``); see `significance_maps`."""

    name: ClassVar[str] = "significance"

    correlation_radius: Any = "0.1 deg"
    correlate_off: bool = True

    def run(self, dataset: xr.Dataset) -> xr.Dataset:
        """Return the maps of `significance_maps` for ``dataset``."""
        return significance_maps(
            dataset, correlation_radius=self.correlation_radius, correlate_off=self.correlate_off
        )
