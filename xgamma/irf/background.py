"""Background rate IRFs (GADF ``bkg_3d``, ``bkg_2d``) and field-of-view coordinates."""

from __future__ import annotations

import inspect
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import astropy.units as u
import numpy as np

from xgamma.exceptions import IRFError
from xgamma.irf._grid import GridInterpolator, IRFAxis, to_value
from xgamma.irf._table import IRFTable

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord
    from astropy.time import Time

    from xgamma.io.datastore import Observation

__all__ = [
    "Background3D",
    "Background2D",
    "fov_coordinates",
    "fov_coordinates_radec",
    "fov_coordinates_from_vectors",
    "fov_coordinates_from_components",
    "fov_frame_matrix",
    "fov_rotation_times",
    "integrate_background",
    "integrate_loglog",
]

_BKG_UNIT = u.Unit("s-1 MeV-1 sr-1")
#: Unit of energy-integrated rates (a Unit object: parsing the string costs ~0.5 ms per call).
RATE_UNIT = u.Unit("s-1 sr-1")
FoVAlignment = Literal["RADEC", "ALTAZ"]


def integrate_loglog(v0: np.ndarray, v1: np.ndarray, e0, e1) -> np.ndarray:
    """Integral of a power law through (e0, v0) and (e1, v1) from e0 to e1.

    Same rule as Gammapy's log-log trapezoid: a zero at either end gives 0, and an index of
    1 (within 1e-8) uses the logarithmic limit.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.log(e1 / e0)
        index = np.log(v0 / v1) / ratio  # power-law index g in v ~ e^-g
        one_minus = 1.0 - index
        out = (v1 * e1 - v0 * e0) / one_minus
        near = np.abs(one_minus) <= 1e-8
        if np.any(near):
            out = np.where(near, v0 * e0 * ratio, out)
        out[~np.isfinite(out) | (v0 <= 0) | (v1 <= 0)] = 0.0
    return out


def _loglog_from_logs(logv: np.ndarray, ratio: np.ndarray, ln_r: np.ndarray, pre: np.ndarray,
                      out: np.ndarray | None = None) -> np.ndarray:
    """Power-law integrals between consecutive rows of log values (one block of points).

    With v = exp(L) at the edges e0 < e1, r = e1 / e0 and x = L1 - L0 + ln(r) =
    (1 - index) ln(r): integral = e0 ln(r) (v1 r - v0) / x, the closed form of
    ``integrate_loglog`` without logs of ratios. The exponentials are taken in float32
    (3x faster here; relative error ~1e-6 for |L| < 100). Where |x| < 0.1 (index near 1) the
    cancellation is avoided with the series v0 expm1(x) / x = v0 (1 + x/2 + x^2/6 + x^3/24 +
    x^4/120) (truncation error < 2e-8 relative). Written into ``out`` when given (n_edges - 1, n points).
    """
    # Far extrapolations (masked afterwards) may overflow: silence, do not fail.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        # Widened to float64 once (exactly): the arithmetic below then runs on one dtype, without
        # numpy's buffered casting loops.
        v = np.exp(logv.astype(np.float32)).astype(np.float64)
        x = logv[1:] - logv[:-1]
        x += ln_r
        num = np.multiply(v[1:], ratio, out=out)
        num -= v[:-1]
        num /= x
    # Index near 1 nowhere (the usual case: two read-only reductions, no |x| temporary), else the series.
    # A NaN in x makes both tests fail, as the elementwise test would.
    if x.size and (x.min() >= 0.1 or x.max() <= -0.1):
        small = None
    else:
        small = np.abs(x) < 0.1
    if small is not None and small.any():
        xs = x[small]
        series = 1.0 + xs * (0.5 + xs * (1.0 / 6.0 + xs * (1.0 / 24.0 + xs / 120.0)))
        num[small] = v[:-1][small] * series
    num *= pre
    return num


@lru_cache(maxsize=16)
def _rate_factor(value_unit: u.UnitBase, energy_unit: str) -> float:
    """Table value x energy -> s-1 sr-1 (each run's copy of a cached IRF asks once)."""
    return float((value_unit * u.Unit(energy_unit)).to(RATE_UNIT))


def _fov_alignment(table: IRFTable) -> str:
    """The FOVALIGN header key (default RADEC), checked with the file and HDU named."""
    value = str(table.header.get("FOVALIGN", "RADEC")).strip().upper()
    if value not in ("RADEC", "ALTAZ"):
        raise IRFError(f"header key FOVALIGN = {value!r} in {table.where}: expected 'RADEC' or 'ALTAZ'")
    return value


class _BackgroundBase:
    """Shared energy integration of background IRFs; subclasses define the spatial lookup."""

    tag = ""
    spatial_names: tuple[str, ...] = ()

    def __init__(
        self,
        axes: tuple[IRFAxis, ...],
        data: u.Quantity,
        *,
        fov_alignment: str = "RADEC",
        meta: dict | None = None,
    ) -> None:
        data = u.Quantity(data)
        if not data.unit.is_equivalent(_BKG_UNIT):
            raise IRFError(f"{self.tag}: background unit {data.unit} is not convertible to {_BKG_UNIT}")
        alignment = str(fov_alignment).strip().upper()
        if alignment not in ("RADEC", "ALTAZ"):
            raise IRFError(f"{self.tag}: unsupported FOVALIGN {fov_alignment!r}; expected 'RADEC' or 'ALTAZ'")
        self.axes = tuple(axes)
        self.data = data
        self.meta = dict(meta or {})
        self.fov_alignment: FoVAlignment = alignment  # type: ignore[assignment]
        # Log-scaled values as in Gammapy (background rates span decades).
        self._interp = GridInterpolator(self.axes, data.value, values_scale="log", fill=True)

    def _spatial(self, fov_lon: np.ndarray, fov_lat: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def evaluate(self, energy, fov_lon, fov_lat) -> u.Quantity:
        """Background rate at reconstructed energies and field-of-view coordinates.

        Parameters
        ----------
        energy : `~astropy.units.Quantity` or array
            Reconstructed energy (plain numbers: TeV); fast path ``energy[:, None, None]``.
        fov_lon, fov_lat : `~astropy.units.Quantity` or array
            Field-of-view coordinates (plain numbers: deg), see `fov_coordinates`.

        Returns
        -------
        rate : `~astropy.units.Quantity`
            Rate in the file's unit (typically s-1 MeV-1 sr-1).
        """
        e = to_value(energy, self.axes[0].unit, name="energy")
        lon = to_value(fov_lon, "deg", name="fov_lon")
        lat = to_value(fov_lat, "deg", name="fov_lat")
        return u.Quantity(self._interp(e, *self._spatial(lon, lat)), self.data.unit, copy=False)

    def _energy_terms(self, edges: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-bin terms of the log-log integration over ``edges`` (cached: map making asks per pixel block).

        Returns e1 / e0, ln(e1 / e0), the prefactor e0 ln(e1 / e0) in s-1 sr-1 per table unit, and
        the bins with an edge outside the energy axis (they integrate to 0, as in Gammapy).
        """
        key = edges.tobytes()
        cache = self.__dict__.setdefault("_energy_terms_cache", {})
        if key not in cache:
            valid_e = self._interp.first_lookup(edges).valid  # (shared by the copies of a cached IRF)
            e0, e1 = edges[:-1], edges[1:]
            ln_r = np.log(e1 / e0)[:, None]
            # Value unit x energy unit -> s-1 sr-1, folded into the per-bin prefactor e0 * ln(e1/e0).
            factor = _rate_factor(self.data.unit, self.axes[0].unit)
            if len(cache) >= 8:
                cache.pop(next(iter(cache), None), None)
            cache[key] = ((e1 / e0)[:, None], ln_r, factor * e0[:, None] * ln_r, ~(valid_e[:-1] & valid_e[1:]))
        return cache[key]

    def integrate_energy(self, energy_edges, fov_lon, fov_lat, *, bins: slice | None = None) -> u.Quantity:
        """Background rate integrated over energy bins (log-log rule between the bin edges).

        Parameters
        ----------
        energy_edges : `~astropy.units.Quantity` or array
            1-D reconstructed-energy edges (plain numbers: TeV), n_bins + 1 values.
        fov_lon, fov_lat : `~astropy.units.Quantity` or array
            Field-of-view coordinates (plain numbers: deg), any common shape S.
        bins : slice, optional
            Integrate these bins only (``slice(start, stop)``, step 1); the others are 0. The
            bins computed are bit for bit those of the whole axis (map making skips the bins
            outside a run's safe energy range this way).

        Returns
        -------
        rate : `~astropy.units.Quantity`
            Shape (n_bins, *S), unit s-1 sr-1. Multiply by pixel solid angle and ontime to get
            predicted counts (as Gammapy's ``make_map_background_irf``, which evaluates the IRF
            at the edges of each bin, without oversampling).
        """
        edges = np.atleast_1d(to_value(energy_edges, self.axes[0].unit, name="energy_edges")).astype(float)
        if edges.ndim != 1 or edges.size < 2:
            raise IRFError(f"{self.tag}: energy_edges must be 1-D with at least 2 values, got shape {edges.shape}")
        lon = to_value(fov_lon, "deg", name="fov_lon")
        lat = to_value(fov_lat, "deg", name="fov_lat")
        lon, lat = np.broadcast_arrays(lon, lat)
        n_bins = edges.size - 1
        start, stop, step = (0, n_bins, 1) if bins is None else bins.indices(n_bins)
        if step != 1:
            raise IRFError(f"{self.tag}: bins must be a slice of step 1, got {bins}")
        # The order of the interpolation is chosen on the whole axis: the same sums whichever bins are asked.
        nodes_first = self._interp.axes[0].nbin < edges.size
        terms = [term[start:stop] for term in self._energy_terms(edges)]
        ratio, ln_r, pre, bad_bins = terms
        edges = edges[start:stop + 1]

        out = np.empty((n_bins, lon.size))
        out[:start] = 0.0
        out[stop:] = 0.0
        part = out[start:stop]
        if stop > start:
            for sl, logv, valid in self._interp.outer_blocks(edges, self._spatial(lon, lat), nodes_first=nodes_first):
                values = _loglog_from_logs(logv, ratio, ln_r, pre, out=part[:, sl])
                if not valid.all():
                    values[:, ~valid] = 0.0
        part[bad_bins] = 0.0
        if not self._interp.finite:
            part[~np.isfinite(part)] = 0.0
        out = out.reshape((n_bins,) + lon.shape)
        return u.Quantity(out, RATE_UNIT, copy=False)

    def __repr__(self) -> str:
        axes = ", ".join(repr(a) for a in self.axes)
        flip = ", reverse_lon=True" if getattr(self, "reverse_lon", False) else ""
        return f"{type(self).__name__}({axes}, fov_alignment={self.fov_alignment!r}{flip})"


class Background3D(_BackgroundBase):
    """Background rate B(E_reco, fov_lon, fov_lat) (GADF ``bkg_3d``).

    Notes
    -----
    Tri-linear interpolation in (log E, fov_lon, fov_lat) of log(rate) between bin centres,
    zero beyond the outer edges. The data cell is read as Gammapy 2.1 reads it: numpy axes
    (energy, 1, 2) with axis 1 taken as ``fov_lon`` (DETX edges) and axis 2 as ``fov_lat``
    (DETY edges), so that maps agree with Gammapy on asymmetric models (H.E.S.S. DR1).
    """

    tag = "bkg_3d"

    @classmethod
    def read(cls, path: str | Path, hdu: str | int = "BACKGROUND") -> Background3D:
        """Read a ``bkg_3d`` HDU (column ``BKG``, or ``BGD`` as in CTA 1DC)."""
        table = IRFTable(path, hdu)
        energy, lon, lat = table.axis("energy"), table.axis("fov_lon"), table.axis("fov_lat")
        values = table.values(("BKG", "BGD"), str(_BKG_UNIT))
        shape = (energy.nbin, lon.nbin, lat.nbin)
        if values.shape != shape and values.shape[::-1] == shape:
            values = values.T
        elif values.shape != shape:
            raise IRFError(f"column 'BKG' in {table.where} has shape {values.shape}, incompatible with axes {shape}")
        return cls((energy, lon, lat), values, fov_alignment=_fov_alignment(table), meta=table.meta())

    #: Flip the sign of fov_lon before the lookup. Gammapy does this (its REVERSE_LON_RADEC
    #: alignment) for old H.E.S.S. files (events CREATOR 'SASH FITS::EventListWriter',
    #: HDUVERS '0.2'), whose bkg_3d tables use the opposite longitude convention;
    #: `Observation.bkg` sets it from the events header.
    reverse_lon: bool = False

    def _spatial(self, fov_lon, fov_lat):
        return [-fov_lon if self.reverse_lon else fov_lon, fov_lat]


class Background2D(_BackgroundBase):
    """Radially symmetric background rate B(E_reco, offset) (GADF ``bkg_2d``).

    The API takes field-of-view coordinates like `Background3D`; the offset is their exact
    great-circle distance from the FoV origin (the pointing), as Gammapy uses the separation
    from the pointing (not the flat sqrt(lon**2 + lat**2)). The FoV alignment does not
    matter for a radial model.
    """

    tag = "bkg_2d"

    @classmethod
    def read(cls, path: str | Path, hdu: str | int = "BACKGROUND") -> Background2D:
        """Read a ``bkg_2d`` HDU (column ``BKG`` or ``BGD``; ``ENERG``/``THETA`` axes)."""
        table = IRFTable(path, hdu)
        axes, values = table.grid(("energy", "offset"), ("BKG", "BGD"), str(_BKG_UNIT))
        return cls(axes, values, fov_alignment=_fov_alignment(table), meta=table.meta())

    def _spatial(self, fov_lon, fov_lat):
        lon, lat = np.radians(fov_lon), np.radians(fov_lat)
        # Great-circle distance from the FoV origin (0, 0): cos(d) = cos(lat) cos(lon).
        offset = np.degrees(np.arccos(np.clip(np.cos(lat) * np.cos(lon), -1.0, 1.0)))
        return [offset]

    def evaluate_offset(self, energy, offset) -> u.Quantity:
        """Background rate at reconstructed energy and offset (plain numbers: TeV, deg)."""
        e = to_value(energy, self.axes[0].unit, name="energy")
        o = to_value(offset, self.axes[1].unit, name="offset")
        return u.Quantity(self._interp(e, o), self.data.unit, copy=False)


def integrate_background(bkg: Any, energy_edges, fov_lon, fov_lat, *, bins: slice | None = None) -> u.Quantity:
    """``bkg.integrate_energy(energy_edges, fov_lon, fov_lat, bins=bins)`` for any background IRF.

    ``bins`` is part of the background contract (`Background3D.integrate_energy`, docs/plugins.md):
    only these bins are computed, the others are 0. A background whose ``integrate_energy`` has no
    ``bins`` keyword (a plugin written to the contract before it) is asked for every bin, and the
    bins outside ``bins`` are set to 0: the same result, computed on the whole axis.

    Parameters
    ----------
    bkg : background IRF
        A `Background3D`, `Background2D` or a plugin's background object.
    energy_edges, fov_lon, fov_lat
        As `Background3D.integrate_energy`.
    bins : slice, optional
        ``slice(start, stop)`` of the bins wanted (step 1); all bins if None.

    Returns
    -------
    rate : `~astropy.units.Quantity`
        Shape (n_bins, *S), what ``bkg.integrate_energy`` returns (s-1 sr-1).
    """
    if bins is None:
        return bkg.integrate_energy(energy_edges, fov_lon, fov_lat)
    if _takes_bins(type(bkg)):
        return bkg.integrate_energy(energy_edges, fov_lon, fov_lat, bins=bins)
    rate = bkg.integrate_energy(energy_edges, fov_lon, fov_lat)
    start, stop, _ = bins.indices(len(rate))
    out = np.zeros_like(rate)  # the plugin's array is left as it is (it may be cached or read-only)
    out[start:stop] = rate[start:stop]
    return out


@lru_cache(maxsize=64)
def _takes_bins(cls: type) -> bool:
    """Whether ``cls.integrate_energy`` takes the ``bins`` keyword (or any keyword): looked up once per
    class, not per call (map making calls it per run and block of pixels)."""
    try:
        parameters = inspect.signature(cls.integrate_energy).parameters
    except (AttributeError, TypeError, ValueError):  # an instance attribute or a callable without a signature
        return False
    named = parameters.get("bins")
    return (named is not None and named.kind is not inspect.Parameter.POSITIONAL_ONLY) or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def fov_frame_matrix(ra_pnt: float, dec_pnt: float) -> np.ndarray:
    """Rotation (3 x 3) taking ICRS unit vectors to the RADEC field-of-view frame of a pointing.

    Rows: the pointing (FoV origin, x), then y and z such that ``fov_lon = atan2(y, x)`` and
    ``fov_lat = asin(z)`` follow `fov_coordinates_radec`'s convention.
    """
    a, d = np.radians(ra_pnt), np.radians(dec_pnt)
    return np.array([
        [np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)],
        [np.sin(a), -np.cos(a), 0.0],
        [-np.sin(d) * np.cos(a), -np.sin(d) * np.sin(a), np.cos(d)],
    ])


def fov_coordinates_from_vectors(vectors: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FoV coordinates (deg) of unit vectors (n, 3) given the rotation to the FoV frame (`fov_frame_matrix`).

    ``matrix`` may include a rotation from the vectors' frame to ICRS (map-frame vectors).
    """
    return fov_coordinates_from_components((vectors[:, 0], vectors[:, 1], vectors[:, 2]), matrix)


def fov_coordinates_from_components(xyz: tuple[np.ndarray, np.ndarray, np.ndarray], matrix: np.ndarray
                                    ) -> tuple[np.ndarray, np.ndarray]:
    """`fov_coordinates_from_vectors` for unit vectors given as three component arrays (x, y, z)."""
    from xgamma.geometry.spherical import rotate_components

    x, y, z = rotate_components(xyz, matrix)
    fov_lon = np.arctan2(y, x)
    fov_lon *= 180 / np.pi
    np.clip(z, -1.0, 1.0, out=z)
    fov_lat = np.arcsin(z)
    fov_lat *= 180 / np.pi
    return fov_lon, fov_lat


def fov_coordinates_radec(ra, dec, ra_pnt: float, dec_pnt: float) -> tuple[np.ndarray, np.ndarray]:
    """Field-of-view coordinates of sky positions for a RADEC-aligned FoV frame.

    Parameters
    ----------
    ra, dec : array
        ICRS coordinates in deg (any shape).
    ra_pnt, dec_pnt : float
        Pointing (frame origin) in deg.

    Returns
    -------
    fov_lon, fov_lat : ndarray
        In deg, fov_lon in [-180, 180]. Convention of Gammapy's ``FoVICRSFrame``: a rotation
        bringing the pointing to (0, 0) followed by a reflection of the longitude, so that
        ``fov_lon`` grows towards *decreasing* RA. (Old H.E.S.S. files use the opposite sign:
        that is handled by `Background3D.reverse_lon`, which `Observation.bkg` sets, as
        Gammapy does.)
    """
    from xgamma.geometry.spherical import unit_vectors

    ra, dec = np.broadcast_arrays(np.asarray(ra, dtype=float), np.asarray(dec, dtype=float))
    vectors = unit_vectors(ra, dec).reshape(-1, 3)
    fov_lon, fov_lat = fov_coordinates_from_vectors(vectors, fov_frame_matrix(ra_pnt, dec_pnt))
    return fov_lon.reshape(ra.shape), fov_lat.reshape(ra.shape)


def fov_rotation_times(observation: Observation, *, step: u.Quantity = 1.0 * u.deg) -> Time:
    """Times between start and start + ontime at which an ALTAZ FoV has rotated by ``step``.

    Same first-order rule as Gammapy (Earth rotation rate at the pointing's alt/az, at least
    1 s per step).
    """
    from astropy.time import Time

    if observation.location is None:
        raise IRFError(f"obs {observation.obs_id}: ALTAZ background needs the observatory location (GEOLON/GEOLAT)")
    start = observation.tstart
    stop = start + observation.ontime
    rate = (360.0 * u.deg / u.day).to_value("deg s-1")
    lat = observation.location.lat.rad
    times = [start]
    t = start
    while t < stop:
        altaz = observation.pointing_altaz(t)
        denom = rate * np.cos(lat) * abs(np.cos(altaz.az.rad))
        with np.errstate(divide="ignore"):
            dt = step.to_value("deg") * np.cos(altaz.alt.rad) / denom
        t = min(t + max(dt, 1.0) * u.s, stop)
        times.append(t)
    return Time(times)


def fov_coordinates(
    observation: Observation,
    skycoord: SkyCoord,
    *,
    alignment: FoVAlignment | None = None,
    time: Time | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Field-of-view coordinates (deg) of ``skycoord`` for ``observation``.

    Parameters
    ----------
    observation : Observation
        Gives the pointing, and for ALTAZ the location and times.
    skycoord : `~astropy.coordinates.SkyCoord`
        Sky positions (any frame, any shape).
    alignment : {"RADEC", "ALTAZ"}, optional
        FoV alignment; default: the ``fov_alignment`` of the observation's background IRF.
    time : `~astropy.time.Time`, optional
        For ALTAZ only: time(s) of the frame (default: the observation mid-time). With an
        array of times the outputs get a trailing time axis.

    Returns
    -------
    fov_lon, fov_lat : ndarray
        Degrees, shape of ``skycoord`` (plus a trailing time axis for array ``time``).
        RADEC follows Gammapy's ``FoVICRSFrame``; ALTAZ its ``FoVAltAzFrame`` (the frame
        rotates with the sky: integrate over `fov_rotation_times` to average).
    """
    if alignment is None:
        bkg = observation.bkg
        # A radial model does not depend on the FoV orientation (Gammapy uses RADEC then).
        alignment = bkg.fov_alignment if isinstance(bkg, Background3D) else "RADEC"
    if alignment == "RADEC":
        icrs = skycoord.icrs
        pnt = observation.pointing
        return fov_coordinates_radec(icrs.ra.deg, icrs.dec.deg, pnt.ra.deg, pnt.dec.deg)
    if alignment != "ALTAZ":
        raise IRFError(f"unknown FoV alignment {alignment!r}; expected 'RADEC' or 'ALTAZ'")
    from astropy.coordinates import AltAz
    from astropy.coordinates.erfa_astrom import ErfaAstromInterpolator, erfa_astrom

    if observation.location is None:
        raise IRFError(f"obs {observation.obs_id}: ALTAZ background needs the observatory location (GEOLON/GEOLAT)")
    if time is None:
        time = observation.tstart + 0.5 * observation.ontime
    pnt_altaz = observation.pointing_altaz(time)
    coord = skycoord
    if not time.isscalar:
        coord = skycoord[..., np.newaxis]
    frame = AltAz(obstime=time, location=observation.location)
    with erfa_astrom.set(ErfaAstromInterpolator(1000 * u.s)):
        altaz = coord.transform_to(frame)
    return fov_coordinates_radec(altaz.az.deg, altaz.alt.deg, pnt_altaz.az.deg, pnt_altaz.alt.deg)
