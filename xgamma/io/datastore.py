"""GADF DL3 data store: index tables, observation selection, lazy per-observation handles."""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np

from xgamma.exceptions import DataStoreError
from xgamma.io.events import GTI, EventList, met_to_time, read_events, read_gti, time_reference
from xgamma.fits_tables import header_float, read_header, read_table_hdu

if TYPE_CHECKING:
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.table import Table
    from astropy.time import Time

__all__ = ["DataStore", "Observation"]

_INDEX_NAMES = {"hdu": "hdu-index.fits", "obs": "obs-index.fits"}
_HDU_COLUMNS = ("OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME")
# Obs-table / header values an Observation keeps (small, picklable).
_INFO_KEYS = ("RA_PNT", "DEC_PNT", "ONTIME", "LIVETIME", "DEADC", "TSTART", "TSTOP", "OBJECT", "ALT_PNT", "AZ_PNT")
# Units the Observation keeps its values in; an obs-index column with another unit is converted.
_INFO_UNITS = {"RA_PNT": "deg", "DEC_PNT": "deg", "ALT_PNT": "deg", "AZ_PNT": "deg", "ONTIME": "s",
               "LIVETIME": "s", "TSTART": "s", "TSTOP": "s"}
_LOCATION_KEYS = ("GEOLON", "GEOLAT", "ALTITUDE")


def _find_index(path: Path, kind: str) -> Path:
    found = [path / (_INDEX_NAMES[kind] + suffix) for suffix in ("", ".gz")]
    found = [candidate for candidate in found if candidate.is_file()]
    if len(found) > 1:
        # Two versions of one index: which one is current cannot be told, so neither is used.
        raise DataStoreError(f"both {found[0].name} and {found[1].name} are in {path}: remove the stale one")
    if not found:
        raise DataStoreError(f"{kind} index file not found: {path / _INDEX_NAMES[kind]}[.gz]")
    return found[0]


