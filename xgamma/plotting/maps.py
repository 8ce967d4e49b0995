"""The plots astronomers expect of each analysis product: counts, background, excess, significance, residuals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from xgamma.exceptions import GeometryError
from xgamma.plotting.image import Stretch, image_plane, plot_map

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_counts", "plot_background", "plot_excess", "plot_significance", "plot_residuals"]


def plot_counts(counts: xr.DataArray, *, ax: Axes | None = None, smooth: Any = None,
                stretch: Stretch = "sqrt", cmap: str = "inferno", title: str | None = "Counts") -> Axes:
    """Counts image (square-root stretch by default). See `plot_map` for the parameters."""
    return plot_map(counts, ax=ax, smooth=smooth, stretch=stretch, cmap=cmap, title=title,
                    label="counts" if smooth is None else "counts (smoothed)", vmin=0.0 if smooth is None else None)


def plot_background(background: xr.DataArray, *, ax: Axes | None = None, cmap: str = "inferno",
                    title: str | None = "Background") -> Axes:
    """Predicted background counts image. See `plot_map`."""
    return plot_map(background, ax=ax, cmap=cmap, title=title, label="background (counts)")


def plot_excess(excess: xr.DataArray, *, ax: Axes | None = None, smooth: Any = None,
                cmap: str = "magma", title: str | None = "Excess") -> Axes:
    """Excess counts image (counts - background). See `plot_map`."""
    return plot_map(excess, ax=ax, smooth=smooth, cmap=cmap, title=title, label="excess (counts)")


def plot_significance(
    significance: xr.DataArray,
    *,
    ax: Axes | None = None,
    vmin: float | None = -5.0,
    vmax: float | None = 10.0,
    cmap: str = "RdBu_r",
    levels: Sequence[float] = (5.0,),
    exclusion: xr.DataArray | None = None,
    title: str | None = "Significance",
    label: str = "significance (sigma)",
    peak: bool = True,
) -> Axes:
    """Significance image on a diverging colour map with white at 0, contours and the peak marked.

    The colour scale is capped (default -5 .. +10 sigma) so that the 3-10 sigma structure stays
    visible next to a bright source; the peak value is written in the corner (and marked) instead.

    Parameters
    ----------
    significance : `xarray.DataArray`
        Significance map (sigma).
    ax : WCSAxes, optional
        Axes to draw on. Default: a new figure.
    vmin, vmax : float, optional
        Colour scale limits (sigma; values beyond take the end colours). Default is -5 and +10;
        None for the largest absolute finite value (symmetric).
    cmap : str
        Diverging colour map. Default is "RdBu_r" (red positive, blue negative).
    levels : sequence of float
        Significance contours to draw (sigma). Default is (5,).
    exclusion : `xarray.DataArray`, optional
        Exclusion mask (True = usable); its border is drawn as a dashed black contour.
    title : str, optional
        Axes title.
    label : str
        Colour-bar label. Default is "significance (sigma)".
    peak : bool
        Mark the highest pixel and write its value. Default is True.

    Returns
    -------
    ax : WCSAxes
    """
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.lines import Line2D

    image = image_plane(significance, None)
    values = np.asarray(image.values, dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    largest = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    vmin = -largest if vmin is None else min(float(vmin), -1e-6)
    vmax = largest if vmax is None else max(float(vmax), 1e-6)
    ax = plot_map(image, ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, title=title, label=label, nan_color="0.85")
    ax.images[-1].set_norm(TwoSlopeNorm(vcenter=0.0, vmin=vmin, vmax=vmax))  # white at 0 sigma
    handles = []
    levels = sorted(float(v) for v in levels)
    if levels and np.nanmax(values, initial=-np.inf) >= levels[0]:
        ax.contour(np.nan_to_num(values, nan=0.0), levels=levels, colors="black", linewidths=0.8)
        handles.append(Line2D([], [], color="black", linewidth=0.8,
                              label=f"{', '.join(f'{v:g}' for v in levels)} sigma contour"))
    if exclusion is not None:
        mask = np.asarray(image_plane(exclusion, None).values, dtype=float)
        if mask.shape != values.shape:
            raise GeometryError(f"plot: exclusion mask shape {mask.shape} differs from the map {values.shape}")
        if mask.min() < 0.5 < mask.max():
            ax.contour(mask, levels=[0.5], colors="black", linewidths=1.0, linestyles="dashed")
            handles.append(Line2D([], [], color="black", linewidth=1.0, linestyle="dashed",
                                  label="exclusion border"))
    if peak and np.isfinite(values).any():
        y, x = np.unravel_index(np.nanargmax(values), values.shape)
        ax.plot(x, y, marker="x", color="black", markersize=6, linestyle="none")
        handles.append(Line2D([], [], marker="x", color="black", linestyle="none",
                              label=f"peak {values[y, x]:.1f} sigma"))
    if handles:
        ax.legend(handles=handles, loc="lower left", fontsize="small", framealpha=0.7)
    return ax


def plot_residuals(
    residuals: xr.Dataset | xr.DataArray,
    residual_significance: xr.DataArray | None = None,
    *,
    smooth: Any = "0.05 deg",
    vmax: float | None = None,
    figure: Figure | None = None,
) -> Figure:
    """Residual (counts - npred) and residual significance side by side.

    Parameters
    ----------
    residuals : `xarray.Dataset` or `xarray.DataArray`
        A Dataset with ``residual`` and ``residual_significance`` (as from
        `xgamma.fit.MapDataset.residual_maps`), or the residual map itself.
    residual_significance : `xarray.DataArray`, optional
        Residual significance map (sigma), when ``residuals`` is a DataArray.
    smooth : str or `~astropy.units.Quantity`, optional
        Gaussian smoothing of the residual counts (sigma, angle). Default is "0.05 deg".
    vmax : float, optional
        Symmetric colour limit of the residual significance (sigma). Default is 5.
    figure : `matplotlib.figure.Figure`, optional
        Figure to draw on. Default: a new 14 x 5.5 inch figure.

    Returns
    -------
    figure : `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt

    if isinstance(residuals, xr.Dataset):
        missing = {"residual", "residual_significance"} - set(residuals.data_vars)
        if missing:
            raise GeometryError(f"plot_residuals: dataset lacks {sorted(missing)}; use MapDataset.residual_maps()")
        residual_significance = residuals["residual_significance"]
        residuals = residuals["residual"]
    if residual_significance is None:
        raise GeometryError("plot_residuals: give the residual significance map too")
    fig = figure if figure is not None else plt.figure(figsize=(14, 5.5))
    wcs = image_plane(residuals, None).sky.wcs
    ax1 = fig.add_subplot(1, 2, 1, projection=wcs)
    ax2 = fig.add_subplot(1, 2, 2, projection=wcs)
    plot_map(image_plane(residuals, None), ax=ax1, cmap="RdBu_r", smooth=smooth, symmetric=True,
             title="Residual counts",
             label="residual (counts" + (", smoothed)" if smooth is not None else ")"))
    limit = 5.0 if vmax is None else float(vmax)
    correlation = residual_significance.attrs.get("correlation_radius")
    plot_significance(residual_significance, ax=ax2, vmin=-limit, vmax=limit, levels=(),
                      title="Residual significance" + (f" (correlated, r = {correlation})" if correlation else ""),
                      label="residual significance (sigma)", peak=False)
    fig.subplots_adjust(wspace=0.45)  # room for the left colour bar and the right axis label
    return fig
