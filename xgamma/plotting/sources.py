"""Estimator maps (TS, flux, upper limit) with colour bars in physical units, and sources marked on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from xgamma.exceptions import EstimatorError
from xgamma.plotting.image import plot_map

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_estimator_map", "plot_sources", "source_positions"]

_STYLE = {
    "sqrt_ts": dict(cmap="RdBu_r", symmetric=True, label="sqrt(TS) (sigma)"),
    "significance": dict(cmap="RdBu_r", symmetric=True, label="significance (sigma)"),
    "ts": dict(cmap="inferno", label="TS"),
}


def plot_estimator_map(maps: xr.Dataset, quantity: str = "sqrt_ts", *, sources: Any = None, ax: Axes | None = None,
                       title: str | None = None, energy_index: int | None = None, labels: bool = True) -> Axes:
    """One map of a TS or flux map result, with its colour bar in physical units and sources marked.

    Parameters
    ----------
    maps : `xarray.Dataset`
        A `xgamma.estimators.ts_map` or `xgamma.estimators.flux_maps` result.
    quantity : str
        Variable to draw: ``"sqrt_ts"`` and ``"significance"`` on a diverging scale centred on
        0, ``"ts"``, or a flux (``"flux"``, ``"flux_err"``, ``"flux_ul"``, ``"flux_sensitivity"``:
        the colour bar reads e.g. "flux_ul (cm-2 s-1)"). Default is "sqrt_ts".
    sources : table or list of sky models, optional
        Sources to mark (see `plot_sources`).
    ax : WCSAxes, optional
        Default: a new figure.
    title : str, optional
        Default: the quantity (and the estimator's correlation radius or kernel).
    energy_index : int, optional
        Energy bin of a multi-bin result.
    labels : bool
        Write the source names next to their markers. Default is True.

    Returns
    -------
    ax : WCSAxes
    """
    if quantity not in maps:
        raise EstimatorError(f"plot: the maps have no {quantity!r}; have {sorted(maps.data_vars)}")
    image = maps[quantity]
    style = dict(_STYLE.get(quantity, {"cmap": "viridis"}))
    if quantity.startswith("flux"):
        style["label"] = f"{quantity} ({image.attrs.get('units', 'cm-2 s-1')})"
    if title is None:
        detail = maps.attrs.get("correlation_radius") or maps.attrs.get("morphology")
        title = quantity + (f" ({detail})" if detail else "")
    ax = plot_map(image, ax=ax, energy_index=energy_index, title=title, nan_color="0.85", **style)
    if sources is not None:
        plot_sources(ax, sources, labels=labels)
    return ax


def source_positions(sources: Any) -> tuple[Any, list[str]]:
    """Positions (`~astropy.coordinates.SkyCoord`) and names of a source table or list of sky models.

    A table needs ``ra``/``dec`` (ICRS, deg) or ``lon``/``lat`` with ``meta["frame"]``; names come
    from a ``name`` column (else S1, S2, ...). Sky models give their position and name.
    """
    from astropy.coordinates import SkyCoord

    if isinstance(sources, (list, tuple)):
        models = [m for m in sources if hasattr(m, "spatial")]
        coords = [SkyCoord(*m.spatial.position_in(m.spatial.frame), unit="deg", frame=m.spatial.frame).icrs
                  for m in models]
        return (SkyCoord(coords) if coords else SkyCoord([], [], unit="deg")), [m.name for m in models]
    names = list(sources.colnames)
    if "ra" in names and "dec" in names:
        coord = SkyCoord(np.asarray(sources["ra"], float), np.asarray(sources["dec"], float), unit="deg")
    elif "lon" in names and "lat" in names:
        frame = sources.meta.get("frame", "icrs")
        coord = SkyCoord(np.asarray(sources["lon"], float), np.asarray(sources["lat"], float), unit="deg", frame=frame)
    else:
        raise EstimatorError(f"plot_sources: a table needs ra/dec or lon/lat columns, has {names}")
    labels = [str(n) for n in sources["name"]] if "name" in names else [f"S{i + 1}" for i in range(len(sources))]
    return coord, labels


def plot_sources(ax: Axes, sources: Any, *, labels: bool = True, marker: str = "x", color: str = "black",
                 size: float = 60) -> Axes:
    """Mark sources on WCS axes (their frame's transform), optionally with their names.

    Parameters
    ----------
    ax : WCSAxes
        Axes of a sky map.
    sources : `astropy.table.Table` or list of `~xgamma.models.SkyModel`
        A `find_peaks` / `detect_sources` table, or sky models (see `source_positions`).
    labels : bool
        Write each name next to its marker. Default is True.
    marker, color, size
        Matplotlib marker style.

    Returns
    -------
    ax : WCSAxes
    """
    coord, names = source_positions(sources)
    if len(names) == 0:
        return ax
    icrs = coord.icrs
    transform = ax.get_transform("icrs")
    ax.scatter(icrs.ra.deg, icrs.dec.deg, transform=transform, marker=marker, color=color, s=size, zorder=5)
    if labels:
        for ra, dec, name in zip(np.atleast_1d(icrs.ra.deg), np.atleast_1d(icrs.dec.deg), names):
            ax.text(ra, dec, f"  {name}", transform=transform, color=color, fontsize=9, zorder=6,
                    ha="left", va="bottom", clip_on=True)
    return ax
