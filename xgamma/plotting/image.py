"""`plot_map`: one sky image on WCS axes, and the image preparation it needs (plane, smoothing, stretch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from xgamma.exceptions import GeometryError
from xgamma.plotting.axes import label_axes, wcs_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_map", "Stretch", "image_plane", "smooth_image", "image_norm", "colorbar_label"]

Stretch = Literal["linear", "sqrt", "log", "asinh"]


def image_plane(da: xr.DataArray, energy_index: int | None) -> xr.DataArray:
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


def smooth_image(values: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing that ignores NaN pixels (normalised convolution)."""
    from scipy.ndimage import gaussian_filter

    finite = np.isfinite(values)
    num = gaussian_filter(np.where(finite, values, 0.0), sigma_px, mode="constant")
    den = gaussian_filter(finite.astype(float), sigma_px, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    return np.where(finite, out, np.nan)


def image_norm(values: np.ndarray, vmin: float | None, vmax: float | None, stretch: Stretch):
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


def colorbar_label(da: xr.DataArray, label: str | None) -> str:
    if label is not None:
        return label
    name = str(da.name) if da.name is not None else "value"
    units = str(da.attrs.get("units", "") or "")
    return f"{name} ({units})" if units else name


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

    image = image_plane(da, energy_index)
    geometry = image.sky.geometry
    ax = wcs_axes(image, ax)
    values = np.asarray(image.values, dtype=float)
    if smooth is not None:
        sigma_px = parse_angle(smooth, name="smooth").to_value("deg") / geometry.pixel_scale
        if sigma_px > 0:
            values = smooth_image(values, sigma_px)
    if symmetric:
        finite = np.abs(values[np.isfinite(values)])
        limit = vmax if vmax is not None else (float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
        vmin, vmax = -limit, limit
    norm = image_norm(values, vmin, vmax, stretch)
    import matplotlib

    colormap = matplotlib.colormaps[cmap]
    if nan_color is not None:
        colormap = colormap.with_extremes(bad=nan_color)
    im = ax.imshow(values, origin="lower", cmap=colormap, norm=norm, interpolation="nearest")
    label_axes(ax, geometry.frame, add_grid, overlay)
    ax.set_title(title if title is not None else str(image.name or ""))
    if colorbar:
        cbar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04 if overlay is None else 0.12)
        cbar.set_label(colorbar_label(image, label))
    return ax
