"""Fitted source positions: error ellipses of a (lon, lat) covariance drawn on sky images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from xgamma.exceptions import FitError, GeometryError
from xgamma.geometry.sky import wcs_frame
from xgamma.plotting.image import colorbar_label, image_plane, plot_map

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from xgamma.fit.result import FitResult

__all__ = ["error_ellipse", "plot_source_position", "position_from_result", "position_figure"]


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


def position_from_result(result: FitResult, model: str | None) -> tuple[float, float, np.ndarray, str]:
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
    frame = frame or wcs_frame(ax.wcs)
    if hasattr(result, "covariance") and hasattr(result, "parameters"):
        lon, lat, cov, model = position_from_result(result, model)
    else:
        position, cov = result
        if hasattr(position, "transform_to"):
            position = position.transform_to(frame)
            lon, lat = position.spherical.lon.deg, position.spherical.lat.deg
        else:
            lon, lat = (float(v) for v in position)
        cov = np.asarray(cov, dtype=float)
    transform = ax.get_transform("world" if frame == wcs_frame(ax.wcs) else frame)
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


def position_figure(image: xr.DataArray, result: FitResult, model: str | None) -> Figure:
    """Cutout of ``image`` around the fitted position, with the error ellipses."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    image = image_plane(image, None)
    geometry = image.sky.geometry
    lon, lat, cov, model = position_from_result(result, model)
    sigma = float(np.sqrt(np.max(np.diag(cov)))) if np.all(np.isfinite(cov)) else 0.0
    # Zoom so that the 2-sigma ellipse is visible but the cutout keeps at least 9 pixels.
    width = max(9 * geometry.pixel_scale, 30 * sigma)
    center = SkyCoord(lon, lat, unit="deg", frame=geometry.frame)
    cut = image.sky.cutout(center, width * u.deg)
    smooth = "0.03 deg" if image.name == "counts" else None
    ax = plot_map(cut, smooth=smooth, cmap="inferno", title=f"Fitted position of {model!r}",
                  label=colorbar_label(cut, None) + (" (smoothed)" if smooth else ""))
    plot_source_position(ax, result, model=model, color="cyan")
    step = _nice_step(width / 4)  # four or so labelled ticks per axis on a small cutout
    decimals = max(0, -int(np.floor(np.log10(step))))
    for coordinate in (ax.coords[0], ax.coords[1]):
        coordinate.set_ticks(spacing=step * u.deg)
        coordinate.set_major_formatter("d." + "d" * decimals if decimals else "d")
    # Below the image, not over the source it marks.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize="small", frameon=False)
    return ax.figure


def _nice_step(value: float) -> float:
    """The largest of 1, 2, 5 x 10^n not above ``value`` (deg)."""
    power = 10.0 ** np.floor(np.log10(value))
    return float(max(m * power for m in (1.0, 2.0, 5.0) if m * power <= value))
