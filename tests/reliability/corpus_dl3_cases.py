"""Damaged DL3 stores of the corpus: what is broken, and what ``xgamma run`` must say about it.

Each case edits a hard-linked copy of a base store (`corpus_stores`). Needles are the words the
one error line must contain: the file, and the HDU / column / key at fault.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from corpus_runner import Error, Same, Succeeds
from corpus_stores import (
    BaseStore,
    data_offset,
    edit_column,
    edit_index,
    edit_table,
    overwrite_bytes,
    set_header,
    truncate,
)


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[BaseStore], None] | None
    expect: Error | Same | Succeeds
    store: str = "hess"
    stages: str = "maps"
    config: Callable[[dict], dict] | None = None
    marks: tuple = field(default=())


HESS_RUN = 23523
HESS_FILE = "hess_dl3_dr1_obs_id_023523.fits"
CTA_RUN = 110380
CTA_EVENTS = "gps_baseline_110380.fits"
CTA_IRF = "irf_file.fits"


def _file(store: BaseStore, hdu_type: str = "events") -> Path:
    return store.run_file(store.obs_ids[0], hdu_type)


def _some(values: np.ndarray, value, rows: str) -> np.ndarray:
    """Set 100 rows spread over the table, one in ten entries ("10%") or all of them to ``value``."""
    out = values.copy()
    flat = out.reshape(-1) if out.ndim else out
    if rows == "all":
        flat[...] = value
    elif rows == "10%":
        flat[::10] = value if not callable(value) else value(flat[::10])
    else:
        flat[:: max(1, flat.size // 100)][:100] = value
    return out


def column_values(column: str, value, rows: str, hdu: str = "EVENTS", hdu_type: str = "events") -> Callable:
    def damage(store: BaseStore) -> None:
        row = None if hdu == "EVENTS" or hdu == "GTI" else 0
        edit_column(_file(store, hdu_type), hdu, column, lambda v: _some(v, value, rows), row=row)

    return damage


def drop_column(column: str, hdu: str = "EVENTS", hdu_type: str = "events") -> Callable:
    def damage(store: BaseStore) -> None:
        edit_table(_file(store, hdu_type), hdu, lambda t: t[[c for c in t.colnames if c != column]])

    return damage


def column_unit(column: str, unit: str | None, factor: float = 1.0, hdu: str = "EVENTS",
                hdu_type: str = "events") -> Callable:
    def damage(store: BaseStore) -> None:
        def change(table: Table) -> Table:
            values = np.asarray(table[column]) * factor
            table[column] = values.astype(table[column].dtype)
            table[column].unit = unit
            return table

        edit_table(_file(store, hdu_type), hdu, change)

    return damage


def rename_columns(mapping: dict[str, str], hdu: str = "EVENTS", hdu_type: str = "events") -> Callable:
    def damage(store: BaseStore) -> None:
        def change(table: Table) -> Table:
            table.rename_columns(list(mapping), list(mapping.values()))
            return table

        edit_table(_file(store, hdu_type), hdu, change)

    return damage


def header(hdu: str, hdu_type: str = "events", **cards) -> Callable:
    def damage(store: BaseStore) -> None:
        set_header(_file(store, hdu_type), hdu, **cards)

    return damage


def truncate_in(hdu: str | int, where: str, hdu_type: str = "events") -> Callable:
    """Cut the file inside ``hdu``: its header, the middle of its data or 10 bytes before its end."""

    def damage(store: BaseStore) -> None:
        path = _file(store, hdu_type)
        start, span = data_offset(path, hdu)
        size = {"header": start - 1000, "data": start + span // 2, "end": start + span - 10,
                "primary": 2880}[where]
        truncate(path, size)

    return damage


def bytes_ff(hdu: str | int, part: str = "data", hdu_type: str = "events", size: int = 4096) -> Callable:
    def damage(store: BaseStore) -> None:
        path = _file(store, hdu_type)
        start, span = data_offset(path, hdu)
        offset = start + min(1000, span // 4) if part == "data" else start - 2000
        overwrite_bytes(path, offset, b"\xff" * min(size, span))

    return damage


def naxis2(hdu: str, extra: int, hdu_type: str = "events") -> Callable:
    """Announce ``extra`` more rows than the data holds (the header card edited in place)."""

    def damage(store: BaseStore) -> None:
        from astropy.io import fits

        path = _file(store, hdu_type)
        with fits.open(path, memmap=False) as hdulist:
            rows = hdulist[hdu].header["NAXIS2"]
            start = hdulist[hdu].fileinfo()["hdrLoc"]
        raw = bytearray(path.read_bytes())
        old = f"NAXIS2  = {rows:>20d}".encode()
        index = raw.index(old, start)
        raw[index:index + len(old)] = f"NAXIS2  = {rows + extra:>20d}".encode()
        path.unlink()
        path.write_bytes(bytes(raw))

    return damage


def replace_file(kind: str, hdu_type: str = "events") -> Callable:
    def damage(store: BaseStore) -> None:
        path = _file(store, hdu_type)
        path.unlink()
        if kind == "missing":
            return
        if kind == "directory":
            path.mkdir()
        elif kind == "loop":
            path.symlink_to(path.name)
        elif kind == "dangling":
            path.symlink_to(path.parent / "nowhere.fits")
        elif kind == "text":
            path.write_text("SIMPLE = this is not FITS\n")
        elif kind == "empty":
            path.write_bytes(b"")

    return damage


# -- index tables ------------------------------------------------------------------------------

def obs_row(column: str, value) -> Callable:
    def damage(store: BaseStore) -> None:
        def change(table: Table) -> Table:
            table[column] = table[column].astype(float)
            table[column][0] = value
            return table

        edit_index(store.path / "obs-index.fits", change)

    return damage


def obs_column_unit(column: str, unit: str, factor: float) -> Callable:
    def damage(store: BaseStore) -> None:
        def change(table: Table) -> Table:
            values = np.asarray(table[column], dtype=float) * factor
            table[column] = values
            table[column].unit = unit
            return table

        edit_index(store.path / "obs-index.fits", change)

    return damage


def index_change(name: str, change: Callable[[Table], Table]) -> Callable:
    def damage(store: BaseStore) -> None:
        edit_index(store.path / name, change)

    return damage


def drop_index_column(name: str, column: str) -> Callable:
    return index_change(name, lambda t: t[[c for c in t.colnames if c != column]])


def duplicate_row(name: str, where: Callable[[Table], np.ndarray]) -> Callable:
    def change(table: Table) -> Table:
        from astropy.table import vstack

        return vstack([table, table[where(table)]])

    return index_change(name, change)


def hdu_rows(change_row: Callable[[Table, int], None], hdu_type: str) -> Callable:
    def change(table: Table) -> Table:
        rows = np.flatnonzero((table["OBS_ID"] == table["OBS_ID"][0]) &
                              (np.char.strip(table["HDU_TYPE"].astype(str)) == hdu_type))
        change_row(table, int(rows[0]))
        return table

    return index_change("hdu-index.fits", change)


def _set(column: str, value) -> Callable[[Table, int], None]:
    def change(table: Table, row: int) -> None:
        table[column] = table[column].astype(object if isinstance(value, str) else table[column].dtype)
        table[column][row] = value
        table[column] = table[column].astype(str) if isinstance(value, str) else table[column]

    return change


def _remove(table: Table, row: int) -> None:
    table.remove_row(row)


def index_file(name: str, kind: str) -> Callable:
    def damage(store: BaseStore) -> None:
        path = store.path / name
        content = path.read_bytes()
        if kind == "gzip":
            path.unlink()
            (store.path / f"{name}.gz").write_bytes(gzip.compress(content))
        elif kind == "both":
            (store.path / f"{name}.gz").write_bytes(gzip.compress(content))
        elif kind == "gzip-truncated":
            path.unlink()
            (store.path / f"{name}.gz").write_bytes(gzip.compress(content)[:-200])
        elif kind == "missing":
            path.unlink()
        elif kind == "text":
            path.unlink()
            path.write_text("OBS_ID HDU_TYPE\n1 events\n")
        elif kind == "truncated":
            start, span = data_offset(path, 1)
            truncate(path, start + span // 2)
        elif kind == "ff":
            overwrite_bytes(path, 2880 * 2 + 10, b"\xff" * 2000)

    return damage


def gzip_file(hdu_type: str) -> Callable:
    """Gzip a data file and point the HDU index at the ``.gz`` name."""

    def damage(store: BaseStore) -> None:
        path = _file(store, hdu_type)
        content = path.read_bytes()
        path.unlink()
        Path(f"{path}.gz").write_bytes(gzip.compress(content))

        def change(table: Table) -> Table:
            names = [f"{n.strip()}.gz" if n.strip() == path.name else n for n in table["FILE_NAME"].astype(str)]
            table["FILE_NAME"] = names
            return table

        edit_index(store.path / "hdu-index.fits", change)

    return damage


# -- IRF tables --------------------------------------------------------------------------------

def axis(hdu: str, prefix: str, how: str, hdu_type: str) -> Callable:
    """Damage the ``{prefix}_LO`` / ``{prefix}_HI`` columns of an IRF axis."""

    def damage(store: BaseStore) -> None:
        def change(table: Table) -> Table:
            lo = np.array(table[f"{prefix}_LO"][0], dtype=float)
            hi = np.array(table[f"{prefix}_HI"][0], dtype=float)
            if how == "nan":
                lo[3] = np.nan
            elif how == "descending":
                lo, hi = hi[::-1].copy(), lo[::-1].copy()
            elif how == "non-monotonic":
                lo[[2, 3]], hi[[2, 3]] = lo[[3, 2]], hi[[3, 2]]
            elif how == "swapped":
                lo, hi = hi, lo
            elif how == "zero-width":
                hi[2] = lo[2]
            elif how == "gap":
                lo[3] += 0.3 * (hi[3] - lo[3])
            table[f"{prefix}_LO"][0] = lo
            table[f"{prefix}_HI"][0] = hi
            return table

        edit_table(_file(store, hdu_type), hdu, change)

    return damage


def axis_units(hdu: str, prefix: str, hdu_type: str, lo_unit: str | None, hi_unit: str | None,
               factor: float = 1.0) -> Callable:
    def damage(store: BaseStore) -> None:
        def change(table: Table) -> Table:
            for suffix, unit in (("_LO", lo_unit), ("_HI", hi_unit)):
                column = f"{prefix}{suffix}"
                table[column] = np.asarray(table[column]) * factor
                table[column].unit = unit
            return table

        edit_table(_file(store, hdu_type), hdu, change)

    return damage


def axis_drop_bin(hdu: str, prefix: str, hdu_type: str) -> Callable:
    """One axis bin fewer than the data cell has."""

    def damage(store: BaseStore) -> None:
        def change(table: Table) -> Table:
            for suffix in ("_LO", "_HI"):
                column = f"{prefix}{suffix}"
                table[column] = table[column][:, :-1]
            return table

        edit_table(_file(store, hdu_type), hdu, change)

    return damage


def _negate(values):
    return -np.abs(values)


def _with_safe_energy(config: dict) -> dict:
    config["maps"]["safe_energy"] = "aeff-default"
    return config


# -- the cases ---------------------------------------------------------------------------------

def _cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.append

    # Events: non-finite or impossible values, in 100 rows or all of them.
    for column in ("RA", "DEC", "ENERGY", "TIME"):
        for value, label in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")):
            for rows in ("100", "all"):
                add(Case(f"events-{column}-{label}-{rows}", column_values(column, value, rows),
                         Error(HESS_FILE, column, "EVENTS")))
    for value, rows in ((-1.0, "100"), (-1.0, "all"), (0.0, "100")):
        add(Case(f"events-ENERGY-{value:g}-{rows}", column_values("ENERGY", value, rows),
                 Error(HESS_FILE, "ENERGY")))
    add(Case("events-DEC-100-100", column_values("DEC", 100.0, "100"), Error(HESS_FILE, "DEC", "90")))
    add(Case("events-DEC--95-all", column_values("DEC", -95.0, "all"), Error(HESS_FILE, "DEC", "-90")))
    for column in ("RA", "DEC", "ENERGY", "TIME"):
        add(Case(f"events-no-{column}", drop_column(column), Error(HESS_FILE, column, "EVENTS")))
    for column, unit in (("ENERGY", "deg"), ("RA", "TeV"), ("TIME", "m")):
        add(Case(f"events-{column}-unit-{unit}", column_unit(column, unit), Error(HESS_FILE, column, unit)))
    add(Case("events-ENERGY-in-GeV", column_unit("ENERGY", "GeV", 1000.0), Same()))
    add(Case("events-lower-case-columns", rename_columns({"RA": "ra", "DEC": "dec"}), Same()))
    add(Case("events-no-rows", lambda s: edit_table(_file(s), "EVENTS", lambda t: t[:0]),
             Succeeds(check=_fewer_counts)))
    add(Case("events-hdu-renamed", header("EVENTS", EXTNAME="NOTEVENTS"), Error(HESS_FILE, "events")))
    for kind in ("missing", "directory", "loop", "dangling", "text", "empty"):
        add(Case(f"events-file-{kind}", replace_file(kind), Error(HESS_FILE)))
    for where in ("primary", "header", "data", "end"):
        add(Case(f"events-truncated-{where}", truncate_in("EVENTS", where), Error(HESS_FILE)))
    # The next HDUs are read as event rows: their bytes make impossible values.
    add(Case("events-naxis2-too-large", naxis2("EVENTS", 5000), Error(HESS_FILE, "EVENTS")))
    add(Case("cta-events-naxis2-too-large", naxis2("EVENTS", 5000), Error(CTA_EVENTS, "EVENTS", "truncated"),
             store="cta"))
    add(Case("events-ff-data", bytes_ff("EVENTS"), Error(HESS_FILE, "EVENTS")))
    # Damaged cards that are not read (comments, keys xgamma does not use) do not matter.
    add(Case("events-ff-header-comments", bytes_ff("EVENTS", "header", size=400), Same()))
    add(Case("events-ff-header-columns", _ff_card("TTYPE3"), Error(HESS_FILE)))
    add(Case("events-DEC-unit-rad", column_unit("DEC", "rad", np.pi / 180), Same()))

    # Good-time intervals (used when ONTIME is absent).
    no_ontime = _combine(obs_row_drop("ONTIME"), header("EVENTS", ONTIME=None))
    add(Case("ontime-from-gti", no_ontime, Succeeds(check=_close_to_base)))
    add(Case("gti-reversed", _combine(no_ontime, _reverse_gti), Error(HESS_FILE, "GTI", "STOP")))
    add(Case("gti-nan", _combine(no_ontime, column_values("START", np.nan, "all", hdu="GTI", hdu_type="gti")),
             Error(HESS_FILE, "GTI", "START")))

    # Obs index: times, pointings, duplicated or missing rows, units, damaged files.
    for key, values in (("LIVETIME", (0.0, -100.0, np.nan, 1e9)), ("ONTIME", (0.0, -1.0, np.nan, np.inf)),
                        ("RA_PNT", (400.0, -400.0, np.nan, np.inf)), ("DEC_PNT", (100.0, -91.0, np.nan)),
                        ("DEADC", (0.0, 1.5, np.nan))):
        for value in values:
            damage = obs_row(key, value)
            # NaN is a missing value in a FITS table: the events header gives it (the same one here).
            expect = Same() if np.isnan(value) else Error("obs-index.fits", key, str(HESS_RUN))
            if key == "DEADC":  # used only without LIVETIME
                damage = _combine(obs_row_drop("LIVETIME"), header("EVENTS", LIVETIME=None), damage)
            add(Case(f"obs-{key}-{value:g}", damage, expect))
    add(Case("obs-LIVETIME-above-ONTIME", obs_row("LIVETIME", 1700.0), Error("obs-index.fits", "LIVETIME",
                                                                             "ONTIME")))
    add(Case("obs-duplicate-row", duplicate_row("obs-index.fits", lambda t: t["OBS_ID"] == HESS_RUN),
             Error("obs-index.fits", str(HESS_RUN))))
    add(Case("obs-row-missing", index_change("obs-index.fits", lambda t: t[t["OBS_ID"] != HESS_RUN]),
             Error(str(HESS_RUN))))
    add(Case("obs-OBS_ID-fractional", obs_row("OBS_ID", HESS_RUN + 0.5), Error("obs-index.fits", "OBS_ID")))
    for column in ("RA_PNT", "LIVETIME", "ONTIME"):  # read from the events header instead
        add(Case(f"obs-no-{column}", drop_index_column("obs-index.fits", column), Same()))
    add(Case("obs-no-OBS_ID", drop_index_column("obs-index.fits", "OBS_ID"), Error("obs-index.fits", "OBS_ID")))
    add(Case("obs-LIVETIME-in-min", obs_column_unit("LIVETIME", "min", 1 / 60), Same()))
    add(Case("obs-RA_PNT-in-rad", obs_column_unit("RA_PNT", "rad", np.pi / 180), Same()))
    add(Case("obs-LIVETIME-in-deg", obs_column_unit("LIVETIME", "deg", 1.0), Error("obs-index.fits", "LIVETIME",
                                                                                   "deg")))
    for kind in ("text", "truncated", "ff", "both", "gzip-truncated", "missing"):
        add(Case(f"obs-index-{kind}", index_file("obs-index.fits", kind), Error("obs-index")))
    add(Case("obs-index-gzip", index_file("obs-index.fits", "gzip"), Same()))

    # HDU index.
    add(Case("hdu-two-events-rows", duplicate_row("hdu-index.fits", _events_row),
             Error("hdu-index.fits", "events", str(HESS_RUN))))
    add(Case("hdu-file-missing", hdu_rows(_set("FILE_NAME", "nosuch.fits"), "aeff"), Error("nosuch.fits")))
    add(Case("hdu-hdu-name-wrong", hdu_rows(_set("HDU_NAME", "NOSUCH"), "aeff"), Error("NOSUCH", HESS_FILE)))
    add(Case("hdu-class-unknown", hdu_rows(_set("HDU_CLASS", "aeff_3d"), "aeff"), Error("aeff_3d")))
    add(Case("hdu-class-bkg_2d-on-3d", hdu_rows(_set("HDU_CLASS", "bkg_2d"), "bkg"), Error(HESS_FILE, "THETA")))
    for hdu_type in ("events", "aeff", "bkg"):
        add(Case(f"hdu-no-{hdu_type}-row", hdu_rows(_remove, hdu_type), Error(hdu_type, str(HESS_RUN))))
    for column in ("FILE_NAME", "HDU_CLASS"):
        add(Case(f"hdu-no-{column}", drop_index_column("hdu-index.fits", column), Error("hdu-index.fits", column)))
    for kind in ("text", "truncated", "both"):
        add(Case(f"hdu-index-{kind}", index_file("hdu-index.fits", kind), Error("hdu-index")))
    add(Case("hdu-index-gzip", index_file("hdu-index.fits", "gzip"), Same()))
    add(Case("hdu-base-dir-missing", _base_dir("nowhere"), Error("nowhere")))
    add(Case("data-file-gzipped", gzip_file("events"), Same()))

    # IRF values: effective area and background of one of the two runs.
    for hdu, column, hdu_type in (("AEFF", "EFFAREA", "aeff"), ("BKG", "BKG", "bkg")):
        for label, value, rows in (("nan-10%", np.nan, "10%"), ("nan-all", np.nan, "all"), ("inf-10%", np.inf, "10%"),
                                   ("negative-10%", _negate, "10%"), ("negative-all", _negate, "all"),
                                   ("zero-all", 0.0, "all")):
            if label == "negative-all":
                value = _negate
                damage = _column_func(hdu, column, hdu_type, _negate)
            else:
                damage = column_values(column, value, rows, hdu=hdu, hdu_type=hdu_type)
            add(Case(f"irf-{column}-{label}", damage, Error(HESS_FILE, column)))
    for label, value, rows in (("nan-10%", np.nan, "10%"), ("zero-all", 0.0, "all")):
        add(Case(f"irf-RPSF-{label}", column_values("RPSF", value, rows, hdu="PSF", hdu_type="psf"),
                 Error(HESS_FILE, "RPSF"), stages="full"))
    add(Case("irf-RPSF-negative-all", _column_func("PSF", "RPSF", "psf", _negate), Error(HESS_FILE, "RPSF"),
             stages="full"))
    add(Case("irf-MATRIX-nan-unused", column_values("MATRIX", np.nan, "10%", hdu="EDISP", hdu_type="edisp"),
             Same()))

    # IRF axes.
    for hdu, prefix, hdu_type, stages in (("AEFF", "ENERG", "aeff", "maps"), ("AEFF", "THETA", "aeff", "maps"),
                                          ("BKG", "DETX", "bkg", "maps"), ("BKG", "ENERG", "bkg", "maps"),
                                          ("PSF", "RAD", "psf", "full"), ("PSF", "THETA", "psf", "full")):
        for how in ("nan", "descending", "non-monotonic", "swapped", "zero-width", "gap"):
            if prefix == "THETA" and how in ("swapped", "zero-width", "gap"):
                continue  # H.E.S.S. offsets are nodes (THETA_LO == THETA_HI): nothing to swap
            add(Case(f"axis-{hdu}-{prefix}-{how}", axis(hdu, prefix, how, hdu_type), Error(HESS_FILE, prefix),
                     stages=stages))
    add(Case("axis-THETA-units-differ", axis_units("AEFF", "THETA", "aeff", "TeV", "deg"),
             Error(HESS_FILE, "THETA_LO", "TeV")))
    add(Case("axis-THETA-in-rad", axis_units("AEFF", "THETA", "aeff", "rad", "rad", np.pi / 180), Same()))
    add(Case("axis-ENERG-in-deg", axis_units("AEFF", "ENERG", "aeff", "deg", "deg"), Error(HESS_FILE, "ENERG_LO")))
    add(Case("axis-DETX-no-unit", axis_units("BKG", "DETX", "bkg", None, None), Error(HESS_FILE, "DETX_LO")))
    add(Case("axis-ENERG-bin-missing", axis_drop_bin("AEFF", "ENERG", "aeff"), Error(HESS_FILE, "EFFAREA", "shape")))
    add(Case("irf-EFFAREA-unit-TeV", column_unit("EFFAREA", "TeV", hdu="AEFF", hdu_type="aeff"),
             Error(HESS_FILE, "EFFAREA", "TeV")))
    add(Case("irf-EFFAREA-in-cm2", column_unit("EFFAREA", "cm2", 1e4, hdu="AEFF", hdu_type="aeff"), Same()))
    add(Case("irf-BKG-unit-no-sr", column_unit("BKG", "s-1 MeV-1", hdu="BKG", hdu_type="bkg"),
             Error(HESS_FILE, "BKG")))
    add(Case("irf-aeff-hdu-renamed", header("AEFF", "aeff", EXTNAME="NOTAEFF"), Error(HESS_FILE, "aeff")))
    add(Case("irf-FOVALIGN-unknown", header("BKG", "bkg", FOVALIGN="FOO"), Error(HESS_FILE, "FOVALIGN")))
    add(Case("irf-bkg-naxis2", naxis2("BKG", 1, "bkg"), Error(HESS_FILE, "truncated")))
    for value in ("abc", -1.0, 200.0):
        add(Case(f"irf-LO_THRES-{value}", header("AEFF", "aeff", LO_THRES=value), Error(HESS_FILE, "LO_THRES"),
                 config=_with_safe_energy))

    # CTA: events per run, one IRF file shared by the runs (3-Gauss PSF, CTA background units).
    add(Case("cta-events-ENERGY-nan", column_values("ENERGY", np.nan, "100"), Error(CTA_EVENTS, "ENERGY"),
             store="cta"))
    add(Case("cta-RA_PNT-400", obs_row("RA_PNT", 400.0), Error("obs-index.fits", "RA_PNT"), store="cta"))
    add(Case("cta-DEC_PNT-100", obs_row("DEC_PNT", 100.0), Error("obs-index.fits", "DEC_PNT"), store="cta"))
    for column, hdu, hdu_type, label, damage_value, rows, stages in (
        ("EFFAREA", "EFFECTIVE AREA", "aeff", "nan-10%", np.nan, "10%", "maps"),
        ("BGD", "BACKGROUND", "bkg", "zero-all", 0.0, "all", "maps"),
        ("BGD", "BACKGROUND", "bkg", "inf-10%", np.inf, "10%", "maps"),
        ("SIGMA_1", "POINT SPREAD FUNCTION", "psf", "zero-all", 0.0, "all", "full"),
        ("SIGMA_1", "POINT SPREAD FUNCTION", "psf", "nan-10%", np.nan, "10%", "full"),
        ("SCALE", "POINT SPREAD FUNCTION", "psf", "zero-all", 0.0, "all", "full"),
    ):
        add(Case(f"cta-irf-{column}-{label}", column_values(column, damage_value, rows, hdu=hdu, hdu_type=hdu_type),
                 Error(CTA_IRF, column), store="cta", stages=stages))
    add(Case("cta-irf-BGD-negative-all", _column_func("BACKGROUND", "BGD", "bkg", _negate), Error(CTA_IRF, "BGD"),
             store="cta"))
    add(Case("cta-THETA-units-differ", axis_units("EFFECTIVE AREA", "THETA", "aeff", "deg", "TeV"),
             Error(CTA_IRF, "THETA_HI"), store="cta"))
    add(Case("cta-irf-truncated", truncate_in("BACKGROUND", "data", "bkg"), Error(CTA_IRF), store="cta"))
    add(Case("cta-irf-ff", bytes_ff("EFFECTIVE AREA", hdu_type="aeff", size=512), Error(CTA_IRF, "EFFECTIVE AREA"),
             store="cta"))
    add(Case("cta-irf-gzipped", gzip_file("aeff"), Same(), store="cta"))
    add(Case("cta-events-truncated", truncate_in("EVENTS", "data"), Error(CTA_EVENTS), store="cta"))
    return cases


def obs_row_drop(column: str) -> Callable:
    return drop_index_column("obs-index.fits", column)


def _combine(*damages: Callable) -> Callable:
    def damage(store: BaseStore) -> None:
        for d in damages:
            d(store)

    return damage


def _column_func(hdu: str, column: str, hdu_type: str, func: Callable) -> Callable:
    def damage(store: BaseStore) -> None:
        edit_column(_file(store, hdu_type), hdu, column, func, row=0)

    return damage


def _ff_card(key: str) -> Callable:
    """0xFF bytes over the value of one header card of the EVENTS HDU."""

    def damage(store: BaseStore) -> None:
        path = _file(store)
        raw = path.read_bytes()
        index = raw.index(f"{key:<8}= ".encode())
        overwrite_bytes(path, index + 10, b"\xff" * 20)

    return damage


def _reverse_gti(store: BaseStore) -> None:
    def change(table: Table) -> Table:
        table["START"], table["STOP"] = table["STOP"].copy(), table["START"].copy()
        return table

    edit_table(_file(store, "gti"), "GTI", change)


def _events_row(table: Table) -> np.ndarray:
    return (table["OBS_ID"] == HESS_RUN) & (np.char.strip(table["HDU_TYPE"].astype(str)) == "events")


def _base_dir(value: str) -> Callable:
    def damage(store: BaseStore) -> None:
        def change(table: Table) -> Table:
            table.meta["BASE_DIR"] = value
            return table

        edit_index(store.path / "hdu-index.fits", change)

    return damage


def _fewer_counts(output: Path, base: Path, outcome) -> None:
    import json

    got = json.loads((output / "summary.json").read_text())["maps"]["total_counts"]
    expected = json.loads((base / "summary.json").read_text())["maps"]["total_counts"]
    assert 0 < got < expected


def _close_to_base(output: Path, base: Path, outcome) -> None:
    import json

    got = json.loads((output / "summary.json").read_text())["maps"]
    expected = json.loads((base / "summary.json").read_text())["maps"]
    assert got["total_counts"] == expected["total_counts"]
    # ONTIME from the GTIs: the H.E.S.S. GTI sum equals ONTIME to the second.
    np.testing.assert_allclose(got["total_background"], expected["total_background"], rtol=1e-3)


DL3_CASES = _cases()
assert len({c.name for c in DL3_CASES}) == len(DL3_CASES), "case names must be unique"
