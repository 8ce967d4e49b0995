"""Where a source may go in a fit: position limits from the data, and whether a source left it.

A source position is only constrained where there are data: far from any counts the likelihood
is flat in position, and a minimizer that wanders there reports a "minimum" that means nothing.
So, unless a parameter has its own bounds, source positions are bounded to the box (in the
model's frame) that holds the data footprint: the pixels inside the fit mask (``mask_safe &
mask_fit``) with exposure in at least one energy bin.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from xgamma.fit.npred import DatasetArrays
from xgamma.geometry.sky import wrap_longitude
from xgamma.models.sky_model import SkyModel

__all__ = ["Limit", "data_footprint", "position_limits", "default_limits", "outside_data", "longitude_frames",
           "has_position"]


class Limit(NamedTuple):
    """Bounds of one parameter in a fit (canonical unit) and where they come from."""

    lo: float
    hi: float
    origin: str  # "parameter" (its own min/max) or "data" (the data footprint)


def data_footprint(arrays: DatasetArrays) -> np.ndarray:
    """Boolean image (n_lat, n_lon): pixels inside the mask with exposure in some energy bin."""
    return np.any(arrays.mask & (arrays.reco_exposure > 0), axis=0)


def has_position(model) -> bool:
    """Whether ``model`` is a sky model whose spatial part has a centre (``lon_0``, ``lat_0``)."""
    return isinstance(model, SkyModel) and {"lon_0", "lat_0"} <= {p.name for p in model.spatial.parameters}


def longitude_frames(models: list) -> dict[str, str]:
    """``{"<model>.lon_0": frame}`` for every sky model with a centre (whose longitude wraps)."""
    return {f"{m.name}.lon_0": m.spatial.frame for m in models if has_position(m)}


def position_limits(arrays: DatasetArrays, frame: str) -> tuple[tuple[float, float] | None, tuple[float, float]]:
    """Longitude and latitude range (deg, in ``frame``) of the box around the data footprint.

    The range is that of the outline of the footprint's bounding pixel rectangle (extremes of
    longitude and latitude over a region lie on its outline unless it holds a pole of ``frame``).

    Returns
    -------
    lon : (float, float) or None
        Longitude range, continuous across 0/360 (``lo`` may be negative); None if the box
        holds a pole (every longitude is possible).
    lat : (float, float)
        Latitude range.
    """
    from astropy.coordinates import SkyCoord

    grid = arrays.grid
    footprint = data_footprint(arrays)
    rows, cols = np.flatnonzero(footprint.any(axis=1)), np.flatnonzero(footprint.any(axis=0))
    if rows.size == 0:
        from xgamma.exceptions import FitError

        raise FitError("the dataset has no pixel with exposure inside its mask: nothing to fit")
    x0, x1, y0, y1 = cols[0] - 0.5, cols[-1] + 0.5, rows[0] - 0.5, rows[-1] + 0.5
    nx, ny = int(2 * (x1 - x0)) + 1, int(2 * (y1 - y0)) + 1  # outline sampled every half pixel
    xs, ys = np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)
    outline_x = np.concatenate([xs, np.full(ny, x1), xs[::-1], np.full(ny, x0)])
    outline_y = np.concatenate([np.full(nx, y0), ys, np.full(nx, y1), ys[::-1]])
    lon, lat = grid.geometry.pixel_to_world(outline_x, outline_y)
    centre_lon, centre_lat = grid.geometry.pixel_to_world(np.array([(x0 + x1) / 2]), np.array([(y0 + y1) / 2]))
    if frame != grid.frame:
        c = SkyCoord(np.append(lon, centre_lon), np.append(lat, centre_lat), unit="deg",
                     frame=grid.frame).transform_to(frame)
        lon, lat = c.spherical.lon.deg[:-1], c.spherical.lat.deg[:-1]
        centre_lon = c.spherical.lon.deg[-1:]
    lat_range = (float(np.min(lat)), float(np.max(lat)))
    for pole in (-90.0, 90.0):
        px, py = _pole_pixel(grid, frame, pole)
        if np.isfinite(px) and x0 <= px <= x1 and y0 <= py <= y1:
            return None, (min(lat_range[0], pole), max(lat_range[1], pole))
    offset = (lon - centre_lon[0] + 180.0) % 360.0 - 180.0
    return (float(centre_lon[0] + offset.min()), float(centre_lon[0] + offset.max())), lat_range


def _pole_pixel(grid, frame: str, lat: float) -> tuple[float, float]:
    from astropy.coordinates import SkyCoord

    c = SkyCoord(0.0, lat, unit="deg", frame=frame).transform_to(grid.frame)
    with np.errstate(all="ignore"):
        x, y = grid.geometry.world_to_pixel(np.array([c.spherical.lon.deg]), np.array([c.spherical.lat.deg]))
    return float(x[0]), float(y[0])


def default_limits(models: list, arrays: DatasetArrays) -> dict[str, Limit]:
    """Limits of the free position parameters of ``models`` on the data of ``arrays``.

    A parameter's own ``min``/``max`` win; otherwise its range is the data box (in the model's
    frame). Free longitudes are moved by multiples of 360 deg into the box's branch (so a start
    at 359.9 deg on a map around 0 becomes -0.1 deg). ``lat_0``'s own default bounds (+-90 deg)
    are intersected with the box.
    """
    out: dict[str, Limit] = {}
    cache: dict[str, tuple] = {}
    for model in models:
        if not has_position(model):
            continue
        frame = model.spatial.frame
        if frame not in cache:
            cache[frame] = position_limits(arrays, frame)
        lon_range, lat_range = cache[frame]
        lon, lat = model.spatial.lon_0, model.spatial.lat_0
        if not lon.frozen and lon_range is not None:
            if np.isfinite(lon.min) or np.isfinite(lon.max):
                out[f"{model.name}.lon_0"] = Limit(lon.min, lon.max, "parameter")
            else:
                centre = 0.5 * (lon_range[0] + lon_range[1])
                lon.value = centre + (lon.value - centre + 180.0) % 360.0 - 180.0
                out[f"{model.name}.lon_0"] = Limit(*lon_range, "data")
        if not lat.frozen:
            lo, hi = max(lat_range[0], lat.min), min(lat_range[1], lat.max)  # NaN bounds ignored by max/min
            own = (lat.min > lat_range[0]) or (lat.max < lat_range[1])
            out[f"{model.name}.lat_0"] = Limit(lo, hi, "parameter" if own else "data")
    return out


def outside_data(arrays: DatasetArrays, model) -> str | None:
    """Why the centre of ``model`` is outside the data (None if it is inside)."""
    if not has_position(model):
        return None
    lon, lat = model.spatial.position_in(arrays.grid.frame)
    with np.errstate(all="ignore"):
        x, y = arrays.grid.to_pixel(lon, lat)
    ix, iy = int(np.floor(x + 0.5)) if np.isfinite(x) else -1, int(np.floor(y + 0.5)) if np.isfinite(y) else -1
    ny, nx = arrays.grid.shape
    where = (f"({wrap_longitude(model.spatial.lon_0.value, model.spatial.frame):.4f}, "
             f"{model.spatial.lat_0.value:.4f}) deg {model.spatial.frame}")
    if not (0 <= ix < nx and 0 <= iy < ny):
        return f"source {model.name!r} at {where} is outside the map"
    if not data_footprint(arrays)[iy, ix]:
        return f"source {model.name!r} at {where} is outside the data (no exposure inside the fit mask there)"
    return None
