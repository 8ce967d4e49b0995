"""Reading GADF IRF tables: axes from ``*_LO``/``*_HI`` columns, data cells, orientation (private)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import astropy.units as u
import numpy as np

from xgamma.exceptions import IRFError
from xgamma.fits_tables import check_column_values, column_row_array, read_table_hdu
from xgamma.irf._grid import GridInterpolator, IRFAxis

__all__ = ["IRFTable", "CellIRF", "AXIS_COLUMNS", "threshold", "NEGATIVE_TOLERANCE"]

# Axis name -> (accepted column prefixes, interpolation scale). CTA 1DC uses ETRUE_* in edisp.
AXIS_COLUMNS: dict[str, tuple[tuple[str, ...], str]] = {
    "energy_true": (("ENERG", "ETRUE"), "log"),
    "energy": (("ENERG", "EREC"), "log"),
    "offset": (("THETA",), "lin"),
    "rad": (("RAD",), "lin"),
    "migra": (("MIGRA",), "lin"),
    "fov_lon": (("DETX",), "lin"),
    "fov_lat": (("DETY",), "lin"),
}
# Axis name -> (physical unit of its edges, lowest allowed edge or None).
_AXIS_UNITS: dict[str, tuple[str, float | None]] = {
    "energy_true": ("TeV", 0.0),
    "energy": ("TeV", 0.0),
    "offset": ("deg", 0.0),
    "rad": ("deg", 0.0),
    "migra": ("", 0.0),
    "fov_lon": ("deg", None),
    "fov_lat": ("deg", None),
}

#: Negative table entries down to this fraction of the table's maximum are accepted: real IRFs
#: carry them as smoothing artefacts (H.E.S.S. DL3 DR1: effective areas down to -1e-4, PSF tables
#: and migration matrices down to -1.2 % of the maximum). They are clipped at zero after
#: interpolation, as Gammapy does. Larger negative values mean a damaged table.
NEGATIVE_TOLERANCE = 0.05


class IRFTable:
    """One GADF IRF table HDU in memory, with helpers naming file/HDU/column on errors."""

    def __init__(self, path: str | Path, hdu: str | int) -> None:
        self.path = Path(path)
        self.hdu = hdu
        self.header, self.data = read_table_hdu(self.path, hdu, error=IRFError)
        self.where = f"HDU {hdu!r} of {self.path}"

    def meta(self) -> dict:
        """Header cards as a plain dict (picklable)."""
        return {k: v for k, v in self.header.items() if k not in ("COMMENT", "HISTORY", "")}

    def axis(self, name: str) -> IRFAxis:
        prefixes, interp = AXIS_COLUMNS[name]
        names = self.data.columns.names if self.data is not None else []
        upper = {n.upper() for n in names}
        for prefix in prefixes:
            if f"{prefix}_LO" in upper and f"{prefix}_HI" in upper:
                lo = column_row_array(self.data, f"{prefix}_LO", where=self.where, error=IRFError)
                hi = column_row_array(self.data, f"{prefix}_HI", where=self.where, error=IRFError)
                self._check_axis(name, prefix, lo, hi)
                # Canonical units (TeV, deg): plain numbers given to `evaluate` are in these.
                unit = _AXIS_UNITS[name][0]
                return IRFAxis.from_lo_hi(name, lo.to(unit), hi.to(unit), interp)
        wanted = " or ".join(f"{p}_LO/{p}_HI" for p in prefixes)
        raise IRFError(f"columns {wanted} (axis {name!r}) missing in {self.where} (columns: {names})")

    def grid(self, axis_names: tuple[str, ...], columns: str | tuple[str, ...], unit: str
             ) -> tuple[tuple[IRFAxis, ...], u.Quantity]:
        """The axes named ``axis_names`` and the data cell on them (checked by `values`), in that order."""
        axes = tuple(self.axis(name) for name in axis_names)
        return axes, self.values(columns, unit, tuple(axis.nbin for axis in axes))

    def _check_axis(self, name: str, prefix: str, lo: u.Quantity, hi: u.Quantity) -> None:
        """Units, finite values, bounds and increasing, contiguous bins of one axis (LO/HI columns)."""
        unit, lowest = _AXIS_UNITS[name]
        for column, values in ((f"{prefix}_LO", lo), (f"{prefix}_HI", hi)):
            if not values.unit.is_equivalent(unit):
                got = values.unit.to_string() or "no unit"
                raise IRFError(f"column {column!r} (axis {name!r}) in {self.where} has unit {got!r}, "
                               f"expected {unit or 'no unit'!r} or an equivalent")
            check_column_values(values.to_value(unit), column=column, where=self.where, error=IRFError,
                                minimum=lowest, unit=unit)
        lo, hi = np.atleast_1d(lo.to_value(unit)), np.atleast_1d(hi.to_value(unit))
        if lo.shape != hi.shape or lo.size == 0:
            raise IRFError(f"columns {prefix}_LO/{prefix}_HI in {self.where} have {lo.size} and {hi.size} values")
        if lo.size > 1 and np.allclose(lo, hi):  # a node axis (LO == HI): the nodes must increase
            bad = np.flatnonzero(np.diff(lo) <= 0)
            if bad.size:
                raise IRFError(f"column {prefix}_LO in {self.where} does not increase at index {bad[0] + 1} "
                               f"({lo[bad[0]]:g} then {lo[bad[0] + 1]:g})")
            return
        bad = np.flatnonzero(hi <= lo)
        if bad.size:
            i = bad[0]
            raise IRFError(f"columns {prefix}_LO/{prefix}_HI in {self.where}: bin {i} has {prefix}_HI = {hi[i]:g} <= "
                           f"{prefix}_LO = {lo[i]:g} ({bad.size} such bins); bins must be increasing and contiguous")
        # Float32 rounding only: relative to the edge, or to the axis span for edges near 0 (DETX).
        tolerance = 1e-5 * np.maximum(np.abs(lo[1:]), 1e-3 * float(np.max(np.abs(hi))))
        gap = np.flatnonzero(np.abs(hi[:-1] - lo[1:]) > tolerance)
        if gap.size:
            i = gap[0]
            raise IRFError(f"columns {prefix}_LO/{prefix}_HI in {self.where}: bin {i} ends at {hi[i]:g} but bin {i + 1} "
                           f"starts at {lo[i + 1]:g}; bins must be increasing and contiguous")

    def values(self, names: str | tuple[str, ...], unit: str, shape: tuple[int, ...] | None = None, *,
               nonzero: bool = True) -> u.Quantity:
        """A data cell checked for its unit, shape, finite values and sign.

        Parameters
        ----------
        names : str or tuple of str
            Accepted column names (the first present is read).
        unit : str
            Unit the values must be convertible to.
        shape : tuple of int, optional
            Axes shape; the cell is transposed from FITS order when needed (see `oriented`).
        nonzero : bool
            Refuse a table whose values are all zero (or negative). Default is True.

        Raises
        ------
        IRFError
            Naming the column, file and HDU: a wrong unit or shape, non-finite values, negative
            values beyond `NEGATIVE_TOLERANCE` of the maximum, or (``nonzero``) no positive value.
        """
        names = (names,) if isinstance(names, str) else names
        values = self.array(names)
        column = next(n for n in self.data.columns.names if n.upper() in {m.upper() for m in names})
        values = self.unit(values, unit, column)
        if shape is not None:
            values = self.oriented(values, shape, column)
        check_column_values(values.value, column=column, where=self.where, error=IRFError)
        peak = float(np.max(values.value))
        if nonzero and not peak > 0:
            raise IRFError(f"column {column!r} in {self.where} has no positive value (maximum {peak:g}): "
                           "an empty or damaged table")
        lowest = float(np.min(values.value))
        if lowest < -NEGATIVE_TOLERANCE * max(peak, 0.0):
            raise IRFError(f"column {column!r} in {self.where} has negative values down to {lowest:g}, beyond "
                           f"{NEGATIVE_TOLERANCE:.0%} of its maximum {peak:g}: a damaged table")
        return values

    def array(self, names: str | tuple[str, ...]) -> u.Quantity:
        return column_row_array(self.data, names, where=self.where, error=IRFError)

    def oriented(self, values: u.Quantity, shape: tuple[int, ...], column: str) -> u.Quantity:
        """Values in the axes order ``shape``: FITS cells come out in reversed axis order."""
        if values.shape == shape[::-1]:
            return values.T
        if values.shape == shape:
            return values
        raise IRFError(
            f"column {column!r} in {self.where} has shape {values.shape}, incompatible with its "
            f"axes {shape} (or reversed)"
        )

    def unit(self, values: u.Quantity, expected: str, column: str) -> u.Quantity:
        """Check the data unit is convertible to ``expected``."""
        if not values.unit.is_equivalent(expected):
            raise IRFError(
                f"column {column!r} in {self.where} has unit {values.unit.to_string()!r}, "
                f"not convertible to {expected!r}"
            )
        return values


class CellIRF:
    """Base of an IRF held as one data cell on GADF axes, read from one table HDU.

    A subclass declares its format in the class statement, e.g. ``class PSFTable(CellIRF,
    tag="psf_table", axes=("energy_true", "offset", "rad"), columns="RPSF", unit="sr-1",
    hdu="PSF_2D_TABLE")``: the GADF class tag, the data's axis order, the accepted data columns
    (first present wins), the data unit and the default HDU name. ``self._interp`` interpolates
    the data linearly between bin centres (zero outside the edges, or as `mask_rule` says).
    """

    tag = ""
    axis_names: tuple[str, ...] = ()
    columns: str | tuple[str, ...] = ()
    unit = ""
    default_hdu = ""
    #: ``mask_rule(valid_per_axis) -> valid`` of `GridInterpolator` (None: inside every axis).
    mask_rule = None

    def __init_subclass__(cls, *, tag: str | None = None, axes: tuple[str, ...] | None = None,
                          columns: str | tuple[str, ...] | None = None, unit: str | None = None,
                          hdu: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = {"tag": tag, "axis_names": axes, "columns": columns, "unit": unit, "default_hdu": hdu}
        for name, value in declared.items():
            if value is not None:  # else inherited (a subclass of a format class)
                setattr(cls, name, value)

    def __init__(self, axes: tuple[IRFAxis, ...], data: u.Quantity, *, meta: dict | None = None) -> None:
        self.axes = tuple(axes)
        self.data = u.Quantity(data).to(self.unit)
        self.meta = dict(meta or {})
        self._interp = GridInterpolator(self.axes, self.data.value, values_scale="lin", fill=True,
                                        mask_rule=self.mask_rule)

    @classmethod
    def read(cls, path: str | Path, hdu: str | int | None = None) -> Self:
        """Read the IRF from a FITS table HDU (default name `default_hdu`).

        Raises
        ------
        IRFError
            Naming the file, HDU and column: a missing or malformed axis or data column.
        """
        table = IRFTable(path, cls.default_hdu if hdu is None else hdu)
        axes, values = table.grid(cls.axis_names, cls.columns, cls.unit)
        return cls(axes, values, meta=table.meta())


def threshold(header, key: str, *, where: str = "the IRF header") -> u.Quantity | None:
    """LO_THRES / HI_THRES header values (GADF: TeV) as Quantity, None if absent.

    Raises
    ------
    IRFError
        A value that is not a positive finite number (naming ``where``).
    """
    value = header.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = np.nan
    if not (np.isfinite(number) and number >= 0):
        raise IRFError(f"header key {key} = {value!r} in {where} is not an energy in TeV")
    return u.Quantity(number, "TeV")
