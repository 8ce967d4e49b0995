"""Small helpers to read FITS HDUs and columns with errors that name file, HDU and column."""

from __future__ import annotations

import gzip
import io
import math
import re
import zlib
from collections.abc import Mapping
from contextlib import contextmanager
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError

from xgamma.exceptions import DataStoreError

__all__ = ["HeaderCards", "read_table_hdu", "read_table_columns", "read_header", "column_quantity", "column_row_array",
           "find_column", "header_float"]


#: What astropy raises on a damaged FITS file (corrupt cards, short data, bad gzip stream...).
_FITS_FAILURES = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, zlib.error, VerifyError)


def _open_fits(path: Path, error: type) -> fits.HDUList:
    if not path.is_file():
        raise error(f"FITS file not found: {path}")
    try:
        return fits.open(_fits_source(path), memmap=False)
    except _FITS_FAILURES as exc:
        raise error(f"cannot read FITS file {path}: {exc}") from None


def _select_hdu(hdul: fits.HDUList, hdu: str | int, path: Path, error: type):
    try:
        return hdul[hdu]
    except (KeyError, IndexError):
        try:
            names = [h.name for h in hdul]
        except _FITS_FAILURES:  # the HDU list itself is damaged after some point
            names = "unreadable"
        raise error(f"HDU {hdu!r} not found in {path} (available HDUs: {names})") from None


def _check_data_size(table, hdu: str | int, path: Path, error: type) -> None:
    """Refuse an HDU whose header promises more data bytes than the file holds (truncated file).

    The HDU's own ``fileinfo`` (its data offset and file object) is cheap; the HDU list's
    ``fileinfo(i)`` also checks whether any HDU was resized by re-serialising every header
    (~6 ms per file).
    """
    info = table.fileinfo()
    start, file_size = info["datLoc"], info["file"].size
    needed = table.header.get("NAXIS1", 0) * table.header.get("NAXIS2", 0) + table.header.get("PCOUNT", 0)
    if start + needed > file_size:
        raise error(
            f"HDU {hdu!r} of {path} is truncated: its header announces {needed} data bytes "
            f"(NAXIS1 x NAXIS2 + PCOUNT) but the file ends {file_size - start} bytes after the header"
        )


def read_header(path: str | Path, hdu: str | int, *, error: type = DataStoreError) -> fits.Header:
    """The header of one HDU, with errors naming the file and HDU.

    Its cards are parsed lazily: only the keys read cost anything.
    """
    path = Path(path)
    with _open_fits(path, error) as hdul:
        try:
            return _select_hdu(hdul, hdu, path, error).header
        except _FITS_FAILURES as exc:
            raise error(f"cannot read HDU {hdu!r} of FITS file {path}: {exc}") from None


def read_table_hdu(path: str | Path, hdu: str | int, *, error: type = DataStoreError):
    """Read one binary-table HDU of a FITS file into memory.

    Parameters
    ----------
    path : str or Path
        FITS file (gzipped or not).
    hdu : str or int
        HDU name (case-insensitive) or index.
    error : type
        Exception class raised on failure (a `DataStoreError` subclass).

    Returns
    -------
    header, data : `~astropy.io.fits.Header`, `~astropy.io.fits.FITS_rec`
        The HDU header and its (fully loaded) table data.

    Raises
    ------
    DataStoreError
        When the file or the HDU is missing, is not a table, or is damaged (unreadable cards,
        fewer data bytes than the header announces, a corrupt gzip stream).
    """
    with _table_hdu(path, hdu, error) as table:
        # With memmap=False this reads the table (and its heap) into memory before the file
        # closes; a `data[:]` view would only rebuild the column definitions (~3 ms).
        return table.header, table.data


@contextmanager
def _table_hdu(path: str | Path, hdu: str | int, error: type):
    """The table HDU ``hdu`` of an open FITS file, its size checked; astropy's failures inside the
    block become ``error`` naming the file and HDU."""
    path = Path(path)
    with _open_fits(path, error) as hdul:
        try:
            table = _select_hdu(hdul, hdu, path, error)
            if not isinstance(table, fits.BinTableHDU | fits.TableHDU):
                raise error(f"HDU {hdu!r} of {path} is not a table HDU")
            _check_data_size(table, hdu, path, error)
            yield table
        except _FITS_FAILURES as exc:
            raise error(f"cannot read HDU {hdu!r} of FITS file {path}: {exc}") from None


