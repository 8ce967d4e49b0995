"""Read and write sky maps as FITS in the layout Gammapy and ds9 read.

Each variable is an image HDU (EXTNAME = upper-case variable name) with a celestial WCS; cubes add
a ``<EXTNAME>_BANDS`` binary table (CHANNEL, ENERGY, E_MIN, E_MAX in TeV) referenced by BANDSHDU.

Boolean maps (masks) are written as 0/1 bytes in an HDU whose name contains ``MASK``
(``exclusion`` -> ``EXCLUSION_MASK``), the name Gammapy reads back as a boolean map; the card
``XGVAR`` keeps the variable name, so `read_maps` restores both. The primary header carries the
provenance: ``DATE``, ``CREATOR`` (xgamma and its version) and what the caller adds (`write_maps`
``header``); a variable's ``description`` attribute becomes ``COMMENT`` cards of its HDU.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import xarray as xr
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.table import Table

from xgamma.exceptions import DataStoreError, GeometryError
from xgamma.geometry import ENERGY_DIMS, SkyGeometry
from xgamma.maps import make_map, map_geometry, map_units

__all__ = ["write_maps", "read_maps", "maps_to_hdulist", "provenance_header", "atomic_path"]

_TRUE_COLUMNS = ("ENERGY_TRUE", "ENERGY_TRUE_MIN", "ENERGY_TRUE_MAX")


def _image_hdu(da: xr.DataArray) -> list[fits.hdu.base.ExtensionHDU]:
    geometry = map_geometry(da)
    variable = str(da.name or "map")
    name = variable.upper()
    energy_dim = next((d for d in ENERGY_DIMS if d in da.dims), None)
    data = np.asarray(da.transpose(*[d for d in (energy_dim, "lat", "lon") if d in da.dims]).values)
    header = geometry.wcs.to_header()
    if data.dtype == bool:  # FITS has no boolean images: bytes, in an HDU Gammapy reads as a mask
        data = data.astype(np.uint8)
        name = name if "MASK" in name else f"{name}_MASK"
    if name != variable.upper() or variable != variable.lower():
        header["XGVAR"] = (variable, "xgamma variable name")
    description = da.attrs.get("description")
    if description:
        header.add_comment(str(description))
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    if geometry.energy_edges is not None:
        edges = geometry.energy_edges.to_value("TeV")
        bands_name = f"{name}_BANDS"
        # True-energy axes use Gammapy's column names, which also tell the reader the axis.
        centre, lo, hi = ("ENERGY", "E_MIN", "E_MAX") if energy_dim == "energy" else _TRUE_COLUMNS
        header["AXCOLS1"] = f"{lo},{hi}"
        header["INTERP1"] = "log"
        header["BANDSHDU"] = bands_name
        table = Table(
            {
                "CHANNEL": np.arange(edges.size - 1, dtype=np.int64),
                centre: u.Quantity(np.sqrt(edges[:-1] * edges[1:]), "TeV"),
                lo: u.Quantity(edges[:-1], "TeV"),
                hi: u.Quantity(edges[1:], "TeV"),
            }
        )
        bands = fits.BinTableHDU(table, name=bands_name)
        bands.header["AXCOLS1"] = f"{lo},{hi}"
        bands.header["INTERP1"] = "log"
        hdus.append(bands)
    header["BUNIT"] = map_units(da).to_string("fits") if map_units(da) != u.dimensionless_unscaled else ""
    image = fits.ImageHDU(data=data, header=header, name=name)
    return [image, *hdus]


def provenance_header(cards: Mapping[str, Any] | None = None) -> fits.Header:
    """Primary header: ``DATE`` (UTC), ``CREATOR`` (xgamma version) and ``cards``.

    Values of ``cards`` may be numbers, strings, booleans or ``(value, comment)`` pairs; lists
    are written as comma-separated strings (long ones continue over CONTINUE cards).
    """
    from datetime import datetime, timezone

    from xgamma.version import __version__

    header = fits.Header()
    header["DATE"] = (datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "file creation date (UTC)")
    header["CREATOR"] = (f"xgamma {__version__}", "software that wrote this file")
    for key, value in (cards or {}).items():
        value, comment = value if isinstance(value, tuple) else (value, None)
        if isinstance(value, (list, tuple, np.ndarray)):
            value = ",".join(str(v) for v in value)
        card = fits.Card(key, value, comment)
        with warnings.catch_warnings():
            warnings.simplefilter("error", VerifyWarning)
            try:
                card.image  # noqa: B018 (formats the card)
            except VerifyWarning:  # too long: the value keeps its full text, the comment goes
                card = fits.Card(key, value)
        header.append(card)
    return header


def maps_to_hdulist(maps: xr.Dataset | xr.DataArray, *, names: Sequence[str] | None = None,
                    header: Mapping[str, Any] | None = None) -> fits.HDUList:
    """FITS HDU list (primary with `provenance_header` + one image HDU per variable and its bands)."""
    arrays = [maps] if isinstance(maps, xr.DataArray) else [maps[n] for n in (names or list(maps.data_vars))]
    primary = fits.PrimaryHDU()
    primary.header.extend(provenance_header(header))
    hdulist = fits.HDUList([primary])
    for da in arrays:
        hdulist.extend(_image_hdu(da))
    return hdulist


class atomic_path:
    """Context manager yielding a temporary path next to ``path``, renamed onto it only on success.

    A failed write leaves no file that looks complete.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite

    def __enter__(self) -> Path:
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True to replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
        os.close(fd)
        os.unlink(tmp)
        self._tmp = Path(tmp)
        return self._tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self._tmp, self.path)
        elif self._tmp.is_dir():
            import shutil
            import time

            # A failed dask write raises while other worker threads may still be writing their
            # chunks into the folder: remove it until it stays removed (bounded, ~2 s).
            for _ in range(20):
                shutil.rmtree(self._tmp, ignore_errors=True)
                time.sleep(0.1)
                if not self._tmp.exists():
                    break
        elif self._tmp.exists():
            self._tmp.unlink()


