"""Small DL3 data stores made from the shared data at test time, and the edits that break them.

Nothing here is committed as a binary: a *base* store is written once per session from the real
files in ``$XGAMMA_DATA`` (a few runs, optionally fewer events, uncompressed so that byte-level
damage is easy), and each corpus case gets a *copy* whose unchanged files are hard links, with one
file rewritten by an edit.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table


@dataclass(frozen=True)
class BaseStore:
    """A data store written for the corpus: its folder, runs, and what a run of it should give."""

    path: Path
    obs_ids: tuple[int, ...]
    kind: str  # "hess" (one file per run) or "cta" (events per run, one shared IRF file)

    def run_file(self, obs_id: int, hdu_type: str = "events") -> Path:
        """The file holding ``hdu_type`` of ``obs_id`` (from the HDU index)."""
        table = Table.read(self.path / "hdu-index.fits", hdu=1)
        for row in table:
            if int(row["OBS_ID"]) == obs_id and str(row["HDU_TYPE"]).strip() == hdu_type:
                return self.path / str(row["FILE_DIR"]).strip() / str(row["FILE_NAME"]).strip()
        raise KeyError((obs_id, hdu_type))


def _open(path: Path) -> fits.HDUList:
    if path.suffix == ".gz":
        with gzip.open(path) as stream:
            return fits.HDUList.fromstring(stream.read())
    return fits.open(path, memmap=False)


def _subset_events(hdulist: fits.HDUList, max_events: int | None) -> None:
    if max_events is None or "EVENTS" not in hdulist:
        return
    events = hdulist["EVENTS"]
    if len(events.data) > max_events:
        # Every k-th event: keeps the whole field of view and energy range.
        step = len(events.data) // max_events
        hdulist["EVENTS"] = fits.BinTableHDU(events.data[::step][:max_events].copy(), header=events.header)


def build_store(
    source: Path,
    obs_ids: Iterable[int],
    dest: Path,
    *,
    kind: str,
    max_events: int | None = None,
) -> BaseStore:
    """Write a store with the given runs of ``source`` (uncompressed, relative paths) into ``dest``."""
    obs_ids = tuple(int(i) for i in obs_ids)
    hdu_index = Table.read(source / "hdu-index.fits.gz", hdu=1)
    obs_index = Table.read(source / "obs-index.fits.gz", hdu=1)
    hdu_index = hdu_index[np.isin(hdu_index["OBS_ID"], obs_ids)]
    obs_index = obs_index[np.isin(obs_index["OBS_ID"], obs_ids)]
    dest.mkdir(parents=True)
    written: dict[Path, str] = {}
    file_dirs, file_names = [], []
    for row in hdu_index:
        src = (source / str(row["FILE_DIR"]).strip() / str(row["FILE_NAME"]).strip()).resolve()
        if src not in written:
            folder = "irf" if src.name.startswith("irf") else "data"
            name = src.name.removesuffix(".gz")
            (dest / folder).mkdir(exist_ok=True)
            with _open(src) as hdulist:
                _subset_events(hdulist, max_events)
                hdulist.writeto(dest / folder / name)
            written[src] = f"{folder}/{name}"
        folder, name = written[src].split("/")
        file_dirs.append(folder)
        file_names.append(name)
    hdu_index["FILE_DIR"] = file_dirs
    hdu_index["FILE_NAME"] = file_names
    hdu_index.write(dest / "hdu-index.fits")
    obs_index.write(dest / "obs-index.fits")
    return BaseStore(dest, obs_ids, kind)


def copy_store(base: BaseStore, dest: Path) -> BaseStore:
    """A copy of ``base`` whose files are hard links (edits replace files, never write through)."""
    shutil.copytree(base.path, dest, copy_function=os.link)
    return BaseStore(dest, base.obs_ids, base.kind)


# -- edits -------------------------------------------------------------------------------------
# Each edit rewrites the file it changes as a new file (unlink first: the old name is a hard link).

def _rewrite(path: Path, change: Callable[[fits.HDUList], None]) -> None:
    with fits.open(path, memmap=False) as hdulist:
        hdulist = fits.HDUList([h.copy() for h in hdulist])
    change(hdulist)
    path.unlink()
    hdulist.writeto(path)


def set_header(path: Path, hdu: str | int, **cards) -> None:
    """Set (value) or delete (None) header cards of one HDU."""

    def change(hdulist):
        header = hdulist[hdu].header
        for key, value in cards.items():
            key = key.replace("_dash_", "-")
            if value is None:
                header.pop(key, None)
            else:
                header[key] = value

    _rewrite(path, change)


def edit_column(path: Path, hdu: str | int, column: str, func: Callable[[np.ndarray], np.ndarray],
                *, row: int | None = None) -> None:
    """Replace a column's values (or one row's array cell) by ``func(values)``."""

    def change(hdulist):
        data = hdulist[hdu].data
        if row is None:
            data[column] = func(np.array(data[column]))
        else:
            data[column][row] = func(np.array(data[column][row]))

    _rewrite(path, change)


def edit_table(path: Path, hdu: str | int, func: Callable[[Table], Table]) -> None:
    """Replace a whole table HDU (e.g. to change units or column layout) by ``func(table)``."""

    def change(hdulist):
        old = hdulist[hdu]
        table = func(Table.read(old))
        new = fits.table_to_hdu(table)
        for key in ("EXTNAME", "HDUCLASS", "HDUCLAS1", "HDUCLAS2", "HDUCLAS3", "HDUCLAS4", "FOVALIGN",
                    "LO_THRES", "HI_THRES", "CREATOR", "HDUVERS"):
            if key in old.header:
                new.header[key] = old.header[key]
        hdulist[hdu] = new

    _rewrite(path, change)


def overwrite_bytes(path: Path, offset: int, data: bytes) -> None:
    content = bytearray(path.read_bytes())
    content[offset:offset + len(data)] = data
    path.unlink()
    path.write_bytes(bytes(content))


def truncate(path: Path, size: int) -> None:
    content = path.read_bytes()[:size]
    path.unlink()
    path.write_bytes(content)


def data_offset(path: Path, hdu: str | int) -> tuple[int, int]:
    """Byte offset and size (without the padding to 2880 bytes) of an HDU's data part."""
    with fits.open(path, memmap=False) as hdulist:
        return hdulist[hdu].fileinfo()["datLoc"], hdulist[hdu].size


def edit_index(path: Path, func: Callable[[Table], Table]) -> None:
    """Rewrite an index table (``hdu-index.fits`` / ``obs-index.fits``)."""
    table = func(Table.read(path, hdu=1))
    path.unlink()
    table.write(path)
