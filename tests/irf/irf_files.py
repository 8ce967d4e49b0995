"""Write small synthetic GADF IRF HDUs into a temporary directory (generated per test, never committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits


def table_hdu(columns: dict, name: str, header: dict | None = None) -> fits.BinTableHDU:
    """One-row GADF table: ``columns`` maps name -> (numpy array in numpy axis order, unit)."""
    cols = []
    for key, (value, unit) in columns.items():
        value = np.asarray(value, dtype=np.float32)
        dim = None if value.ndim < 2 else "(" + ",".join(str(n) for n in value.shape[::-1]) + ")"
        cols.append(fits.Column(name=key, format=f"{value.size}E", unit=unit, dim=dim, array=[value.ravel()]))
    hdu = fits.BinTableHDU.from_columns(cols, name=name)
    hdu.header.update(header or {})
    return hdu


def write(path: Path, *hdus: fits.BinTableHDU) -> Path:
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(path, overwrite=True)
    return path


def copy_hdu_without_column(src: Path, hdu: str, column: str, dst: Path) -> Path:
    """Copy one table HDU of ``src`` to ``dst`` with ``column`` removed."""
    with fits.open(src) as hdul:
        table = hdul[hdu]
        cols = [c for c in table.columns if c.name != column]
        new = fits.BinTableHDU.from_columns(fits.ColDefs(cols), header=table.header, name=table.name)
    return write(dst, new)