def write_maps(
    maps: xr.Dataset | xr.DataArray,
    path: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    overwrite: bool = False,
    header: Mapping[str, Any] | None = None,
) -> Path:
    """Write maps to a FITS file (computing lazy data one variable at a time).

    Parameters
    ----------
    maps : `xarray.Dataset` or `xarray.DataArray`
        Sky maps (dims ``("energy", "lat", "lon")``).
    path : path-like
        Output file.
    names : sequence of str, optional
        Variables to write (default: all).
    overwrite : bool
        Replace an existing file. Default is False.
    header : mapping, optional
        Provenance cards for the primary header (see `provenance_header`), e.g. the
        observation ids or the correlation radius.

    Returns
    -------
    path : `pathlib.Path`
    """
    with atomic_path(path, overwrite=overwrite) as tmp:
        maps_to_hdulist(maps, names=names, header=header).writeto(tmp)
    return Path(path)


def _read_energy_edges(hdulist: fits.HDUList, header: fits.Header, path: Path) -> tuple[u.Quantity | None, str]:
    """Energy edges (TeV) of an image HDU's bands table and the axis name ("energy" or "energy_true")."""
    bands_name = header.get("BANDSHDU")
    if not bands_name:
        return None, "energy"
    if bands_name not in hdulist:
        raise DataStoreError(f"{path}: HDU {header.get('EXTNAME')} refers to missing bands HDU {bands_name!r}")
    table = Table.read(hdulist[bands_name])
    columns = [c.strip() for c in str(hdulist[bands_name].header.get("AXCOLS1", "E_MIN,E_MAX")).split(",")]
    if len(columns) != 2 or any(c not in table.colnames for c in columns):
        raise DataStoreError(f"{path}: HDU {bands_name} lacks energy edge columns {columns}")
    lo, hi = (u.Quantity(table[c]) for c in columns)
    if lo.unit == u.dimensionless_unscaled:
        lo, hi = lo * u.TeV, hi * u.TeV
    dim = "energy_true" if columns[0].upper() == _TRUE_COLUMNS[1] else "energy"
    return u.Quantity(np.append(lo.to_value("TeV"), hi.to_value("TeV")[-1]), "TeV"), dim


def read_maps(path: str | os.PathLike, *, hdus: Sequence[str] | None = None, chunks: int | None = None) -> xr.Dataset:
    """Read a FITS file of sky maps (written by xgamma, Gammapy or any WCS image) into a Dataset.

    Parameters
    ----------
    path : path-like
        FITS file.
    hdus : sequence of str, optional
        Image HDUs to read (default: every image HDU with data).
    chunks : int, optional
        Spatial chunk size; when given, variables are dask arrays.

    Returns
    -------
    maps : `xarray.Dataset`
        One variable per HDU, named by the lower-case EXTNAME.
    """
    path = Path(path)
    if not path.is_file():
        raise DataStoreError(f"map file not found: {path}")
    variables = {}
    with fits.open(path) as hdulist:
        names = list(hdus) if hdus else [
            h.name for h in hdulist if isinstance(h, (fits.ImageHDU, fits.PrimaryHDU)) and h.data is not None
        ]
        for name in names:
            if name not in hdulist:
                raise DataStoreError(f"{path}: no HDU named {name!r} (has {[h.name for h in hdulist]})")
            hdu = hdulist[name]
            edges, energy_dim = _read_energy_edges(hdulist, hdu.header, path)
            geometry = SkyGeometry.from_header(hdu.header, energy_edges=edges)
            data = np.array(hdu.data, dtype=hdu.data.dtype.newbyteorder("="))
            if edges is not None and data.ndim == 2:
                data = data[np.newaxis]
            if data.shape != geometry.data_shape:
                raise GeometryError(f"{path}: HDU {name} data shape {data.shape} does not match its WCS {geometry.data_shape}")
            if chunks is not None:
                import dask.array as da

                data = da.from_array(data, chunks=(-1, chunks, chunks)[-data.ndim:])
            unit = hdu.header.get("BUNIT", "")
            try:
                unit = u.Unit(unit)
            except ValueError as error:
                raise DataStoreError(f"{path}: HDU {name} has unparsable BUNIT {unit!r}") from error
            if "MASK" in name.upper() and np.issubdtype(data.dtype, np.integer):
                data = data.astype(bool)  # the Gammapy convention for masks
            variable = str(hdu.header.get("XGVAR", name.lower()))
            variables[variable] = make_map(data, geometry, name=variable, units=unit, energy_dim=energy_dim)
    return xr.Dataset(variables)
