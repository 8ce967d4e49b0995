"""Spectral energy distributions and light curves: flux points with errors and upper limits, and the
fitted model with its error band ("butterfly")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from xgamma.exceptions import EstimatorError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["model_band", "plot_flux_points", "plot_spectrum", "plot_sed", "plot_light_curve"]

SedType = Literal["dnde", "e2dnde", "flux", "eflux"]
_LABELS = {"dnde": "dN/dE (TeV-1 cm-2 s-1)", "e2dnde": "E² dN/dE (TeV cm-2 s-1)", "flux": "flux (cm-2 s-1)",
           "eflux": "energy flux (TeV cm-2 s-1)"}


def _figure_axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(6, 4.5)).add_subplot()


def model_band(spectral: Any, energy: np.ndarray, covariance: Any = None, *, model_name: str | None = None,
               sed_type: SedType = "e2dnde") -> tuple[np.ndarray, np.ndarray]:
    """Model SED at ``energy`` (TeV) and its 1 sigma error from the fit covariance (linear propagation).

    Parameters
    ----------
    spectral : `~xgamma.models.spectral.SpectralModel`
        The fitted spectrum.
    energy : numpy.ndarray
        Energies (TeV).
    covariance : `~xgamma.fit.FitResult` or `xarray.DataArray`, optional
        The fit result (or its ``covariance``, labelled ``"model.parameter"``). Default: no band.
    model_name : str, optional
        The sky model's name in the labels. Default: taken from the only model whose spectral
        parameters appear in the covariance.
    sed_type : {"dnde", "e2dnde"}
        Quantity. Default is "e2dnde".

    Returns
    -------
    value, error : numpy.ndarray
        In TeV-1 cm-2 s-1 (dnde) or TeV cm-2 s-1 (e2dnde); ``error`` is 0 without a covariance.
    """
    energy = np.asarray(energy, dtype=float)
    if sed_type not in ("dnde", "e2dnde"):
        raise EstimatorError(f"sed_type must be 'dnde' or 'e2dnde' for a model band, got {sed_type!r}")
    factor = energy**2 if sed_type == "e2dnde" else 1.0
    values = np.array(spectral.values, dtype=float)

    def curve(v: np.ndarray) -> np.ndarray:
        return spectral.evaluate(energy, *v) * factor

    value = curve(values)
    covariance = getattr(covariance, "covariance", covariance)
    if covariance is None:
        return value, np.zeros_like(value)
    labels = [str(v) for v in covariance.coords["param_i"].values]
    names = [p.name for p in spectral.parameters]
    if model_name is None:
        prefixes = {label.rsplit(".", 1)[0] for label in labels}
        owners = {o for o in prefixes if all(f"{o}.{n}" in labels for n in names)}
        if len(owners) != 1:
            raise EstimatorError(f"model_band: pass model_name (the covariance has models {sorted(owners)})")
        model_name = owners.pop()
    index = [labels.index(f"{model_name}.{n}") if f"{model_name}.{n}" in labels else -1 for n in names]
    cov = np.zeros((len(names), len(names)))
    matrix = np.asarray(covariance.values, dtype=float)
    for i, a in enumerate(index):
        for j, b in enumerate(index):
            if a >= 0 and b >= 0:
                cov[i, j] = matrix[a, b]
    jacobian = np.zeros((len(names), energy.size))
    for i in np.flatnonzero(np.diag(cov) > 0):
        step = 1e-4 * np.sqrt(cov[i, i])
        up, down = values.copy(), values.copy()
        up[i] += step
        down[i] -= step
        jacobian[i] = (curve(up) - curve(down)) / (2 * step)
    error = np.sqrt(np.maximum(np.einsum("ie,ij,je->e", jacobian, cov, jacobian), 0.0))
    return value, error


def plot_flux_points(points: xr.Dataset, *, ax: Axes | None = None, sed_type: SedType = "e2dnde",
                     color: str = "C0", label: str | None = "flux points") -> Axes:
    """Flux points with asymmetric (or symmetric) errors, energy bins, and upper limits as arrows.

    Parameters
    ----------
    points : `xarray.Dataset`
        A `xgamma.estimators.flux_points` result (or `read_flux_points`).
    ax : matplotlib axes, optional
        Default: a new figure (log-log axes).
    sed_type : {"dnde", "e2dnde", "flux", "eflux"}
        Quantity drawn. Default is "e2dnde".
    color, label
        Matplotlib style of the points.

    Returns
    -------
    ax : matplotlib axes
    """
    ax = _figure_axes(ax)
    if sed_type not in _LABELS:
        raise EstimatorError(f"sed_type must be one of {sorted(_LABELS)}, got {sed_type!r}")
    energy = points["energy"].values
    x_err = np.array([energy - points["energy_min"].values, points["energy_max"].values - energy])
    factor = energy**2 if sed_type == "e2dnde" else 1.0
    base = "dnde" if sed_type == "e2dnde" else sed_type
    value = points[base].values * factor
    if f"{base}_errn" in points:
        y_err = np.array([points[f"{base}_errn"].values, points[f"{base}_errp"].values]) * factor
    else:
        y_err = np.array([points[f"{base}_err"].values] * 2) * factor
    is_ul = points["is_ul"].values.astype(bool) if "is_ul" in points else np.zeros(energy.size, bool)
    shown = ~is_ul
    ax.errorbar(energy[shown], value[shown], xerr=x_err[:, shown], yerr=y_err[:, shown], fmt="o", color=color,
                label=label)
    if is_ul.any() and f"{base}_ul" in points:
        ul = points[f"{base}_ul"].values[is_ul] * (factor[is_ul] if np.ndim(factor) else factor)
        ax.errorbar(energy[is_ul], ul, xerr=x_err[:, is_ul], yerr=0.3 * ul, uplims=True, fmt="none", color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("energy (TeV)")
    ax.set_ylabel(_LABELS[sed_type])
    return ax


def plot_spectrum(spectral: Any, *, energy_range: Sequence[float], covariance: Any = None,
                  model_name: str | None = None, ax: Axes | None = None, sed_type: SedType = "e2dnde",
                  color: str = "C1", label: str | None = "model") -> Axes:
    """The fitted spectral model as a line with its 1 sigma error band (the butterfly).

    Parameters
    ----------
    spectral : `~xgamma.models.spectral.SpectralModel`
        The fitted spectrum.
    energy_range : (float, float)
        Energies (TeV) to draw.
    covariance, model_name
        See `model_band`; no band without a covariance.
    ax, sed_type, color, label
        As for `plot_flux_points` (``sed_type`` "dnde" or "e2dnde").

    Returns
    -------
    ax : matplotlib axes
    """
    ax = _figure_axes(ax)
    energy = np.geomspace(float(energy_range[0]), float(energy_range[1]), 100)
    value, error = model_band(spectral, energy, covariance, model_name=model_name, sed_type=sed_type)
    ax.plot(energy, value, color=color, label=label)
    if np.any(error > 0):
        ax.fill_between(energy, np.clip(value - error, value * 1e-3, None), value + error, color=color, alpha=0.3,
                        linewidth=0, label=None if label is None else f"{label} (1 sigma)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("energy (TeV)")
    ax.set_ylabel(_LABELS[sed_type])
    return ax


def plot_sed(points: xr.Dataset, spectral: Any = None, *, covariance: Any = None, model_name: str | None = None,
             ax: Axes | None = None, sed_type: SedType = "e2dnde", title: str | None = None) -> Axes:
    """The standard SED plot: flux points and upper limits over the fitted model and its butterfly."""
    ax = _figure_axes(ax)
    if spectral is not None:
        lo, hi = float(points["energy_min"].values.min()), float(points["energy_max"].values.max())
        plot_spectrum(spectral, energy_range=(lo, hi), covariance=covariance, model_name=model_name, ax=ax,
                      sed_type=sed_type)
    plot_flux_points(points, ax=ax, sed_type=sed_type)
    ax.legend(loc="best")
    ax.set_title(title if title is not None else f"SED of {points.attrs.get('source', 'the source')}")
    return ax


def plot_light_curve(curve: xr.Dataset, *, ax: Axes | None = None, sed_type: SedType = "flux",
                     energy_index: int = 0, color: str = "C0") -> Axes:
    """A light curve: the flux (or norm-derived quantity) per time bin (MJD), upper limits as arrows."""
    ax = _figure_axes(ax)
    if "time" not in curve.dims:
        raise EstimatorError("plot_light_curve: the dataset has no 'time' dim (a light_curve result)")
    one = curve.isel(energy=energy_index)
    start, stop = one["time_min"].values, one["time_max"].values
    middle = 0.5 * (start + stop)
    value = one[sed_type].values
    errors = ([one[f"{sed_type}_errn"].values, one[f"{sed_type}_errp"].values] if f"{sed_type}_errn" in one
              else [one[f"{sed_type}_err"].values] * 2)
    is_ul = one["is_ul"].values.astype(bool)
    ax.errorbar(middle[~is_ul], value[~is_ul], xerr=[(middle - start)[~is_ul], (stop - middle)[~is_ul]],
                yerr=np.array(errors)[:, ~is_ul], fmt="o", color=color)
    if is_ul.any() and f"{sed_type}_ul" in one:
        ul = one[f"{sed_type}_ul"].values[is_ul]
        ax.errorbar(middle[is_ul], ul, xerr=[(middle - start)[is_ul], (stop - middle)[is_ul]], yerr=0.2 * ul,
                    uplims=True, fmt="none", color=color)
    lo, hi = float(one["energy_min"]), float(one["energy_max"])
    ax.set_xlabel("time (MJD)")
    ax.set_ylabel(f"{_LABELS[sed_type]}, {lo:.3g}-{hi:.3g} TeV")
    return ax
