"""Reading GADF IRF tables: axes from ``*_LO``/``*_HI`` columns, data cells, orientation (private)."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u

from xgamma.exceptions import IRFError
from xgamma.fits_tables import column_row_array, read_table_hdu
from xgamma.irf._grid import IRFAxis

__all__ = ["IRFTable", "AXIS_COLUMNS", "threshold"]

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
                if lo.unit == u.dimensionless_unscaled and name.startswith("energy"):
                    raise IRFError(f"column {prefix}_LO in {self.where} has no energy unit")
                return IRFAxis.from_lo_hi(name, lo, hi, interp)
        wanted = " or ".join(f"{p}_LO/{p}_HI" for p in prefixes)
        raise IRFError(f"columns {wanted} (axis {name!r}) missing in {self.where} (columns: {names})")

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


def threshold(header, key: str) -> u.Quantity | None:
    """LO_THRES / HI_THRES header values (GADF: TeV) as Quantity, None if absent."""
    value = header.get(key)
    if value is None:
        return None
    try:
        return u.Quantity(float(value), "TeV")
    except (TypeError, ValueError):
        return None
