"""Event lists and good-time intervals of DL3 observations (GADF ``events`` / ``gti`` HDUs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np

from xgamma.exceptions import DataStoreError
from xgamma.fits_tables import check_column_values, column_quantity, header_float, read_table_columns, read_table_hdu

__all__ = ["EventList", "GTI", "read_events", "read_gti", "time_reference"]


def time_reference(header) -> tuple[float, float, str] | None:
    """(MJDREFI, MJDREFF, scale) from a header, None when MJDREF is absent."""
    mjdrefi = header_float(header, "MJDREFI")
    if mjdrefi is None:
        mjdref = header_float(header, "MJDREF")
        if mjdref is None:
            return None
        mjdrefi, mjdreff = float(np.floor(mjdref)), mjdref - float(np.floor(mjdref))
    else:
        mjdreff = header_float(header, "MJDREFF", 0.0)
    scale = str(header.get("TIMESYS", "tt")).strip().lower() or "tt"
    return mjdrefi, mjdreff, scale


def met_to_time(met, ref: tuple[float, float, str]):
    """Mission elapsed time (s) -> `~astropy.time.Time` for a (MJDREFI, MJDREFF, scale) reference."""
    from astropy.time import Time

    mjdrefi, mjdreff, scale = ref
    return Time(mjdrefi, mjdreff, format="mjd", scale=scale) + u.Quantity(met, "s")


@dataclass(eq=False)
class EventList:
    """Reconstructed events of one observation.

    Attributes
    ----------
    ra, dec : ndarray
        ICRS coordinates in deg, in the file's dtype (float32 in GADF files): binning them
        in float32 reproduces what astropy/Gammapy do with these columns.
    energy : ndarray
        Reconstructed energy in TeV (converted from the column unit).
    time : ndarray
        Mission elapsed time in s (float64); see ``meta`` for MJDREF.
    meta : mapping
        Header of the EVENTS HDU (keyword -> value, looked up without regard to case): a
        `~xgamma.fits_tables.HeaderCards` when the table was found by its header cards, else an
        `astropy.io.fits.Header`.
    """

    ra: np.ndarray
    dec: np.ndarray
    energy: np.ndarray
    time: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ra.size)

    @property
    def skycoord(self):
        """Event directions as an ICRS `~astropy.coordinates.SkyCoord`."""
        from astropy.coordinates import SkyCoord

        return SkyCoord(self.ra, self.dec, unit="deg", frame="icrs")

    def __repr__(self) -> str:
        return f"EventList(n_events={len(self)}, obs_id={self.meta.get('OBS_ID')})"


@dataclass(eq=False)
class GTI:
    """Good-time intervals: ``start``/``stop`` in mission elapsed time (s)."""

    start: np.ndarray
    stop: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def time_sum(self) -> u.Quantity:
        """Total good time (s)."""
        return u.Quantity(float(np.sum(self.stop - self.start)), "s")

    @property
    def time_start(self):
        """Start times as `~astropy.time.Time` (needs MJDREF in the header)."""
        ref = time_reference(self.meta)
        if ref is None:
            raise DataStoreError("GTI header has no MJDREFI/MJDREFF: cannot convert to absolute times")
        return met_to_time(self.start, ref)

    def __repr__(self) -> str:
        return f"GTI(n_intervals={self.start.size}, time_sum={self.time_sum:.1f})"


def _meta(header):
    """The HDU header as the metadata mapping.

    Kept as it was read (a `~xgamma.fits_tables.HeaderCards` or an astropy Header, both mappings with
    ``get``/``in``): building a dict from an astropy Header parses every card (0.05 s for a CTA events header).
    """
    return header


def read_events(path: str | Path, hdu: str | int = "EVENTS") -> EventList:
    """Read the RA, DEC, ENERGY and TIME columns of an events HDU.

    Raises
    ------
    DataStoreError
        Missing file, HDU or column (named in the message), or a column with a wrong unit.
    """
    header, (ra, dec, energy, time) = read_table_columns(path, hdu, (("RA",), ("DEC",), ("ENERGY",), ("TIME",)))
    where = f"HDU {hdu!r} of {path}"
    for name, q, unit in (("RA", ra, "deg"), ("DEC", dec, "deg"), ("ENERGY", energy, "TeV"), ("TIME", time, "s")):
        if q.unit == u.dimensionless_unscaled:
            continue  # GADF mandates the unit; a file without TUNIT is read in the GADF unit
        if not q.unit.is_equivalent(unit):
            raise DataStoreError(f"column {name!r} in {where} has unit {q.unit}, expected {unit}")

    def native(q: u.Quantity, unit: str) -> np.ndarray:
        values = q.value if q.unit in (u.dimensionless_unscaled, u.Unit(unit)) else q.to_value(unit)
        return values.astype(values.dtype.newbyteorder("="), copy=False)

    events = EventList(
        ra=native(ra, "deg"),
        dec=native(dec, "deg"),
        energy=native(energy, "TeV"),
        time=native(time, "s").astype(float, copy=False),
        meta=_meta(header),
    )
    # Damaged rows must not vanish silently: a NaN position or energy falls outside every pixel.
    check_column_values(events.ra, column="RA", where=where)
    check_column_values(events.dec, column="DEC", where=where, minimum=-90, maximum=90, unit="deg")
    check_column_values(events.energy, column="ENERGY", where=where, above=0, unit="TeV")
    check_column_values(events.time, column="TIME", where=where)
    return events


def read_gti(path: str | Path, hdu: str | int = "GTI") -> GTI:
    """Read the START/STOP columns of a GTI HDU (seconds)."""
    header, data = read_table_hdu(path, hdu)
    where = f"HDU {hdu!r} of {path}"
    start = column_quantity(data, "START", where=where)
    stop = column_quantity(data, "STOP", where=where)
    to_s = lambda q: (q.value if q.unit == u.dimensionless_unscaled else q.to_value("s")).astype(float)  # noqa: E731
    gti = GTI(start=to_s(start), stop=to_s(stop), meta=_meta(header))
    check_column_values(gti.start, column="START", where=where)
    check_column_values(gti.stop - gti.start, column="STOP - START", where=where, minimum=0, unit="s")
    return gti