#: Bytes per element of the binary-table column types (TFORMn codes); bit arrays (X) round up to bytes.
_TFORM_BYTES = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16, "P": 8, "Q": 16}
#: Scalar numeric column types read straight into numpy (big-endian, as FITS stores them).
_TFORM_DTYPES = {"B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
_TFORM = re.compile(r"^\s*(\d*)\s*([LXBIJKAEDCMPQ])", re.IGNORECASE)


def _column_layout(header: fits.Header) -> dict[str, tuple[int, str | None, int]] | None:
    """``{TTYPE: (byte offset in the row, numpy dtype or None, column number)}`` of a binary table, from its
    header alone; the dtype only for a scalar, unscaled numeric column. None when the header does not
    describe plain rows of NAXIS1 bytes (then astropy reads the table)."""
    if str(header.get("XTENSION", "")).strip().upper() != "BINTABLE":
        return None
    layout, offset = {}, 0
    for i in range(1, int(header.get("TFIELDS", 0)) + 1):
        match = _TFORM.match(str(header.get(f"TFORM{i}", "")))
        if match is None:
            return None
        repeat = int(match.group(1)) if match.group(1) else 1
        code = match.group(2).upper()
        size = (repeat + 7) // 8 if code == "X" else repeat * _TFORM_BYTES[code]
        plain = repeat == 1 and code in _TFORM_DTYPES and not any(f"{key}{i}" in header for key in ("TSCAL", "TZERO"))
        name = str(header.get(f"TTYPE{i}", f"col{i}")).strip()
        layout.setdefault(name, (offset, _TFORM_DTYPES[code] if plain else None, i))
        offset += size
    return layout if offset == header.get("NAXIS1") else None


def read_table_columns(path: str | Path, hdu: str | int, names: tuple[tuple[str, ...], ...], *,
                       error: type = DataStoreError) -> tuple[fits.Header | HeaderCards, list[u.Quantity]]:
    """Read some columns of one binary-table HDU: ``names`` gives, per column, the accepted names
    (case-insensitive, the first present wins, as `find_column`).

    Scalar numeric columns without TSCAL/TZERO are read straight from the file's bytes into native-order
    arrays, without astropy's table machinery (which builds every column's definition: most of the time of
    reading a DL3 events table of ~10^4 rows). A plain binary table found by name is even located from its
    header cards alone (`_plain_table`), without astropy's HDU list. Any other table goes through
    `read_table_hdu` and `column_quantity`: the same values, units and errors either way.

    Returns
    -------
    header : `HeaderCards` or `~astropy.io.fits.Header`
        The HDU header: its cards as the header-card parser read them when it found the table (the astropy
        Header only parsed if asked for), else astropy's Header.
    columns : list of `~astropy.units.Quantity`
        One per entry of ``names``, unit from TUNITn (dimensionless if none), native byte order.
    """
    where = f"HDU {hdu!r} of {path}"
    plain = _plain_table(Path(path), hdu) if isinstance(hdu, str) else None
    if plain is not None:
        cards, text, data = plain
        columns = _byte_columns(cards, lambda: data, names, where=where, error=error)
        if columns is not None:
            return HeaderCards(cards, text, where=where), columns
    with _table_hdu(path, hdu, error) as table:
        header = table.header
        columns = _byte_columns(header, lambda: _data_bytes(table), names, where=where, error=error)
        if columns is None:
            data = table.data
            columns = [column_quantity(data, wanted, where=where, error=error) for wanted in names]
    return header, columns


def _byte_columns(header: Any, data_bytes: Any, names: tuple[tuple[str, ...], ...], *, where: str,
                  error: type) -> list[u.Quantity] | None:
    """The columns ``names`` read from the table's bytes (``data_bytes()``), or None when one of them
    is not a plain scalar column (or the table has a heap): astropy reads the table then."""
    layout = _column_layout(header)
    found = None if layout is None else [_find_name(list(layout), wanted, where=where, error=error)
                                         for wanted in names]
    if found is None or any(layout[name][1] is None for name in found) or header.get("PCOUNT", 0):
        return None
    dtype = np.dtype({"names": found, "formats": [layout[n][1] for n in found],
                      "offsets": [layout[n][0] for n in found], "itemsize": int(header["NAXIS1"])})
    rows = np.frombuffer(data_bytes(), dtype=dtype, count=int(header["NAXIS2"]))
    columns = []
    for i, name in enumerate(found):
        values = rows[name].astype(rows.dtype[i].newbyteorder("="))
        unit = _parse_unit(str(header.get(f"TUNIT{layout[name][2]}", "")).strip(), name, where=where, error=error)
        columns.append(u.Quantity(values, unit, copy=False))
    return columns


_CARD = 80
_BLOCK = 2880
#: The first 8 columns of commentary cards (COMMENT, HISTORY, blank keyword): they hold text, not values.
_COMMENTARY = frozenset({"COMMENT ", "HISTORY ", "        "})
_END = "END".ljust(_CARD)
_STANDARD_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}")
#: A standard ``KEYWORD = value / comment`` card whose value astropy reads as a str, bool, int or float:
#: the keyword in columns 1-8 then ``= `` (no ``=`` earlier); a string with ``''`` for a quote; a
#: number in the FITS fixed or free format (astropy's ``_numr_FSC``, lower-case exponents too); after the
#: value only spaces and a comment. Anything else (complex, undefined, spaces inside a number, more after
#: a string) is left to astropy.
_VALUED_CARD = re.compile(
    r"(?=[A-Z0-9_ -]{8}= )(?P<keyword>[A-Z0-9_-]+) *=  *"
    r"(?:'(?P<string>[^']*(?:''[^']*)*)'|(?P<bool>[TF])|(?P<int>[+-]?\d+)"
    r"|(?P<real>[+-]?(?:\.\d+|\d+(?:\.\d*)?)(?:[deDE][+-]?\d+)?)) *(?:/.*)?")
