"""WCS axes for sky images: axes creation, frame-dependent axis labels and coordinate grids."""

from __future__ import annotations

from typing import TYPE_CHECKING

import xarray as xr

from xgamma.exceptions import GeometryError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["AXIS_LABELS", "wcs_axes", "label_axes"]

#: Axis labels (longitude, latitude) of each sky frame.
AXIS_LABELS = {
    "galactic": ("Galactic longitude", "Galactic latitude"),
    "icrs": ("Right ascension (ICRS)", "Declination (ICRS)"),
}


def wcs_axes(da: xr.DataArray, ax: Axes | None) -> Axes:
    import matplotlib.pyplot as plt

    wcs = da.sky.wcs
    if ax is None:
        fig = plt.figure(figsize=(8, 6))
        ax = fig.add_subplot(projection=wcs)
    elif not hasattr(ax, "coords"):
        raise GeometryError("plot: ax must be WCSAxes; create it with fig.add_subplot(projection=da.sky.wcs)")
    return ax


def label_axes(ax: Axes, frame: str, add_grid: bool, overlay: str | None) -> None:
    lon, lat = ax.coords[0], ax.coords[1]
    xlabel, ylabel = AXIS_LABELS[frame]
    lon.set_axislabel(xlabel)
    lat.set_axislabel(ylabel)
    lon.set_major_formatter("d.d" if frame == "galactic" else "hh:mm")
    lat.set_major_formatter("d.d" if frame == "galactic" else "dd:mm")
    if add_grid:
        ax.coords.grid(color="white", alpha=0.35, linestyle="dotted")
    if overlay is not None and overlay != frame:
        if overlay not in AXIS_LABELS:
            raise GeometryError(f"plot: overlay frame {overlay!r} is not 'galactic' or 'icrs'")
        grid = ax.get_coords_overlay(overlay)
        grid.grid(color="orange", alpha=0.4, linestyle="dashed")
        grid[0].set_axislabel(AXIS_LABELS[overlay][0])
        grid[1].set_axislabel(AXIS_LABELS[overlay][1])
