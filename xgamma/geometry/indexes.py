"""xarray indexes of sky-map coordinates: label selection that is exact, or refused.

A map's ``lon`` and ``lat`` dimension coordinates are world coordinates of pixel centres along
the grid axes. That is exact only for *separable* grids, where longitude depends on the column
alone and latitude on the row alone (cylindrical projections such as CAR with the reference
point on the frame's equator: every Galactic-plane map). On other grids (TAN, ARC, a CAR map
centred off the equator) the labels are the world coordinates along the reference row and
column only, for display; a pixel's position comes from the WCS (``da.sky.sel``,
``da.sky.lonlat()``).

* :class:`SkyAxisIndex` (separable grids): ``.sel`` takes angles (numbers in deg or Quantities),
  moves longitudes by 360 deg into the map's branch (359.9 finds -0.1 on a map around l = 0) and
  returns the pixel containing the position (``method=None`` or ``"nearest"``); a position
  outside the map is an error, never the edge pixel.
* :class:`ProjectedSkyAxisIndex` (other grids): ``.sel`` on ``lon``/``lat`` raises a
  :class:`~xgamma.exceptions.GeometryError` pointing at ``da.sky.sel``.
* :class:`EnergyIndex`: ``.sel`` converts energy Quantities to TeV (the coordinate's unit) or
  raises a :class:`~xgamma.exceptions.UnitError`.

All three are :class:`xarray.indexes.PandasIndex` subclasses: slicing, alignment, ``concat``,
``to_pandas_index`` and arithmetic behave as for plain dimension coordinates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from xarray.indexes import PandasIndex

from xgamma.exceptions import GeometryError, UnitError

__all__ = ["SkyAxisIndex", "ProjectedSkyAxisIndex", "EnergyIndex"]


def _in_unit(value: Any, unit: str, name: str) -> Any:
    """Numbers unchanged; Quantities (also inside slices and lists) converted to ``unit``."""
    import astropy.units as u

    if isinstance(value, slice):
        return slice(_in_unit(value.start, unit, name), _in_unit(value.stop, unit, name), value.step)
    if isinstance(value, u.Quantity) or (isinstance(value, (list, tuple)) and value
                                         and any(isinstance(v, u.Quantity) for v in value)):
        try:
            return u.Quantity(value).to_value(unit)
        except u.UnitConversionError:
            raise UnitError(f".sel({name}=...): {value!r} is not convertible to {unit}") from None
    return value


class EnergyIndex(PandasIndex):
    """Energy bin centres in TeV; ``.sel`` converts Quantities to TeV (see the module docstring)."""

    def sel(self, labels: dict[Any, Any], method: Any = None, tolerance: Any = None):
        labels = {k: _in_unit(v, "TeV", str(k)) for k, v in labels.items()}
        return super().sel(labels, method=method, tolerance=tolerance)


class SkyAxisIndex(PandasIndex):
    """Exact world-coordinate labels of a separable sky grid (see the module docstring)."""

    def sel(self, labels: dict[Any, Any], method: Any = None, tolerance: Any = None):
        (name, value), = labels.items()
        value = _in_unit(value, "deg", str(name))
        if isinstance(value, slice) or method not in (None, "nearest"):
            return super().sel({name: value}, method=method, tolerance=tolerance)
        centres = np.asarray(self.index, dtype=float)
        target = np.asarray(getattr(value, "values", value), dtype=float)
        if self.dim == "lon":  # the branch of the labels (they are continuous across 0 / 360)
            lo = centres.min()
            target = np.where((target >= lo - 180) & (target < lo + 180), target, lo + (target - lo + 180) % 360 - 180)
        label = value.copy(data=target) if hasattr(value, "dims") else (target if target.ndim else float(target))
        result = super().sel({name: label}, method="nearest")
        position = np.asarray(getattr(result.dim_indexers[self.dim], "values", result.dim_indexers[self.dim]))
        # Half the local pixel spacing: a position farther than that from its nearest label is
        # outside the map (pandas would return the edge pixel).
        spacing = np.abs(np.diff(centres)) if centres.size > 1 else np.array([np.inf])
        half = 0.5 * spacing[np.clip(np.minimum(position, centres.size - 2), 0, None)] if centres.size > 1 else np.inf
        off = np.abs(centres[position] - target) > half * (1 + 1e-9)
        if np.any(off):
            bad = np.atleast_1d(target)[np.atleast_1d(off)][0]
            raise GeometryError(f".sel({name}={bad:g}): outside the map ({name} from {centres.min():g} to "
                                f"{centres.max():g} deg at pixel centres)")
        return result


class ProjectedSkyAxisIndex(PandasIndex):
    """Labels of a non-separable sky grid: display only, ``.sel`` refuses (see the module docstring)."""

    def sel(self, labels: dict[Any, Any], method: Any = None, tolerance: Any = None):
        name = next(iter(labels))
        raise GeometryError(
            f".sel({name}=...): on this map (a projection where longitude and latitude both vary along rows "
            "and columns) the 1-D lon/lat labels are exact only along the reference row and column, so they "
            "cannot pick pixels. Use da.sky.sel(lon=..., lat=...) or da.sky.sel(SkyCoord) (exact through "
            "the WCS), da.sky.cutout(position, width), or isel(lat=..., lon=...)"
        )


def sky_index(name: str, values: np.ndarray, *, separable: bool) -> PandasIndex:
    """The index of the ``lon`` or ``lat`` coordinate of a map."""
    cls = SkyAxisIndex if separable else ProjectedSkyAxisIndex
    return cls(pd.Index(np.asarray(values, dtype=float)), name)