_EXPONENT = str.maketrans("dD", "eE")
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def _card_value(match: re.Match) -> Any:
    """The value of a `_VALUED_CARD` match as astropy's ``Card.value`` gives it; None for a string that
    astropy could read as a record-valued keyword card (``'AXIS.1: 2'``)."""
    kind = match.lastgroup
    value = match[kind]
    if kind == "string":
        value = value.replace("''", "'").rstrip(" ")
        return None if ": " in value else value
    if kind == "int":
        return int(value)
    if kind == "real":
        return float(value.translate(_EXPONENT))
    return value == "T"


def _header_cards(stream: Any) -> tuple[dict[str, Any], str] | None:
    """Read one header from ``stream`` (at a block boundary): ``({KEYWORD: value}, header text)``, the
    first value of a repeated keyword kept (as astropy's ``header[key]``), values as astropy reads them.

    Every card is either commentary (COMMENT, HISTORY, blank keyword) or a standard ``KEYWORD = value``
    card whose value is parsed here: so a keyword absent from the dict is absent from the header. None at
    the end of the file or on anything else (bytes other than printable ASCII, a CONTINUE, HIERARCH or
    other non-standard card, a value not parsed): astropy then reads the file.
    """
    cards: dict[str, Any] = {}
    text = []
    while True:
        block = stream.read(_BLOCK)
        if len(block) < _BLOCK:
            return None
        if block.translate(None, _PRINTABLE_ASCII):  # bytes left that are not printable ASCII
            return None
        block = block.decode("ascii")
        text.append(block)
        for start in range(0, _BLOCK, _CARD):
            if block[start:start + 8] in _COMMENTARY:
                continue
            match = _VALUED_CARD.fullmatch(block, start, start + _CARD)
            if match is None:
                return (cards, "".join(text)) if block[start:start + _CARD] == _END else None
            value = _card_value(match)
            if value is None:
                return None
            cards.setdefault(match["keyword"], value)


class HeaderCards(Mapping):
    """The header of a FITS HDU read by the header-card parser: ``{KEYWORD: value}`` of its valued cards,
    looked up without regard to case, with the values astropy reads (str, bool, int, float).

    Behaves as `astropy.io.fits.Header` for ``get``, ``[]`` and ``in``; iterating gives each valued keyword
    once. Commentary cards (COMMENT, HISTORY) and comments come from the astropy Header of the same cards
    (`header`), parsed on first use only: parsing it for every events table would cost most of reading one.
    """

    def __init__(self, cards: dict[str, Any], text: str, *, where: str) -> None:
        self._cards = cards
        self._text = text
        self._where = where

    @cached_property
    def header(self) -> fits.Header:
        """The same cards as an `astropy.io.fits.Header`, parsed on first use. Each of its cards reads
        without error: the parser read every one the same way (astropy's lazy parse would otherwise raise
        a bare VerifyError at the first damaged card read)."""
        return fits.Header.fromstring(self._text)

    def __getitem__(self, key: str) -> Any:
        if isinstance(key, str):
            keyword = key.strip().upper()
            if keyword in self._cards:
                return self._cards[keyword]
            if keyword not in ("COMMENT", "HISTORY") and _STANDARD_KEYWORD.fullmatch(keyword):
                raise KeyError(f"Keyword {key!r} not found.")  # the parser read every valued card
        return self.header[key]

    def __iter__(self):
        return iter(self._cards)

    def __len__(self) -> int:
        return len(self._cards)

    def __repr__(self) -> str:
        return f"HeaderCards({len(self)} valued cards of {self._where})"


