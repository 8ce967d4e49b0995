"""Plots astronomers expect, on WCS axes: sky images with colour bars, residuals, fitted positions.

Every function draws on `astropy.visualization.wcsaxes.WCSAxes` (matplotlib axes whose
projection is the map's WCS), labels the axes with the map's frame (galactic or ICRS) and gives
each image a colour bar labelled with the map's name and units. Plotting computes lazy maps
(it needs the values); only the image being drawn is computed.

matplotlib is imported inside the functions so that ``import xgamma`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from xgamma.exceptions import FitError, GeometryError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from xgamma.fit.result import FitResult

__all__ = [
    "plot_map",
    "plot_counts",
    "plot_background",
    "plot_excess",
    "plot_significance",
    "plot_residuals",
    "plot_source_position",
    "error_ellipse",
    "save_analysis_plots",
    "PLOT_FILES",
]

Stretch = Literal["linear", "sqrt", "log", "asinh"]

#: PNG file written by `save_analysis_plots` for each product (when its inputs exist).
PLOT_FILES = {
    "counts": "counts.png",
    "background": "background.png",
    "excess": "excess.png",
    "significance": "significance.png",
    "residuals": "residuals.png",
    "distribution": "distribution.png",
    "source_position": "source_position.png",
}

_AXIS_LABELS = {
    "galactic": ("Galactic longitude", "Galactic latitude"),
    "icrs": ("Right ascension (ICRS)", "Declination (ICRS)"),
}


# ---------------------------------------------------------------------------- helpers
def _frame(wcs: Any) -> str:
    return "galactic" if wcs.wcs.ctype[0].startswith("GLON") else "icrs"


def _image(da: xr.DataArray, energy_index: int | None) -> xr.DataArray:
    """The (lat, lon) image to draw: a length-1 energy dim, or the chosen energy bin."""
    if not isinstance(da, xr.DataArray):
        raise GeometryError(f"plot: expected an xarray.DataArray map, got {type(da).__name__}")
    if "energy" in da.dims:
        n = da.sizes["energy"]
        if energy_index is None:
            if n != 1:
                raise GeometryError(
                    f"plot: map {da.name!r} has {n} energy bins; pass energy_index=0..{n - 1} "
                    "or squash it first (da.sky.squash_energy())"
                )
            energy_index = 0
        if not -n <= energy_index < n:
            raise GeometryError(f"plot: energy_index={energy_index} out of range for {n} energy bins")
        da = da.isel(energy=energy_index)
    extra = [d for d in da.dims if d not in ("lat", "lon")]
    if extra:
        raise GeometryError(f"plot: map {da.name!r} has extra dims {extra}; select one image with .isel()")
    return da.transpose("lat", "lon")


def _smooth(values: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing that ignores NaN pixels (normalised convolution)."""
    from scipy.ndimage import gaussian_filter

    finite = np.isfinite(values)
    num = gaussian_filter(np.where(finite, values, 0.0), sigma_px, mode="constant")
    den = gaussian_filter(finite.astype(float), sigma_px, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    return np.where(finite, out, np.nan)


def _norm(values: np.ndarray, vmin: float | None, vmax: float | None, stretch: Stretch):
    from astropy.visualization import AsinhStretch, ImageNormalize, LinearStretch, LogStretch, SqrtStretch

    stretches = {"linear": LinearStretch, "sqrt": SqrtStretch, "log": LogStretch, "asinh": AsinhStretch}
    if stretch not in stretches:
        raise GeometryError(f"plot: unknown stretch {stretch!r}; use one of {sorted(stretches)}")
    finite = values[np.isfinite(values)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return ImageNormalize(vmin=lo, vmax=hi, stretch=stretches[stretch](), clip=False)


def _colorbar_label(da: xr.DataArray, label: str | None) -> str:
    if label is not None:
        return label
    name = str(da.name) if da.name is not None else "value"
    units = str(da.attrs.get("units", "") or "")
    return f"{name} ({units})" if units else name


def _wcs_axes(da: xr.DataArray, ax: Axes | None) -> Axes:
    import matplotlib.pyplot as plt

    wcs = da.sky.wcs
    if ax is None:
        fig = plt.figure(figsize=(8, 6))
        ax = fig.add_subplot(projection=wcs)
    elif not hasattr(ax, "coords"):
        raise GeometryError("plot: ax must be WCSAxes; create it with fig.add_subplot(projection=da.sky.wcs)")
    return ax


def _label_axes(ax: Axes, frame: str, add_grid: bool, overlay: str | None) -> None:
    lon, lat = ax.coords[0], ax.coords[1]
    xlabel, ylabel = _AXIS_LABELS[frame]
    lon.set_axislabel(xlabel)
    lat.set_axislabel(ylabel)
    lon.set_major_formatter("d.d" if frame == "galactic" else "hh:mm")
    lat.set_major_formatter("d.d" if frame == "galactic" else "dd:mm")
    if add_grid:
        ax.coords.grid(color="white", alpha=0.35, linestyle="dotted")
    if overlay is not None and overlay != frame:
        if overlay not in _AXIS_LABELS:
            raise GeometryError(f"plot: overlay frame {overlay!r} is not 'galactic' or 'icrs'")
        grid = ax.get_coords_overlay(overlay)
        grid.grid(color="orange", alpha=0.4, linestyle="dashed")
        grid[0].set_axislabel(_AXIS_LABELS[overlay][0])
        grid[1].set_axislabel(_AXIS_LABELS[overlay][1])


# ---------------------------------------------------------------------------- generic image
def plot_map(
    da: xr.DataArray,
    *,
    ax: Axes | None = None,
    energy_index: int | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    stretch: Stretch = "linear",
    colorbar: bool = True,
    label: str | None = None,
    title: str | None = None,
    add_grid: bool = True,
    overlay: Literal["galactic", "icrs"] | None = None,
    smooth: Any = None,
    symmetric: bool = False,
    nan_color: str | None = None,
) -> Axes:
    """Draw a sky image on WCS axes with grid, axis labels and a colour bar.

    Parameters
    ----------
    da : `xarray.DataArray`
        Map with dims ``("energy", "lat", "lon")`` (or ``("lat", "lon")``). Lazy maps are
        computed (the drawn image only).
    ax : `~astropy.visualization.wcsaxes.WCSAxes`, optional
        Axes to draw on (``fig.add_subplot(projection=da.sky.wcs)``). Default: a new figure.
    energy_index : int, optional
        Energy bin to draw. Default: the only bin of an image; required for a cube.
    cmap : str
        Matplotlib colour map. Default is "viridis".
    vmin, vmax : float, optional
        Colour scale limits (map units). Default: the finite data range.
    stretch : {"linear", "sqrt", "log", "asinh"}
        Colour stretch (`astropy.visualization`). Default is "linear".
    colorbar : bool
        Add a colour bar labelled ``"name (units)"``. Default is True.
    label : str, optional
        Colour-bar label instead of ``"name (units)"``.
    title : str, optional
        Axes title. Default: the map's name.
    add_grid : bool
        Draw the coordinate grid of the map's frame. Default is True.
    overlay : {"galactic", "icrs"}, optional
        Also draw (and label on the top/right axes) the grid of another frame.
    smooth : str or `~astropy.units.Quantity`, optional
        Gaussian smoothing width (sigma, angle), e.g. ``"0.05 deg"``; NaN pixels stay NaN.
    symmetric : bool
        Colour scale from -m to +m, m the largest absolute value drawn (after smoothing) or
        ``vmax``: for residuals and significances on a diverging colour map. Default is False.
    nan_color : str, optional
        Colour of NaN pixels (no data), e.g. ``"0.85"`` (light grey) where white means 0 on a
        diverging colour map. Default: transparent.

    Returns
    -------
    ax : `~astropy.visualization.wcsaxes.WCSAxes`

    Raises
    ------
    GeometryError
        For a cube without ``energy_index``, extra dims, a bad stretch or non-WCS axes.
    """
    from xgamma.units import parse_angle

    image = _image(da, energy_index)
    geometry = image.sky.geometry
    ax = _wcs_axes(image, ax)
    values = np.asarray(image.values, dtype=float)
    if smooth is not None:
        sigma_px = parse_angle(smooth, name="smooth").to_value("deg") / geometry.pixel_scale
        if sigma_px > 0:
            values = _smooth(values, sigma_px)
    if symmetric:
        finite = np.abs(values[np.isfinite(values)])
        limit = vmax if vmax is not None else (float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
        vmin, vmax = -limit, limit
    norm = _norm(values, vmin, vmax, stretch)
    import matplotlib

    colormap = matplotlib.colormaps[cmap]
    if nan_color is not None:
        colormap = colormap.with_extremes(bad=nan_color)
    im = ax.imshow(values, origin="lower", cmap=colormap, norm=norm, interpolation="nearest")
    _label_axes(ax, geometry.frame, add_grid, overlay)
    ax.set_title(title if title is not None else str(image.name or ""))
    if colorbar:
        cbar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04 if overlay is None else 0.12)
        cbar.set_label(_colorbar_label(image, label))
    return ax


# ---------------------------------------------------------------------------- astronomer plots
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
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    levels: Sequence[float] = (5.0,),
    exclusion: xr.DataArray | None = None,
    title: str | None = "Significance",
    label: str = "significance (sigma)",
) -> Axes:
    """Significance image on a diverging colour map centred on 0, with contours.

    Parameters
    ----------
    significance : `xarray.DataArray`
        Significance map (sigma).
    ax : WCSAxes, optional
        Axes to draw on. Default: a new figure.
    vmax : float, optional
        Colour scale runs from -vmax to +vmax. Default: the largest absolute finite value.
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

    Returns
    -------
    ax : WCSAxes
    """
    image = _image(significance, None)
    values = np.asarray(image.values, dtype=float)
    if vmax is None:
        finite = np.abs(values[np.isfinite(values)])
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    ax = plot_map(image, ax=ax, cmap=cmap, vmin=-vmax, vmax=vmax, title=title, label=label, nan_color="0.85")
    levels = sorted(float(v) for v in levels)
    if levels and np.nanmax(values, initial=-np.inf) >= levels[0]:
        ax.contour(np.nan_to_num(values, nan=0.0), levels=levels, colors="black", linewidths=0.8)
    if exclusion is not None:
        mask = np.asarray(_image(exclusion, None).values, dtype=float)
        if mask.shape != values.shape:
            raise GeometryError(f"plot: exclusion mask shape {mask.shape} differs from the map {values.shape}")
        if mask.min() < 0.5 < mask.max():
            ax.contour(mask, levels=[0.5], colors="black", linewidths=1.0, linestyles="dashed")
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
        Symmetric colour limit of the residual significance. Default: largest absolute value.
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
    wcs = _image(residuals, None).sky.wcs
    ax1 = fig.add_subplot(1, 2, 1, projection=wcs)
    ax2 = fig.add_subplot(1, 2, 2, projection=wcs)
    plot_map(_image(residuals, None), ax=ax1, cmap="RdBu_r", smooth=smooth, symmetric=True,
             title="Residual counts",
             label="residual (counts" + (", smoothed)" if smooth is not None else ")"))
    plot_significance(residual_significance, ax=ax2, vmax=vmax, levels=(), title="Residual significance",
                      label="residual significance (sigma)")
    fig.subplots_adjust(wspace=0.45)  # room for the left colour bar and the right axis label
    return fig


# ---------------------------------------------------------------------------- fitted position
def error_ellipse(covariance: Any, *, n_sigma: float = 1.0) -> tuple[float, float, float]:
    """Axes and orientation of the error ellipse of a (lon, lat) covariance.

    The ellipse is the contour ``Delta C = n_sigma**2`` of the fit statistic: its projections on
    the axes are the ``n_sigma`` errors of lon and lat (it contains 39 % (1 sigma) or 86 %
    (2 sigma) of the 2-D probability).

    Parameters
    ----------
    covariance : array-like, shape (2, 2)
        Covariance of (lon, lat) in deg^2 (lon in coordinate degrees, as fitted).
    n_sigma : float
        Scale of the ellipse. Default is 1.

    Returns
    -------
    width, height : float
        Full lengths (deg) of the ellipse axes along the first and second eigenvector.
    angle : float
        Angle (deg) of the first axis from the +lon axis towards +lat.
    """
    cov = np.asarray(covariance, dtype=float)
    if cov.shape != (2, 2) or not np.all(np.isfinite(cov)):
        raise FitError(f"position covariance must be a finite 2 x 2 matrix, got {cov!r}")
    eigval, eigvec = np.linalg.eigh(0.5 * (cov + cov.T))
    if eigval.min() < 0:
        raise FitError(f"position covariance is not positive semi-definite (eigenvalues {eigval})")
    major = eigvec[:, 1]
    angle = float(np.degrees(np.arctan2(major[1], major[0])))
    width, height = 2.0 * n_sigma * np.sqrt(eigval[::-1])
    return float(width), float(height), angle


def _position_from_result(result: FitResult, model: str | None) -> tuple[float, float, np.ndarray, str]:
    values = result.values
    candidates = [p["model"] for p in result.parameters if p["name"] == "lon_0"]
    if model is None:
        free = [m for m in candidates if f"{m}.lat_0" in values and not any(
            p["frozen"] for p in result.parameters if p["model"] == m and p["name"] in ("lon_0", "lat_0"))]
        if not free:
            raise FitError(f"fit result has no model with a free position; models with lon_0: {candidates}")
        model = free[0]
    labels = [f"{model}.lon_0", f"{model}.lat_0"]
    if any(label not in values for label in labels):
        raise FitError(f"fit result has no position parameters {labels}; models with lon_0: {candidates}")
    cov = np.asarray(result.covariance.sel(param_i=labels, param_j=labels).values, dtype=float)
    return values[labels[0]], values[labels[1]], cov, model


def plot_source_position(
    ax: Axes,
    result: FitResult | tuple[Any, Any],
    *,
    model: str | None = None,
    frame: Literal["galactic", "icrs"] | None = None,
    n_sigma: Sequence[float] = (1.0, 2.0),
    color: str = "white",
    label: str | None = None,
) -> list:
    """Mark a fitted position and draw its error ellipses on WCS axes.

    Parameters
    ----------
    ax : WCSAxes
        Axes of a sky image (e.g. from `plot_map`).
    result : `~xgamma.fit.FitResult` or (position, covariance)
        A fit result (the position is ``<model>.lon_0`` / ``<model>.lat_0``), or a pair of a
        position (`~astropy.coordinates.SkyCoord`, or (lon, lat) in deg) and its 2 x 2 (lon, lat)
        covariance (deg^2).
    model : str, optional
        Model name in ``result``. Default: the first model with a free position.
    frame : {"galactic", "icrs"}, optional
        Frame of the position values. Default: the frame of the axes.
    n_sigma : sequence of float
        Ellipses to draw (see `error_ellipse`). Default is (1, 2).
    color : str
        Colour of the marker and ellipses. Default is "white".
    label : str, optional
        Legend label. Default: the model name and position.

    Returns
    -------
    artists : list
        The marker line and the ellipse patches.

    Raises
    ------
    FitError
        When the result has no fitted position or the covariance is not usable.
    """
    from matplotlib.patches import Ellipse

    if not hasattr(ax, "get_transform") or not hasattr(ax, "wcs"):
        raise GeometryError("plot_source_position: ax must be WCSAxes (e.g. returned by plot_map)")
    frame = frame or _frame(ax.wcs)
    if hasattr(result, "covariance") and hasattr(result, "parameters"):
        lon, lat, cov, model = _position_from_result(result, model)
    else:
        position, cov = result
        if hasattr(position, "transform_to"):
            position = position.transform_to(frame)
            lon, lat = position.spherical.lon.deg, position.spherical.lat.deg
        else:
            lon, lat = (float(v) for v in position)
        cov = np.asarray(cov, dtype=float)
    transform = ax.get_transform("world" if frame == _frame(ax.wcs) else frame)
    if label is None:
        name = model or "source"
        label = f"{name}: ({lon:.3f}, {lat:.3f}) deg"
    artists = ax.plot(lon, lat, marker="+", markersize=7, color=color, transform=transform,
                      linestyle="none", label=label)
    styles = ["solid", "dashed", "dotted", "dashdot"]
    for k, n in enumerate(n_sigma):
        width, height, angle = error_ellipse(cov, n_sigma=n)
        patch = Ellipse((lon, lat), width, height, angle=angle, transform=transform, facecolor="none",
                        edgecolor=color, linestyle=styles[k % len(styles)], linewidth=1.5,
                        label=f"{n:g} sigma")
        ax.add_patch(patch)
        artists.append(patch)
    return artists


# ---------------------------------------------------------------------------- all products
def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)  # atomic: a PNG that exists is complete
    return path