def _read_index(path: Path, required: tuple[str, ...]) -> Table:
    """The index table of ``path`` (a copy: the caller may change it), validated.

    Parsed and checked once per file version in this process: astropy's FITS table reading costs
    ~5-15 ms for these small files (most of opening a data store), and a notebook or a benchmark
    opens the same store again and again.
    """
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataStoreError(f"cannot read index table {path}: {exc}") from None
    table = _parsed_index(str(path), str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    missing = [c for c in required if c not in table.colnames]
    if missing:
        raise DataStoreError(f"index table {path} lacks column(s) {missing} (columns: {table.colnames})")
    return table.copy()


@lru_cache(maxsize=8)
def _parsed_index(path: str, resolved: str, mtime_ns: int, size: int) -> Table:
    from astropy.io import fits
    from astropy.table import Table

    header, data = read_table_hdu(Path(path), 1)
    if data is None:
        raise DataStoreError(f"index table {path} has no rows")
    table = Table.read(fits.BinTableHDU(data=data, header=header), format="fits")
    if "OBS_ID" in table.colnames:
        try:
            ids = np.asarray(table["OBS_ID"], dtype=np.int64)
        except (TypeError, ValueError):
            raise DataStoreError(f"column 'OBS_ID' in index table {path} is not integer") from None
        if np.ma.is_masked(table["OBS_ID"]) or not np.array_equal(ids, np.asarray(table["OBS_ID"], dtype=float)):
            raise DataStoreError(f"column 'OBS_ID' in index table {path} has empty or non-integer values")
    return table


def _plain(value: Any) -> Any:
    """numpy scalars / bytes -> plain Python (keeps pickles small and portable)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        return value.strip()
    if np.ma.is_masked(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


class DataStore:
    """A GADF DL3 data store (``hdu-index`` + ``obs-index`` tables, gzipped or not).

    Parameters
    ----------
    path : str or Path
        Directory holding ``hdu-index.fits[.gz]`` and ``obs-index.fits[.gz]``.

    Raises
    ------
    DataStoreError
        Missing directory or index file, or index tables without the GADF columns.

    Examples
    --------
    >>> store = DataStore("$XGAMMA_DATA/cta-1dc/index/gps")  # doctest: +SKIP
    >>> obs = store.observation(110380)                      # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(os.path.expandvars(str(path))).expanduser()
        if not path.is_dir():
            raise DataStoreError(f"data store directory not found: {path}")
        self.path = path
        self.hdu_index_path = _find_index(path, "hdu")
        self.obs_index_path = _find_index(path, "obs")
        self.hdu_table = _read_index(self.hdu_index_path, _HDU_COLUMNS)
        self.obs_table = _read_index(self.obs_index_path, ("OBS_ID",))
        for name in ("HDU_TYPE", "HDU_CLASS"):
            self.hdu_table[name] = [str(_plain(v)).lower() for v in self.hdu_table[name]]
        base = self.hdu_table.meta.get("BASE_DIR")
        self.base_dir = (path / str(base)) if base else path

    @classmethod
    def _subset(cls, parent: DataStore, obs_mask: np.ndarray) -> DataStore:
        new = cls.__new__(cls)
        new.__dict__.update(parent.__dict__)
        new.__dict__.pop("_rows", None)  # rows of the parent's tables
        new.obs_table = parent.obs_table[obs_mask]
        ids = set(int(i) for i in new.obs_table["OBS_ID"])
        new.hdu_table = parent.hdu_table[np.isin(np.asarray(parent.hdu_table["OBS_ID"]), list(ids))]
        return new

    @property
    def obs_ids(self) -> list[int]:
        """Observation ids of the obs table, in table order."""
        return [int(i) for i in self.obs_table["OBS_ID"]]

    def __len__(self) -> int:
        return len(self.obs_table)

    def __repr__(self) -> str:
        return f"DataStore({str(self.path)!r}, n_obs={len(self)})"

    def select(
        self,
        obs_ids: list[int] | None = None,
        cone: tuple[SkyCoord, Any] | None = None,
        object_name: str | None = None,
    ) -> DataStore:
        """Select observations; the criteria combine with AND.

        Parameters
        ----------
        obs_ids : list of int, optional
            Keep these ids (all must exist).
        cone : (SkyCoord, angle), optional
            Keep pointings within the angle (Quantity or "2 deg") of the position.
        object_name : str, optional
            Keep rows whose ``OBJECT`` matches (case- and space-insensitive).

        Returns
        -------
        store : DataStore
            A new store with the selected rows of both index tables.

        Raises
        ------
        DataStoreError
            Unknown obs ids, or an empty selection.
        """
        mask = np.ones(len(self.obs_table), bool)
        ids = np.asarray(self.obs_table["OBS_ID"]).astype(np.int64)
        criteria = []
        if obs_ids is not None:
            wanted = [int(i) for i in np.atleast_1d(obs_ids)]
            unknown = sorted(set(wanted) - set(ids.tolist()))
            if unknown:
                raise DataStoreError(f"unknown obs id(s) {unknown} in data store {self.path}")
            mask &= np.isin(ids, wanted)
            criteria.append(f"obs_ids={wanted}")
        if cone is not None:
            from astropy.coordinates import SkyCoord

            from xgamma.units import parse_angle

            center, radius = cone
            radius = parse_angle(radius, name="cone radius")
            pnt = SkyCoord(self._column_deg("RA_PNT"), self._column_deg("DEC_PNT"), unit="deg", frame="icrs")
            mask &= pnt.separation(center).deg <= radius.to_value("deg")
            criteria.append(f"cone=({center.to_string()}, {radius})")
        if object_name is not None:
            if "OBJECT" not in self.obs_table.colnames:
                raise DataStoreError(f"obs index {self.obs_index_path} has no OBJECT column to select on")
            norm = lambda s: "".join(str(_plain(s)).lower().split())  # noqa: E731
            mask &= np.array([norm(o) == norm(object_name) for o in self.obs_table["OBJECT"]])
            criteria.append(f"object_name={object_name!r}")
        if not mask.any():
            raise DataStoreError(f"selection {', '.join(criteria)} matches no observation in {self.path}")
        return DataStore._subset(self, mask)

    def _column_deg(self, name: str) -> np.ndarray:
        if name not in self.obs_table.colnames:
            raise DataStoreError(f"column {name!r} missing in obs index {self.obs_index_path}")
        col = self.obs_table[name]
        unit = getattr(col, "unit", None)
        values = np.asarray(col, dtype=float)
        return u.Quantity(values, unit).to_value("deg") if unit else values

    def observation(self, obs_id: int) -> Observation:
        """Handle of one observation (reads nothing but the index rows).

        Raises
        ------
        DataStoreError
            If ``obs_id`` is in neither index table.
        """
        obs_id = int(obs_id)
        rows = self._index_rows()
        hdu_rows, obs_row = rows["hdu"].get(obs_id, []), rows["obs"].get(obs_id)
        if not hdu_rows and obs_row is None:
            raise DataStoreError(f"unknown obs id {obs_id} in data store {self.path}")
        n_obs_rows = rows["obs_count"].get(obs_id, 0)
        if n_obs_rows > 1:  # the same run would be counted twice
            raise DataStoreError(f"obs index {self.obs_index_path} lists obs id {obs_id} in {n_obs_rows} rows")
        hdus = {}
        for hdu_type, file_dir, file_name, hdu_name, hdu_class in hdu_rows:
            if hdu_type in hdus:
                raise DataStoreError(f"HDU index {self.hdu_index_path} lists {hdu_type!r} twice for obs id {obs_id}")
            # Absolute and normalised, symlinks kept: messages name the file the index names.
            hdus[hdu_type] = (os.path.abspath(self.base_dir / file_dir / file_name), hdu_name, hdu_class)
        info: dict[str, Any] = {}
        if obs_row is not None:
            info = {key: values[obs_row] for key, values in rows["info"].items()}
        meta = self.obs_table.meta
        time_ref = time_reference(meta)
        location = tuple(header_float(meta, k) for k in _LOCATION_KEYS)
        if None in location[:2]:
            location = None
        return Observation(obs_id, hdus, info, time_ref=time_ref, location=location,
                           obs_index=str(self.obs_index_path))

    def _info_column(self, key: str) -> list[Any]:
        """One obs-index column as plain values, in the unit the Observation uses when it has one."""
        column = self.obs_table[key]
        values = [_plain(v) for v in column]
        unit = getattr(column, "unit", None)
        if unit is None or key not in _INFO_UNITS:
            return values
        try:
            factor = u.Quantity(1.0, unit).to_value(_INFO_UNITS[key])
        except u.UnitsError:
            raise DataStoreError(
                f"column {key!r} in obs index {self.obs_index_path} has unit {unit.to_string()!r}, "
                f"expected {_INFO_UNITS[key]!r} or an equivalent"
            ) from None
        if factor == 1.0:
            return values
        return [None if v is None else float(v) * factor for v in values]

    def _index_rows(self) -> dict[str, Any]:
        """The index tables as plain Python, once per store: row access on an astropy Table costs
        ~50 us, which made building 1000 observation handles take most of a second."""
        rows = self.__dict__.get("_rows")
        if rows is None:
            hdu, obs = self.hdu_table, self.obs_table
            columns = [[str(_plain(v)) if name.startswith(("FILE", "HDU_NAME")) else str(v) for v in hdu[name]]
                       for name in ("HDU_TYPE", "FILE_DIR", "FILE_NAME", "HDU_NAME", "HDU_CLASS")]
            by_obs: dict[int, list[tuple[str, ...]]] = {}
            for obs_id, *entry in zip(np.asarray(hdu["OBS_ID"]).astype(np.int64).tolist(), *columns):
                by_obs.setdefault(obs_id, []).append(tuple(entry))
            first: dict[int, int] = {}
            count: dict[int, int] = {}
            for row, obs_id in enumerate(np.asarray(obs["OBS_ID"]).astype(np.int64).tolist()):
                first.setdefault(obs_id, row)
                count[obs_id] = count.get(obs_id, 0) + 1
            info = {key: self._info_column(key) for key in _INFO_KEYS if key in obs.colnames}
            rows = self.__dict__["_rows"] = {"hdu": by_obs, "obs": first, "obs_count": count, "info": info}
        return rows

    def observations(self, obs_ids: list[int] | None = None) -> list[Observation]:
        """Handles of the given (default: all) observations, in the order given."""
        ids = self.obs_ids if obs_ids is None else [int(i) for i in obs_ids]
        return [self.observation(i) for i in ids]


class Observation:
    """Picklable handle of one DL3 observation: paths and a few header values.

    Nothing is read on construction. ``events``, ``gti`` and the IRFs (``aeff``, ``bkg``,
    ``psf``, ``edisp``) are read on first access and cached in this process; the cache is
    dropped when pickling (handles are shipped to dask workers).

    Parameters
    ----------
    obs_id : int
        Observation id.
    hdus : dict
        ``{hdu_type: (file path, hdu name, hdu class)}`` from the HDU index.
    info : dict
        Obs-index values (RA_PNT, DEC_PNT, ONTIME, LIVETIME, DEADC, TSTART, TSTOP, OBJECT).
    time_ref : (MJDREFI, MJDREFF, scale), optional
        Time reference of TSTART/TSTOP.
    location : (lon deg, lat deg, height m), optional
        Observatory location (GEOLON, GEOLAT, ALTITUDE).
    obs_index : str, optional
        File the ``info`` values come from (named in error messages).

    Notes
    -----
    Header values are checked where they are read: a pointing off the sky, a non-positive or
    non-finite ONTIME / LIVETIME, LIVETIME > ONTIME or DEADC outside (0, 1] raise a
    `DataStoreError` naming the observation, the key and the file it was read from.
    """

    def __init__(
        self,
        obs_id: int,
        hdus: dict[str, tuple[str, str, str]],
        info: dict[str, Any],
        *,
        time_ref: tuple[float, float, str] | None = None,
        location: tuple[float | None, ...] | None = None,
        obs_index: str | None = None,
    ) -> None:
        self.obs_id = int(obs_id)
        self.hdus = dict(hdus)
        self.info = dict(info)
        self.time_ref = time_ref
        self._location = location
        self.obs_index = obs_index
        self._cache: dict[str, Any] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = {}  # loaded data stay in the sending process
        return state

    def __repr__(self) -> str:
        return f"Observation(obs_id={self.obs_id}, hdus={sorted(self.hdus)})"

    # -- header values ------------------------------------------------------------------
    def _events_header(self) -> dict:
        if "events_header" not in self._cache:
            events = self._cache.get("events")
            if events is not None:  # the events were read with their header: no second open
                self._cache["events_header"] = events.meta
                return events.meta
            path, hdu, _ = self._hdu("events")
            if not Path(path).is_file():
                raise DataStoreError(f"obs {self.obs_id}: events file not found: {path}")
            self._cache["events_header"] = read_header(path, hdu)
        return self._cache["events_header"]

    def _value(self, key: str) -> float | None:
        value = self.info.get(key)
        if value is None:
            value = header_float(self._events_header(), key) if "events" in self.hdus else None
        return None if value is None else float(value)

    def _source(self, key: str) -> str:
        """Where ``key`` was read: the obs index or the events header."""
        if self.info.get(key) is not None:
            return f"obs index {self.obs_index}" if self.obs_index else "the obs index"
        path, hdu, _ = self._hdu("events")
        return f"HDU {hdu!r} of {path}"

    def _checked(self, key: str, value: float, ok: bool, expected: str) -> float:
        if not (np.isfinite(value) and ok):
            raise DataStoreError(f"obs {self.obs_id}: {key} = {value:g} in {self._source(key)}; expected {expected}")
        return value

    @property
    def pointing_radec(self) -> tuple[float, float]:
        """Pointing (RA, Dec) in deg, ICRS, from RA_PNT/DEC_PNT (plain floats: cheap in loops)."""
        ra, dec = self._value("RA_PNT"), self._value("DEC_PNT")
        if ra is None or dec is None:
            raise DataStoreError(f"obs {self.obs_id}: no RA_PNT/DEC_PNT in obs index or events header")
        self._checked("RA_PNT", ra, abs(ra) <= 360, "an angle in deg within [-360, 360]")
        self._checked("DEC_PNT", dec, abs(dec) <= 90, "a declination in deg within [-90, 90]")
        return ra, dec

    @property
    def pointing(self) -> SkyCoord:
        """Pointing position (ICRS SkyCoord) from RA_PNT/DEC_PNT."""
        from astropy.coordinates import SkyCoord

        ra, dec = self.pointing_radec
        return SkyCoord(ra, dec, unit="deg", frame="icrs")

    @property
    def ontime(self) -> u.Quantity:
        """Observation time including dead time (s): ONTIME, else the GTI sum."""
        value = self._value("ONTIME")
        if value is None:
            time_sum = self.gti.time_sum
            if not time_sum.value > 0:
                path, hdu, _ = self._hdu("gti")
                raise DataStoreError(f"obs {self.obs_id}: no ONTIME and the GTIs of HDU {hdu!r} of {path} sum to "
                                     f"{time_sum}")
            return time_sum
        return u.Quantity(self._checked("ONTIME", value, value > 0, "a positive time in s"), "s")

    @property
    def livetime(self) -> u.Quantity:
        """Dead-time-corrected time (s): LIVETIME, else ontime x DEADC."""
        value = self._value("LIVETIME")
        if value is None:
            return self.ontime * self.deadc
        self._checked("LIVETIME", value, value > 0, "a positive time in s")
        ontime = self.ontime.to_value("s")
        # Dead time only removes time: allow float32 rounding of LIVETIME = ONTIME x DEADC.
        return u.Quantity(self._checked("LIVETIME", value, value <= ontime * (1 + 1e-4),
                                        f"at most ONTIME = {ontime:g} s"), "s")

    @property
    def deadc(self) -> float:
        """Dead-time correction factor (livetime / ontime)."""
        value = self._value("DEADC")
        if value is not None:
            return self._checked("DEADC", value, 0 < value <= 1 + 1e-4, "a fraction in (0, 1]")
        live = self._value("LIVETIME")
        if live is None:
            raise DataStoreError(f"obs {self.obs_id}: neither DEADC nor LIVETIME available")
        return self.livetime.to_value("s") / self.ontime.to_value("s")

    def _time(self, key: str) -> Time:
        met = self._value(key)
        ref = self.time_ref
        if ref is None and "events" in self.hdus:
            ref = time_reference(self._events_header())
        if met is None or ref is None:
            raise DataStoreError(f"obs {self.obs_id}: cannot build {key} (missing {key} or MJDREFI/MJDREFF)")
        return met_to_time(met, ref)

    @property
    def tstart(self) -> Time:
        """Start time (`~astropy.time.Time`) from TSTART and MJDREF."""
        return self._time("TSTART")

    @property
    def tstop(self) -> Time:
        """Stop time (`~astropy.time.Time`) from TSTOP and MJDREF."""
        return self._time("TSTOP")

    @property
    def location(self) -> EarthLocation | None:
        """Observatory location from GEOLON/GEOLAT/ALTITUDE (obs index or events header), or None."""
        from astropy.coordinates import EarthLocation

        loc = self._location
        if loc is None and "events" in self.hdus:
            header = self._events_header()
            loc = tuple(header_float(header, k) for k in _LOCATION_KEYS)
        if loc is None or loc[0] is None or loc[1] is None:
            return None
        return EarthLocation(lon=loc[0] * u.deg, lat=loc[1] * u.deg, height=(loc[2] or 0.0) * u.m)

    def pointing_altaz(self, time: Time) -> SkyCoord:
        """Pointing in the AltAz frame of ``location`` at ``time``."""
        from astropy.coordinates import AltAz

        location = self.location
        if location is None:
            raise DataStoreError(f"obs {self.obs_id}: no observatory location (GEOLON/GEOLAT) for AltAz")
        return self.pointing.transform_to(AltAz(obstime=time, location=location))

    # -- lazily read data ---------------------------------------------------------------
    def _hdu(self, hdu_type: str) -> tuple[str, str, str]:
        try:
            return self.hdus[hdu_type]
        except KeyError:
            raise DataStoreError(
                f"obs {self.obs_id} has no {hdu_type!r} HDU in the HDU index (available: {sorted(self.hdus)})"
            ) from None

    def _load(self, hdu_type: str) -> Any:
        if hdu_type not in self._cache:
            path, hdu, hdu_class = self._hdu(hdu_type)
            if hdu_type == "events":
                value = read_events(path, hdu)
            elif hdu_type == "gti":
                value = read_gti(path, hdu)
            else:
                from xgamma.irf.readers import read_irf

                value = read_irf(path, hdu, hdu_class)
                _check_irf_interface(value, hdu_type, hdu_class, path, hdu)
                if hdu_type == "bkg" and self._legacy_hess_fov():
                    # Old H.E.S.S. bkg_3d: RADEC with reversed longitude (as Gammapy 2.1 reads it).
                    # A shallow copy: IRF objects are cached per file and shared between runs.
                    value = copy.copy(value)
                    value.fov_alignment = "RADEC"
                    value.reverse_lon = True
            self._cache[hdu_type] = value
        return self._cache[hdu_type]

    def _legacy_hess_fov(self) -> bool:
        """Whether the events come from the old H.E.S.S. SASH writer (GADF HDUVERS 0.2)."""
        if "events" not in self.hdus:
            return False
        header = self._events_header()
        return (
            str(header.get("CREATOR", "")).strip() == "SASH FITS::EventListWriter"
            and str(header.get("HDUVERS", "")).strip() == "0.2"
        )

    @property
    def events(self) -> EventList:
        return self._load("events")

    @property
    def gti(self) -> GTI:
        return self._load("gti")

    @property
    def aeff(self):
        """Effective area (`xgamma.irf.aeff.EffectiveArea2D`)."""
        return self._load("aeff")

    @property
    def bkg(self):
        """Background IRF (`Background3D` or `Background2D`)."""
        return self._load("bkg")

    @property
    def psf(self):
        """PSF (`PSF3Gauss`, `PSFTable` or `PSFKing`)."""
        return self._load("psf")

    @property
    def edisp(self):
        """Energy dispersion (`EnergyDispersion2D`)."""
        return self._load("edisp")

    def load_all(self) -> Observation:
        """Read every HDU listed for this observation now (returns self)."""
        for hdu_type in self.hdus:
            self._load(hdu_type)
        return self


#: What map making, the PSF kernel and the fit call on each IRF type (plugin readers included).
_IRF_INTERFACES = {
    "aeff": ("evaluate", "lo_threshold", "hi_threshold"),
    "bkg": ("integrate_energy", "fov_alignment"),
    "psf": ("evaluate", "containment", "containment_radius"),
    "edisp": ("evaluate",),
}


def _check_irf_interface(irf: Any, hdu_type: str, hdu_class: str, path: str, hdu: str) -> None:
    """Refuse an IRF object (from a plugin's reader) without the methods its HDU type needs."""
    missing = [name for name in _IRF_INTERFACES.get(hdu_type, ()) if not hasattr(irf, name)]
    if not missing:
        return
    from xgamma.irf.readers import _registry_reader
    from xgamma.plugin.blame import describe_component
    from xgamma.plugin.types import IRFPluginError

    reader = describe_component("IRF reader", hdu_class, _registry_reader(hdu_class, Path(path), hdu))
    raise IRFPluginError(f"{reader} returned a {type(irf).__name__} for the {hdu_type} HDU {hdu!r} of {path}, "
                         f"without {missing}: not a usable {hdu_type} IRF")
