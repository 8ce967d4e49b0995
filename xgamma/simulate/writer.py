"""Write simulated observations as GADF DL3 FITS files and index tables.

Layout of a simulated data store::

    PATH/hdu-index.fits.gz
    PATH/obs-index.fits.gz
    PATH/data/obs_000001.fits     EVENTS, GTI, EFFECTIVE AREA, POINT SPREAD FUNCTION,
                                  ENERGY DISPERSION, BACKGROUND

Column names, units and header keywords follow the GADF specification (version 0.2/0.3) as
read by Gammapy and by ``xgamma.io.datastore``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from xgamma.simulate.irfs import AnalyticIRF

__all__ = [
    "ObservationInfo",
    "SITE",
    "MJDREF",
    "make_events_hdu",
    "make_gti_hdu",
    "make_irf_hdus",
    "write_observation",
    "write_index_tables",
    "staged_folder",
]

#: Array location written as GEOLON/GEOLAT/ALTITUDE (a CTA-South-like site): deg, deg, m.
SITE = {"GEOLON": -70.3167, "GEOLAT": -24.6833, "ALTITUDE": 2150.0}
#: Reference epoch of event times (MJD, TT), split as MJDREFI + MJDREFF.
MJDREF = (51544, 0.5)

_COMMON = {
    "HDUCLASS": "GADF",
    "HDUDOC": "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats",
    "HDUVERS": "0.2",
}
_TELESCOP = "XGAMMA-SIM"


@dataclass(frozen=True)
class ObservationInfo:
    """Metadata of one simulated observation (all angles in deg, times in s)."""

    obs_id: int
    pointing: SkyCoord
    tstart: float
    ontime: float
    deadc: float
    alt: float
    az: float
    object_name: str
    target: SkyCoord | None = None
    n_tels: int = 4

    @property
    def tstop(self) -> float:
        return self.tstart + self.ontime

    @property
    def livetime(self) -> float:
        return self.ontime * self.deadc

    @property
    def filename(self) -> str:
        return f"obs_{self.obs_id:06d}.fits"


def _time_header() -> dict:
    return {"MJDREFI": MJDREF[0], "MJDREFF": MJDREF[1], "TIMEUNIT": "s", "TIMESYS": "TT",
            "TIMEREF": "LOCAL"}


def _obs_header(info: ObservationInfo) -> dict:
    icrs, gal = info.pointing.icrs, info.pointing.galactic
    target = {} if info.target is None else {"RA_OBJ": info.target.icrs.ra.deg,
                                             "DEC_OBJ": info.target.icrs.dec.deg}
    return {
        "TELESCOP": _TELESCOP,
        "OBS_ID": info.obs_id,
        "TSTART": info.tstart,
        "TSTOP": info.tstop,
        **_time_header(),
        "ONTIME": info.ontime,
        "LIVETIME": info.livetime,
        "DEADC": info.deadc,
        "TELAPSE": info.ontime,
        "OBJECT": info.object_name,
        **target,
        "RA_PNT": icrs.ra.deg,
        "DEC_PNT": icrs.dec.deg,
        "GLON_PNT": gal.l.deg,
        "GLAT_PNT": gal.b.deg,
        "ALT_PNT": info.alt,
        "AZ_PNT": info.az,
        "RADECSYS": "ICRS",
        "EQUINOX": 2000.0,
        "OBS_MODE": "POINTING",
        "N_TELS": info.n_tels,
        **SITE,
        "EUNIT": "TeV",
    }


def make_events_hdu(info: ObservationInfo, *, time: np.ndarray, ra: np.ndarray, dec: np.ndarray,
                    energy: np.ndarray) -> fits.BinTableHDU:
    """EVENTS HDU: EVENT_ID, TIME (s), RA, DEC (deg), ENERGY (TeV); GADF header keywords."""
    n = time.size
    cols = [
        # Big-endian arrays: astropy then writes them without a slow byte-swapping loop.
        fits.Column("EVENT_ID", "K", array=np.arange(1, n + 1, dtype=">i8")),
        fits.Column("TIME", "D", unit="s", array=time.astype(">f8")),
        # float32 as in H.E.S.S./CTA files; ~0.01 arcsec resolution is plenty.
        fits.Column("RA", "E", unit="deg", array=ra.astype(">f4")),
        fits.Column("DEC", "E", unit="deg", array=dec.astype(">f4")),
        fits.Column("ENERGY", "E", unit="TeV", array=energy.astype(">f4")),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    hdu.header.update({**_COMMON, "HDUCLAS1": "EVENTS", **_obs_header(info)})
    return hdu


def make_gti_hdu(info: ObservationInfo) -> fits.BinTableHDU:
    """GTI HDU with one interval [TSTART, TSTOP] (s)."""
    cols = [fits.Column("START", "D", unit="s", array=[info.tstart]),
            fits.Column("STOP", "D", unit="s", array=[info.tstop])]
    hdu = fits.BinTableHDU.from_columns(cols, name="GTI")
    hdu.header.update({**_COMMON, "HDUCLAS1": "GTI", "OBS_ID": info.obs_id, **_time_header()})
    return hdu


def _axis_columns(prefix: str, edges: u.Quantity | np.ndarray, unit: str | None) -> list[fits.Column]:
    """``PREFIX_LO``/``PREFIX_HI`` columns of a GADF IRF axis (one row, float32 vectors)."""
    values = edges.to_value(unit) if isinstance(edges, u.Quantity) else np.asarray(edges)
    lo, hi = values[:-1].astype(">f4"), values[1:].astype(">f4")
    fmt = f"{lo.size}E"
    return [fits.Column(f"{prefix}_LO", fmt, unit=unit, array=lo[np.newaxis]),
            fits.Column(f"{prefix}_HI", fmt, unit=unit, array=hi[np.newaxis])]


def _data_column(name: str, data: np.ndarray, unit: str | None) -> fits.Column:
    """An IRF data column; ``data`` is in numpy (C) order, TDIM is the reversed shape."""
    data = np.ascontiguousarray(data, dtype=">f4")  # big-endian: astropy writes it as is
    dim = "(" + ",".join(str(s) for s in data.shape[::-1]) + ")"
    return fits.Column(name, f"{data.size}E", unit=unit, dim=dim, array=data[np.newaxis])


def _irf_hdu(columns: list[fits.Column], extname: str, clas2: str, clas4: str, extra: dict
             ) -> fits.BinTableHDU:
    hdu = fits.BinTableHDU.from_columns(columns, name=extname)
    hdu.header.update({**_COMMON, "HDUCLAS1": "RESPONSE", "HDUCLAS2": clas2,
                       "HDUCLAS3": "FULL-ENCLOSURE", "HDUCLAS4": clas4,
                       "TELESCOP": _TELESCOP, **extra})
    return hdu


def _centres_log(edges: u.Quantity) -> u.Quantity:
    return np.sqrt(edges[:-1] * edges[1:])


def _centres_lin(edges: u.Quantity) -> u.Quantity:
    return 0.5 * (edges[:-1] + edges[1:])


def make_irf_hdus(irf: AnalyticIRF, *, obs_id: int) -> list[fits.BinTableHDU]:
    """Tabulate the analytic IRFs at bin centres (log centres in energy) as GADF HDUs.

    Returns the ``aeff_2d``, ``psf_3gauss``, ``edisp_2d`` and ``bkg_3d`` HDUs in this order.
    Readers interpolate between the centres (log in energy, linear in offset), where the
    tables equal the analytic formulas up to float32 rounding.
    """
    e_edges, t_edges = irf.energy_edges(), irf.offset_edges()
    e_c, t_c = _centres_log(e_edges), _centres_lin(t_edges)
    ee, tt = np.meshgrid(e_c, t_c, indexing="ij")  # (n_energy, n_offset)
    extra = {"OBS_ID": obs_id}

    # Effective area: data shape (offset, energy) in numpy order = TDIM (energy, offset).
    aeff = irf.aeff(ee, tt).to_value("m2").T
    aeff_hdu = _irf_hdu(
        _axis_columns("ENERG", e_edges, "TeV") + _axis_columns("THETA", t_edges, "deg")
        + [_data_column("EFFAREA", aeff, "m2")],
        "EFFECTIVE AREA", "EFF_AREA", "AEFF_2D",
        {**extra, "LO_THRES": irf.lo_threshold_tev, "HI_THRES": irf.hi_threshold_tev},
    )

    # PSF: SCALE normalises the profile to 1 per sr (angles in rad).
    core, tail = irf.psf_sigmas(ee, tt)
    ampl2 = irf.psf_amplitude_2()
    s1, s2 = np.deg2rad(core), np.deg2rad(tail)
    scale = 1.0 / (2 * np.pi * (s1**2 + ampl2 * s2**2))
    psf_cols = [
        ("SCALE", scale, ""), ("SIGMA_1", core, "deg"), ("AMPL_2", np.full_like(core, ampl2), ""),
        ("SIGMA_2", tail, "deg"), ("AMPL_3", np.zeros_like(core), ""),
        # A non-zero width for the unused third Gaussian (readers treat 0 as a placeholder).
        ("SIGMA_3", 3 * tail, "deg"),
    ]
    psf_hdu = _irf_hdu(
        _axis_columns("ENERG", e_edges, "TeV") + _axis_columns("THETA", t_edges, "deg")
        + [_data_column(name, values.T, unit or None) for name, values, unit in psf_cols],
        "POINT SPREAD FUNCTION", "RPSF", "PSF_3GAUSS", extra,
    )

    # Energy dispersion: independent of energy and offset; coarse offset axis (1 deg steps).
    m_edges = irf.migra_edges()
    edisp_t_edges = np.linspace(0.0, irf.offset_max_deg, int(round(irf.offset_max_deg)) + 1) * u.deg
    density = irf.edisp_migration_density(m_edges[:-1], m_edges[1:])
    matrix = np.broadcast_to(density[np.newaxis, :, np.newaxis],
                             (edisp_t_edges.size - 1, density.size, e_c.size))
    edisp_hdu = _irf_hdu(
        _axis_columns("ENERG", e_edges, "TeV") + _axis_columns("MIGRA", m_edges, None)
        + _axis_columns("THETA", edisp_t_edges, "deg") + [_data_column("MATRIX", matrix, None)],
        "ENERGY DISPERSION", "EDISP", "EDISP_2D", extra,
    )

    # Background: reconstructed energy x FoV lon/lat (RADEC aligned), per MeV s sr.
    b_edges = irf.energy_edges(irf.bkg_bins_per_decade)
    f_edges = irf.fov_edges()
    b_c, f_c = _centres_log(b_edges), _centres_lin(f_edges)
    eb, yy, xx = np.meshgrid(b_c, f_c, f_c, indexing="ij")  # (energy, fov_lat, fov_lon)
    bkg = irf.bkg(eb, xx, yy).to_value("MeV-1 s-1 sr-1")
    bkg_hdu = _irf_hdu(
        _axis_columns("DETX", f_edges, "deg") + _axis_columns("DETY", f_edges, "deg")
        + _axis_columns("ENERG", b_edges, "TeV") + [_data_column("BKG", bkg, "MeV-1 s-1 sr-1")],
        "BACKGROUND", "BKG", "BKG_3D", {**extra, "FOVALIGN": "RADEC"},
    )
    return [aeff_hdu, psf_hdu, edisp_hdu, bkg_hdu]


_HDU_ROWS = [  # (HDU_TYPE, HDU_CLASS, HDU_NAME)
    ("events", "events", "EVENTS"),
    ("gti", "gti", "GTI"),
    ("aeff", "aeff_2d", "EFFECTIVE AREA"),
    ("psf", "psf_3gauss", "POINT SPREAD FUNCTION"),
    ("edisp", "edisp_2d", "ENERGY DISPERSION"),
    ("bkg", "bkg_3d", "BACKGROUND"),
]


def _write_fits(path: Path, hdus: list[fits.BinTableHDU]) -> None:
    """Write a primary HDU and binary tables (no heap, no scaling) byte by byte.

    ``HDUList.writeto`` byte-swaps table rows with a Python loop over the elements of each
    row, which takes ~0.1 s per large one-row IRF table; numpy does the same in microseconds.
    """
    block = 2880
    with open(path, "wb") as f:
        f.write(fits.PrimaryHDU().header.tostring().encode("ascii"))
        for hdu in hdus:  # headers are complete: built by BinTableHDU.from_columns
            f.write(hdu.header.tostring().encode("ascii"))
            raw = np.asarray(hdu.data).view(np.ndarray)
            data = raw.astype(raw.dtype.newbyteorder(">")).tobytes()
            if len(data) != hdu.header["NAXIS1"] * hdu.header["NAXIS2"]:
                raise RuntimeError(f"internal: row size mismatch writing HDU {hdu.name}")
            f.write(data)
            f.write(b"\0" * (-len(data) % block))


def write_observation(directory: Path, info: ObservationInfo, events: fits.BinTableHDU,
                      irf_hdus: list[fits.BinTableHDU]) -> Path:
    """Write one observation file (EVENTS, GTI and the IRF HDUs) into ``directory``."""
    path = Path(directory) / info.filename
    _write_fits(path, [events, make_gti_hdu(info), *irf_hdus])
    return path


def write_index_tables(root: Path, infos: list[ObservationInfo], n_events: list[int], *,
                       data_dir: str = "data", files: dict[tuple[int, str], tuple[str, str]] | None = None) -> None:
    """Write ``hdu-index.fits.gz`` and ``obs-index.fits.gz`` into ``root``.

    ``files`` maps ``(obs_id, hdu_type)`` to ``(FILE_DIR, FILE_NAME)`` (e.g. IRF files shared by
    many runs); by default every HDU is in ``data_dir/info.filename``.
    """
    def where(info: ObservationInfo, hdu_type: str) -> tuple[str, str]:
        return files[info.obs_id, hdu_type] if files is not None else (data_dir, info.filename)

    rows = [(i.obs_id, t, c, *where(i, t), name) for i in infos for t, c, name in _HDU_ROWS]
    hdu_table = Table(rows=rows, names=["OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR",
                                        "FILE_NAME", "HDU_NAME"],
                      dtype=[np.int64, "U6", "U10", "U64", "U64", "U24"])
    hdu_table.meta.update({**_COMMON, "HDUCLAS1": "INDEX", "HDUCLAS2": "HDU", "EXTNAME": "HDU_INDEX"})
    hdu_table.write(Path(root) / "hdu-index.fits.gz", format="fits")

    obs = Table()
    obs["OBS_ID"] = np.array([i.obs_id for i in infos], dtype=np.int64)
    headers = [_obs_header(i) for i in infos]
    for key in ["RA_PNT", "DEC_PNT", "GLON_PNT", "GLAT_PNT"]:
        obs[key] = u.Quantity([h[key] for h in headers], "deg")
    obs["ZEN_PNT"] = u.Quantity([90.0 - i.alt for i in infos], "deg")
    obs["ALT_PNT"] = u.Quantity([i.alt for i in infos], "deg")
    obs["AZ_PNT"] = u.Quantity([i.az for i in infos], "deg")
    obs["ONTIME"] = u.Quantity([i.ontime for i in infos], "s")
    obs["LIVETIME"] = u.Quantity([i.livetime for i in infos], "s")
    obs["DEADC"] = np.array([i.deadc for i in infos])
    obs["TSTART"] = u.Quantity([i.tstart for i in infos], "s")
    obs["TSTOP"] = u.Quantity([i.tstop for i in infos], "s")
    obs["OBJECT"] = [i.object_name for i in infos]
    if all(i.target is not None for i in infos):
        obs["RA_OBJ"] = u.Quantity([i.target.icrs.ra.deg for i in infos], "deg")
        obs["DEC_OBJ"] = u.Quantity([i.target.icrs.dec.deg for i in infos], "deg")
    obs["N_TELS"] = np.array([i.n_tels for i in infos], dtype=np.int64)
    obs["EVENT_COUNT"] = np.array(n_events, dtype=np.int64)
    obs.meta.update({**_COMMON, "HDUCLAS1": "INDEX", "HDUCLAS2": "OBS", "EXTNAME": "OBS_INDEX",
                     **_time_header(), **SITE, "TELESCOP": _TELESCOP})
    obs.write(Path(root) / "obs-index.fits.gz", format="fits")


@contextlib.contextmanager
def staged_folder(path: Path) -> Iterator[Path]:
    """Write a data store into a hidden sibling folder, moved onto ``path`` only when complete.

    A failed (or interrupted) simulation leaves nothing that looks like a data store; an
    existing ``path`` is replaced only at the end.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        mask = os.umask(0)
        os.umask(mask)
        tmp.chmod(0o777 & ~mask)  # mkdtemp makes it private; give it normal permissions
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