def _plain_table(path: Path, hdu: str) -> tuple[dict[str, Any], str, bytes] | None:
    """``(header cards, header text, data bytes)`` of the extension named ``hdu`` (case-insensitive, the
    first one) when it is a plain binary table (BITPIX 8, NAXIS 2, no heap) whose data the file holds,
    read from the header cards alone. None otherwise (missing file or HDU, another kind of HDU, a truncated
    or unusual file, random groups): astropy then reads the file, with its checks and errors."""
    try:
        source = _fits_source(path)
        stream = source if isinstance(source, io.BytesIO) else open(source, "rb")  # noqa: SIM115 (closed below)
    except OSError:
        return None
    wanted = hdu.strip().upper()
    with stream:
        try:
            return _find_plain_table(stream, wanted)
        except OSError:
            return None


def _find_plain_table(stream: Any, wanted: str) -> tuple[dict[str, Any], str, bytes] | None:
    """`_plain_table` on an open FITS stream, ``wanted`` the upper-case name."""
    for index in range(1000):
        start = stream.tell()
        read = _header_cards(stream)
        if read is None:
            return None
        cards, text = read
        naxis, gcount, pcount, bitpix = (cards.get(key, default) for key, default in (
            ("NAXIS", -1), ("GCOUNT", 1), ("PCOUNT", 0), ("BITPIX", None)))
        first = cards.get("SIMPLE") is True if index == 0 else isinstance(cards.get("XTENSION"), str)
        if not first or "GROUPS" in cards or type(bitpix) is not int or not all(
                type(n) is int and n >= 0 for n in (naxis, gcount, pcount)):
            return None
        axes = [cards.get(f"NAXIS{k}") for k in range(1, naxis + 1)]
        if not all(type(n) is int and n >= 0 for n in axes):
            return None
        size = abs(bitpix) // 8 * gcount * (pcount + (math.prod(axes) if axes else 0))
        if index and str(cards.get("EXTNAME", "")).strip().upper() == wanted:
            plain = (cards["XTENSION"].strip().upper() == "BINTABLE" and bitpix == 8 and naxis == 2
                     and pcount == 0 and gcount == 1)
            data = stream.read(size) if plain else b""
            return (cards, text, data) if plain and len(data) == size else None
        stream.seek(start + len(text) + -(-size // _BLOCK) * _BLOCK)
    return None


def _data_bytes(table) -> bytes:
    """The data bytes (NAXIS1 x NAXIS2) of a table HDU whose file is still open."""
    info = table.fileinfo()
    size = int(table.header["NAXIS1"]) * int(table.header["NAXIS2"])
    handle = info["file"]
    handle.seek(info["datLoc"])
    return handle.read(size)


#: Gzipped files up to this size (bytes, compressed) are kept decompressed in memory, a few at a time.
_GZIP_CACHE_MAX = 32 * 1024**2


def _fits_source(path: Path) -> Path | io.BytesIO:
    """What `astropy.io.fits.open` reads: the path, or for a (small) gzipped file its cached bytes.

    A H.E.S.S. DL3 file holds events and IRFs: they are read one HDU at a time (events, effective
    area, background...), and each `fits.open` of a gzipped file decompresses and parses it from
    the start again. Keeping the last few decompressed files saves a third of reading a run.
    """
    if path.suffix.lower() != ".gz":
        return path
    stat = path.stat()
    if stat.st_size > _GZIP_CACHE_MAX:
        return path
    return io.BytesIO(_gunzipped(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=4)
def _gunzipped(path: str, mtime_ns: int, size: int) -> bytes:
    with gzip.open(path) as stream:
        return stream.read()


def find_column(data: Any, names: tuple[str, ...], *, where: str, error: type = DataStoreError) -> str:
    """Return the first of ``names`` present in ``data`` (case-insensitive), else raise."""
    return _find_name(data.columns.names if data is not None else [], names, where=where, error=error)


def _find_name(columns: list[str], names: str | tuple[str, ...], *, where: str, error: type) -> str:
    names = (names,) if isinstance(names, str) else names
    available = {n.upper(): n for n in columns}
    for name in names:
        if name.upper() in available:
            return available[name.upper()]
    wanted = " or ".join(repr(n) for n in names)
    raise error(f"column {wanted} missing in {where} (columns: {sorted(available.values())})")


def _column_unit(data: Any, name: str, *, where: str, error: type) -> u.UnitBase:
    return _parse_unit(data.columns[name].unit, name, where=where, error=error)


def _parse_unit(unit_str: str | None, name: str, *, where: str, error: type) -> u.UnitBase:
    if not unit_str:
        return u.dimensionless_unscaled
    # Generic first, then OGIP (which accepts the '1/s/MeV/sr' of CTA 1DC files).
    for fmt in (None, "fits", "ogip"):
        try:
            return u.Unit(unit_str, format=fmt, parse_strict="raise")
        except ValueError:
            continue
    raise error(f"column {name!r} in {where} has an unparseable unit {unit_str!r}")


def column_quantity(
    data: Any, names: str | tuple[str, ...], *, where: str, error: type = DataStoreError
) -> u.Quantity:
    """Read a full column as a Quantity (unit from the TUNIT header, dimensionless if none)."""
    names = (names,) if isinstance(names, str) else names
    name = find_column(data, names, where=where, error=error)
    unit = _column_unit(data, name, where=where, error=error)
    return u.Quantity(np.asarray(data[name]), unit, copy=False)


def column_row_array(
    data: Any, names: str | tuple[str, ...], *, where: str, error: type = DataStoreError
) -> u.Quantity:
    """Read the array cell of the first row of a column (GADF IRF tables store one row).

    The array keeps the numpy axis order of the file (FITS TDIM order reversed).
    """
    names = (names,) if isinstance(names, str) else names
    name = find_column(data, names, where=where, error=error)
    if data is None or len(data) < 1:
        raise error(f"table {where} has no rows (column {name!r} needs one row)")
    unit = _column_unit(data, name, where=where, error=error)
    # Native byte order for fast arithmetic; values keep their file dtype (float32).
    value = np.asarray(data[name][0])
    value = value.astype(value.dtype.newbyteorder("="), copy=False)
    return u.Quantity(np.atleast_1d(value), unit, copy=False)


def header_float(header: fits.Header, key: str, default: float | None = None) -> float | None:
    """A header value as float (also parsing numeric strings such as GEOLON='16.5'); else default."""
    value = header.get(key, None)
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def check_column_values(
    values: np.ndarray,
    *,
    column: str,
    where: str,
    error: type = DataStoreError,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    unit: str = "",
) -> None:
    """Refuse non-finite values and values outside a range, naming the column and counting the rows.

    Parameters
    ----------
    values : ndarray
        Column values (plain numbers in ``unit``).
    column, where : str
        Column name and "HDU ... of FILE" for the message.
    minimum, maximum : float, optional
        Inclusive bounds.
    above : float, optional
        Exclusive lower bound (e.g. 0 for energies).
    unit : str
        Unit of the bounds, for the message.
    """
    values = np.asarray(values)
    bad = ~np.isfinite(values)
    if bad.any():
        raise error(
            f"column {column!r} in {where} has {int(bad.sum())} non-finite value(s) (NaN or inf) out of "
            f"{values.size}, e.g. at index {int(np.flatnonzero(bad)[0])}"
        )
    checks = ((minimum, values < minimum if minimum is not None else None, ">="),
              (maximum, values > maximum if maximum is not None else None, "<="),
              (above, values <= above if above is not None else None, ">"))
    for bound, outside, relation in checks:
        if bound is not None and outside.any():
            first = values.ravel()[int(np.flatnonzero(outside)[0])]
            raise error(
                f"column {column!r} in {where} has {int(outside.sum())} value(s) out of {values.size} that are "
                f"not {relation} {bound:g}{' ' + unit if unit else ''} (e.g. {first:g})"
            )