def save_analysis_plots(products: Mapping[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Write the standard analysis plots as PNG files into ``out_dir``.

    Parameters
    ----------
    products : mapping
        Any of these keys (others are ignored):

        * ``counts``, ``background``, ``excess``, ``significance`` : images (`xarray.DataArray`);
          ``background_model`` is used when ``background`` is absent;
        * ``exclusion`` : exclusion mask (drawn on the significance map and used for the
          distribution's "off" pixels);
        * ``residuals`` : Dataset with ``residual`` and ``residual_significance``
          (`xgamma.fit.MapDataset.residual_maps`), or the two maps under ``residual`` and
          ``residual_significance``;
        * ``distribution`` : a `~xgamma.estimators.SignificanceDistribution` (default: computed
          from ``significance`` and ``exclusion``);
        * ``fit_result`` : a `~xgamma.fit.FitResult` with a fitted position, drawn on a cutout of
          ``counts`` (or ``excess`` / ``significance``) around it; ``fit_model`` picks the model.

    out_dir : path-like
        Folder for the PNG files (created if needed).

    Returns
    -------
    paths : list of Path
        Files written, among `PLOT_FILES` (only those whose inputs exist).
    """
    import matplotlib.pyplot as plt

    from xgamma.estimators.distribution import plot_significance_distribution, significance_distribution

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    exclusion = products.get("exclusion")

    def path(key: str) -> Path:
        return out / PLOT_FILES[key]

    if products.get("counts") is not None:
        ax = plot_counts(products["counts"], smooth="0.04 deg")
        written.append(_save(ax.figure, path("counts")))
    background = products.get("background")
    if background is None:
        background = products.get("background_model")
    if background is not None:
        written.append(_save(plot_background(background).figure, path("background")))
    if products.get("excess") is not None:
        written.append(_save(plot_excess(products["excess"]).figure, path("excess")))
    if products.get("significance") is not None:
        ax = plot_significance(products["significance"], exclusion=exclusion)
        written.append(_save(ax.figure, path("significance")))
    residuals = products.get("residuals")
    if residuals is None and products.get("residual") is not None:
        residuals = xr.Dataset({"residual": products["residual"],
                                "residual_significance": products["residual_significance"]})
    if residuals is not None:
        written.append(_save(plot_residuals(residuals), path("residuals")))
    distribution = products.get("distribution")
    if distribution is None and products.get("significance") is not None:
        distribution = significance_distribution(products["significance"], exclusion=exclusion)
    if distribution is not None:
        fig, ax = plt.subplots(figsize=(7, 5))
        plot_significance_distribution(distribution, ax=ax)
        # Log axis: from half a pixel to a little above the highest bin.
        ax.set_ylim(0.5, 3.0 * max(float(np.max(distribution.counts_all, initial=1)), 1.0))
        ax.set_title("Significance distribution")
        written.append(_save(fig, path("distribution")))
    result = products.get("fit_result")
    image = next((products[k] for k in ("counts", "excess", "significance") if products.get(k) is not None), None)
    if result is not None and image is not None:
        written.append(_save(_position_figure(image, result, products.get("fit_model")), path("source_position")))
    return written


def _position_figure(image: xr.DataArray, result: FitResult, model: str | None) -> Figure:
    """Cutout of ``image`` around the fitted position, with the error ellipses."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    image = _image(image, None)
    geometry = image.sky.geometry
    lon, lat, cov, model = _position_from_result(result, model)
    sigma = float(np.sqrt(np.max(np.diag(cov)))) if np.all(np.isfinite(cov)) else 0.0
    # Zoom so that the 2-sigma ellipse is visible but the cutout keeps at least 9 pixels.
    width = max(9 * geometry.pixel_scale, 30 * sigma)
    center = SkyCoord(lon, lat, unit="deg", frame=geometry.frame)
    cut = image.sky.cutout(center, width * u.deg)
    smooth = "0.03 deg" if image.name == "counts" else None
    ax = plot_map(cut, smooth=smooth, cmap="inferno", title=f"Fitted position of {model!r}",
                  label=_colorbar_label(cut, None) + (" (smoothed)" if smooth else ""))
    plot_source_position(ax, result, model=model, color="cyan")
    ax.legend(loc="upper right", fontsize="small", framealpha=0.6)
    return ax.figure
