"""Sky geometry: a celestial WCS, its pixel grid and an energy axis (a value object)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import threading
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Literal

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from xgamma.exceptions import GeometryError
from xgamma.geometry.energy import energy_centers
from xgamma.geometry.spherical import angular_distance, triangle_solid_angle, unit_vectors

if TYPE_CHECKING:
    import regions

__all__ = ["SkyGeometry", "FRAMES", "PROJECTIONS", "wcs_frame", "wrap_longitude"]

FRAMES = {"galactic": ("GLON", "GLAT"), "icrs": ("RA--", "DEC-")}
PROJECTIONS = ("CAR", "TAN", "AIT", "SIN", "ARC", "MOL", "ZEA", "STG")


#: Where each frame's longitude is usually quoted: RA in [0, 360) (catalogues, astropy), Galactic
#: longitude in [-180, 180) (continuous across the Galactic Centre, as in Gammapy's fitted values).
_LONGITUDE_WRAP = {"icrs": 360.0, "galactic": 180.0}


def wrap_longitude(lon: float | np.ndarray, frame: str) -> float | np.ndarray:
    """Longitude (deg) in the frame's usual range: RA in [0, 360), Galactic longitude in [-180, 180)."""
    lo = _LONGITUDE_WRAP.get(frame, 360.0) - 360.0
    lon = np.asarray(lon, dtype=float)
    # Values already in range are returned unchanged (no rounding from the modulo).
    out = np.where((lon >= lo) & (lon < lo + 360.0), lon, lo + (lon - lo) % 360.0)
    return float(out) if np.ndim(out) == 0 else out


def _parse_wcs(header: str) -> WCS:
    """A new WCS from FITS header text (the only way a geometry makes one)."""
    return WCS(fits.Header.fromstring(header))


def wcs_frame(wcs: WCS | str) -> str:
    """The sky frame (``"galactic"`` or ``"icrs"``) of a celestial WCS, or of its CTYPE1 string.

    Raises
    ------
    GeometryError
        A CTYPE1 of another frame (xgamma maps are Galactic or ICRS).
    """
    ctype = wcs if isinstance(wcs, str) else wcs.wcs.ctype[0]
    for frame, (lon_prefix, _) in FRAMES.items():
        if ctype[:4] == lon_prefix:
            return frame
    raise GeometryError(f"unsupported celestial WCS CTYPE1={ctype!r}: expected GLON-* or RA---*")


def _points(transform, first: np.ndarray | float, second: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """A WCS transform (``wcs_pix2world`` or ``wcs_world2pix``) of coordinate pairs, shaped like them.

    Called with one (n, 2) array: astropy's two-array form does the same stacking but costs ~6 us
    more per call, which the fit pays on every evaluation (a pixel position per source).
    """
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if first.shape != second.shape:
        first, second = np.broadcast_arrays(first, second)
    points = np.empty((first.size, 2))
    points[:, 0], points[:, 1] = first.ravel(), second.ravel()
    out = transform(points, 0)
    return out[:, 0].reshape(first.shape), out[:, 1].reshape(first.shape)


class SkyGeometry:
    """Pixel grid of a sky map: a celestial WCS, the image shape and (optionally) energy bin edges.

    An immutable value: the WCS is kept as its FITS header text (`header_text`), and each thread
    works on its own `~astropy.wcs.WCS` built from that text (astropy.wcs objects are not
    thread-safe, astropy issue 19174, so dask worker threads never share one). `wcs` returns a
    copy; the geometry's methods (`lonlat`, `pixel_to_world`, ...) use the thread's own WCS.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`
        Two-dimensional celestial WCS (read once: changing it later does not change the geometry).
    shape : tuple of int
        Image shape ``(n_lat, n_lon)`` in numpy order.
    energy_edges : `~astropy.units.Quantity`, optional
        Energy bin edges (TeV). None for a purely spatial geometry.

    Attributes
    ----------
    header_text : str
        The celestial WCS as FITS header text (what pickles, tokens and maps carry).

    See Also
    --------
    SkyGeometry.create : build a geometry from a centre, size and pixel size.
    """

    shape: tuple[int, int]
    energy_edges: u.Quantity | None
    header_text: str

    def __init__(self, wcs: WCS, shape: tuple[int, int], energy_edges: u.Quantity | None = None) -> None:
        if wcs.naxis != 2 or not wcs.has_celestial:
            raise GeometryError("SkyGeometry needs a 2-D celestial WCS")
        wcs_frame(wcs)
        header = wcs.to_header_string(relax=True)
        self._init(header, _parse_wcs(header), shape, energy_edges)

    def _init(self, header: str, wcs: WCS, shape: tuple[int, int], energy_edges: u.Quantity | None) -> None:
        """Set the fields; ``wcs`` is this thread's WCS, parsed from ``header``."""
        shape = tuple(int(n) for n in shape)
        if len(shape) != 2 or min(shape) < 1:
            raise GeometryError(f"image shape must be two positive integers (n_lat, n_lon), got {shape!r}")
        if energy_edges is not None:
            energy_edges = u.Quantity(energy_edges).to("TeV")
            if energy_edges.ndim != 1 or energy_edges.size < 2 or np.any(np.diff(energy_edges.value) <= 0):
                raise GeometryError("energy_edges must be a strictly increasing 1-D array of >= 2 energies")
            energy_edges.flags.writeable = False
        local = threading.local()
        local.wcs = wcs
        self.__dict__.update(shape=shape, energy_edges=energy_edges, header_text=header, _local=local)

    @classmethod
    def _from_header_text(cls, header: str, shape: tuple[int, int], energy_edges: u.Quantity | None,
                          wcs: WCS | None = None) -> SkyGeometry:
        """A geometry of WCS header text (``wcs``: this thread's WCS of that text, if at hand)."""
        out = cls.__new__(cls)
        out._init(header, _parse_wcs(header) if wcs is None else wcs, shape, energy_edges)
        return out

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"SkyGeometry is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"SkyGeometry is immutable: cannot delete {name!r}")

    @property
    def _wcs(self) -> WCS:
        """This thread's WCS (built from the header text on first use in a thread; never shared)."""
        wcs = getattr(self._local, "wcs", None)
        if wcs is None:
            wcs = self._local.wcs = _parse_wcs(self.header_text)
        return wcs

    @property
    def wcs(self) -> WCS:
        """The celestial `~astropy.wcs.WCS` (a copy: modifying it does not change the geometry)."""
        return self._wcs.deepcopy()

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        center: SkyCoord | tuple[float, float],
        *,
        width: u.Quantity | Sequence[u.Quantity],
        binsz: u.Quantity,
        frame: Literal["galactic", "icrs"] = "galactic",
        projection: str = "CAR",
        energy_edges: u.Quantity | None = None,
    ) -> SkyGeometry:
        """Build a geometry centred on ``center``.

        Parameters
        ----------
        center : `~astropy.coordinates.SkyCoord` or (float, float)
            Map centre; a tuple is (lon, lat) in degrees in ``frame``.
        width : `~astropy.units.Quantity` or pair of them
            Full width along longitude and latitude (angle). A scalar makes a square map.
        binsz : `~astropy.units.Quantity`
            Pixel size (angle).
        frame : {"galactic", "icrs"}
            Celestial frame. Default is "galactic".
        projection : str
            FITS projection code (CAR, TAN, ...). Default is "CAR".
        energy_edges : `~astropy.units.Quantity`, optional
            Energy bin edges.
        """
        if frame not in FRAMES:
            raise GeometryError(f"unknown frame {frame!r}; use one of {sorted(FRAMES)}")
        projection = projection.upper()
        if projection not in PROJECTIONS:
            raise GeometryError(f"unknown projection {projection!r}; use one of {list(PROJECTIONS)}")
        binsz_deg = Angle(binsz).to_value("deg")
        if not binsz_deg > 0:
            raise GeometryError(f"binsz must be positive, got {binsz}")
        widths = Angle(width).to_value("deg") if not isinstance(width, (list, tuple)) else [
            Angle(w).to_value("deg") for w in width
        ]
        widths = np.broadcast_to(np.asarray(widths, dtype=float), (2,))
        if np.any(widths <= 0):
            raise GeometryError(f"width must be positive, got {width}")
        n_lon, n_lat = (int(n) for n in np.rint(widths / binsz_deg))
        if isinstance(center, SkyCoord):
            center = center.transform_to(frame)
            lon0, lat0 = center.spherical.lon.deg, center.spherical.lat.deg
        else:
            lon0, lat0 = (float(Angle(c, "deg").deg) for c in center)

        wcs = WCS(naxis=2)
        lon_name, lat_name = FRAMES[frame]
        wcs.wcs.ctype = [f"{lon_name}-{projection}", f"{lat_name}-{projection}"]
        wcs.wcs.cunit = ["deg", "deg"]
        # Reference pixel at the image centre (FITS 1-based), as ds9 and Gammapy expect.
        wcs.wcs.crpix = [(n_lon + 1) / 2.0, (n_lat + 1) / 2.0]
        wcs.wcs.crval = [lon0, lat0]
        wcs.wcs.cdelt = [-binsz_deg, binsz_deg]
        if frame == "icrs":
            wcs.wcs.radesys = "ICRS"
        wcs.wcs.set()
        return cls(wcs=wcs, shape=(n_lat, n_lon), energy_edges=energy_edges)

    @classmethod
    def from_header(cls, header: fits.Header, *, energy_edges: u.Quantity | None = None) -> SkyGeometry:
        """Geometry from a FITS image header (the celestial axes only)."""
        try:
            wcs = WCS(header, naxis=2).celestial
            shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
        except (KeyError, ValueError) as error:
            raise GeometryError(f"cannot read a celestial WCS from the FITS header: {error}") from error
        return cls(wcs=wcs, shape=shape, energy_edges=energy_edges)

    def to_header(self) -> fits.Header:
        """Celestial WCS header with NAXIS1/NAXIS2."""
        header = self._wcs.to_header()
        header.insert(0, ("NAXIS", 2))
        header.insert(1, ("NAXIS1", self.shape[1]))
        header.insert(2, ("NAXIS2", self.shape[0]))
        return header

    # ------------------------------------------------------------------ properties
    @property
    def frame(self) -> str:
        """Celestial frame, "galactic" or "icrs"."""
        return wcs_frame(self._wcs)

    @property
    def projection(self) -> str:
        return self._wcs.wcs.ctype[0][-3:]

    @property
    def pixel_scale(self) -> float:
        """Pixel size in degrees: the smaller side of a pixel in the projection plane at the
        reference point (CDELT with the PC matrix, or CD), as `astropy.wcs.utils.proj_plane_pixel_scales`."""
        from astropy.wcs.utils import proj_plane_pixel_scales

        return float(np.min(proj_plane_pixel_scales(self._wcs)))

    @property
    def nbins(self) -> int:
        return 0 if self.energy_edges is None else self.energy_edges.size - 1

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Array shape ``(n_energy, n_lat, n_lon)`` (or ``(n_lat, n_lon)`` without energy axis)."""
        return (self.nbins, *self.shape) if self.energy_edges is not None else self.shape

    @property
    def center(self) -> SkyCoord:
        """Sky position of the image centre."""
        ny, nx = self.shape
        return self.pixel_to_skycoord((nx - 1) / 2.0, (ny - 1) / 2.0)

    @property
    def energy_centers(self) -> u.Quantity:
        if self.energy_edges is None:
            raise GeometryError("this geometry has no energy axis")
        return energy_centers(self.energy_edges)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SkyGeometry):
            return NotImplemented
        same_edges = (self.energy_edges is None and other.energy_edges is None) or (
            self.energy_edges is not None
            and other.energy_edges is not None
            and self.energy_edges.shape == other.energy_edges.shape
            and np.allclose(self.energy_edges.value, other.energy_edges.value, rtol=1e-12, atol=0)
        )
        return self.shape == other.shape and self._wcs.wcs.compare(other._wcs.wcs, tolerance=1e-10) and same_edges

    def __reduce__(self):
        # Pickle as header text: cheap to send, and a worker rebuilds each geometry only once.
        edges = None if self.energy_edges is None else tuple(self.energy_edges.to_value("TeV").tolist())
        return _restore_geometry, (self.header_text, self.shape, edges)

    def __dask_tokenize__(self) -> tuple:
        # What identifies the value (dask would otherwise pickle it to name graph layers).
        edges = None if self.energy_edges is None else tuple(self.energy_edges.to_value("TeV").tolist())
        return ("SkyGeometry", self.header_text, self.shape, edges)

    def __hash__(self) -> int:
        return hash((self.shape, self.header_text, self.nbins))

    def __repr__(self) -> str:
        c = self.center
        lon, lat = c.spherical.lon.deg, c.spherical.lat.deg
        energy = "" if self.energy_edges is None else (
            f", energy {self.energy_edges[0].value:.3g}-{self.energy_edges[-1].value:.3g} TeV in {self.nbins} bins"
        )
        return (
            f"SkyGeometry({self.projection} {self.frame} centre ({lon:.4f}, {lat:.4f}) deg, "
            f"{self.shape[1]} x {self.shape[0]} pixels of {self.pixel_scale:g} deg{energy})"
        )

    # ------------------------------------------------------------------ derived geometries
    def to_image(self) -> SkyGeometry:
        """The same geometry with one energy bin spanning the full range (or none)."""
        edges = None if self.energy_edges is None else self.energy_edges[[0, -1]]
        return self.with_energy(edges)

    def with_energy(self, energy_edges: u.Quantity | None) -> SkyGeometry:
        """The same pixels with other energy bin edges (or none)."""
        # same WCS: its header text and this thread's WCS are shared, not rebuilt
        return SkyGeometry._from_header_text(self.header_text, self.shape, energy_edges, wcs=self._wcs)

    def sliced(self, lat: slice, lon: slice) -> SkyGeometry:
        """Sub-geometry of the pixel ranges ``lat``, ``lon`` (unit-step slices)."""
        y0, y1, _ = lat.indices(self.shape[0])
        x0, x1, _ = lon.indices(self.shape[1])
        if y1 <= y0 or x1 <= x0:
            raise GeometryError(f"empty cutout: lat {lat}, lon {lon} of an image of shape {self.shape}")
        wcs = self._wcs.deepcopy()
        wcs.wcs.crpix = [wcs.wcs.crpix[0] - x0, wcs.wcs.crpix[1] - y0]
        wcs.wcs.set()
        return SkyGeometry(wcs, (y1 - y0, x1 - x0), self.energy_edges)

    def cutout_slices(self, position: SkyCoord, width: u.Quantity | Sequence[u.Quantity]) -> tuple[slice, slice]:
        """Pixel slices (lat, lon) of a box of ``width`` around ``position``, clipped to the map."""
        widths = np.broadcast_to(
            np.asarray([Angle(w).to_value("deg") for w in np.atleast_1d(width)]), (2,)
        )
        x, y = self.skycoord_to_pixel(position)
        half_x = widths[0] / self.pixel_scale / 2.0
        half_y = widths[1] / self.pixel_scale / 2.0
        x0, x1 = int(np.floor(x - half_x + 0.5)), int(np.floor(x + half_x + 0.5))
        y0, y1 = int(np.floor(y - half_y + 0.5)), int(np.floor(y + half_y + 0.5))
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.shape[1]), min(y1, self.shape[0])
        if x1 <= x0 or y1 <= y0:
            raise GeometryError(f"cutout around {position} does not overlap the map")
        return slice(y0, y1), slice(x0, x1)

    def cutout(self, position: SkyCoord, width: u.Quantity | Sequence[u.Quantity]) -> SkyGeometry:
        """Geometry of a box of ``width`` (angle, or (lon, lat) pair) around ``position``."""
        return self.sliced(*self.cutout_slices(position, width))

    # ------------------------------------------------------------------ coordinates
    def pixel_to_skycoord(self, x: np.ndarray | float, y: np.ndarray | float) -> SkyCoord:
        """Sky coordinates of 0-based pixel positions."""
        lon, lat = self._wcs.wcs_pix2world(x, y, 0)
        return SkyCoord(lon, lat, unit="deg", frame=self.frame)

    def skycoord_to_pixel(self, coord: SkyCoord) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel positions (x along lon, y along lat) of sky coordinates."""
        coord = coord.transform_to(self.frame)
        return self._wcs.wcs_world2pix(coord.spherical.lon.deg, coord.spherical.lat.deg, 0)

    def pixel_of(self, position: SkyCoord | None = None, *, lon=None, lat=None) -> tuple[np.ndarray, np.ndarray]:
        """Indices (row, column) of the pixels containing sky positions, exact through the WCS.

        Parameters
        ----------
        position : `~astropy.coordinates.SkyCoord`, optional
            Position(s), any frame.
        lon, lat : float, array or `~astropy.units.Quantity`, optional
            Instead of ``position``: world coordinates in this geometry's frame (numbers in deg).

        Returns
        -------
        row, column : numpy.ndarray of int
            Shaped like the positions.

        Raises
        ------
        GeometryError
            If a position is outside the map (never the edge pixel instead).
        """
        if position is None:
            if lon is None or lat is None:
                raise GeometryError("give a SkyCoord position, or both lon and lat (deg, in the map's frame)")
            position = SkyCoord(u.Quantity(lon, "deg"), u.Quantity(lat, "deg"), frame=self.frame)
        elif lon is not None or lat is not None:
            raise GeometryError("give either a SkyCoord position or lon and lat, not both")
        with np.errstate(invalid="ignore"):
            x, y = self.skycoord_to_pixel(position)
        column, row = np.floor(np.asarray(x) + 0.5), np.floor(np.asarray(y) + 0.5)
        outside = ~(np.isfinite(column) & np.isfinite(row) & (column >= 0) & (column < self.shape[1])
                    & (row >= 0) & (row < self.shape[0]))
        if np.any(outside):
            bad = np.atleast_1d(position.transform_to(self.frame))[np.atleast_1d(outside)][0]
            centre = self.center.spherical
            raise GeometryError(f"position ({bad.spherical.lon.deg:.6g}, {bad.spherical.lat.deg:.6g}) deg "
                                f"{self.frame} is outside the map ({self.shape[1]} x {self.shape[0]} pixels around "
                                f"({centre.lon.deg:.4f}, {centre.lat.deg:.4f}))")
        return row.astype(np.int64), column.astype(np.int64)

    def pixel_to_world(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(lon, lat) in degrees in the geometry's frame of 0-based pixel positions (x along lon)."""
        return _points(self._wcs.wcs_pix2world, x, y)

    def world_to_pixel(self, lon: np.ndarray | float, lat: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel positions (x along lon, y along lat) of (lon, lat) in degrees in the frame."""
        return _points(self._wcs.wcs_world2pix, lon, lat)

    def lonlat(self, lat: slice = slice(None), lon: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """2-D arrays (n_lat, n_lon) of pixel-centre longitude and latitude in degrees."""
        ys = np.arange(self.shape[0])[lat]
        xs = np.arange(self.shape[1])[lon]
        x, y = np.meshgrid(xs, ys)
        return self._wcs.wcs_pix2world(x, y, 0)

    def skycoord(self, lat: slice = slice(None), lon: slice = slice(None)) -> SkyCoord:
        """Pixel-centre sky coordinates, shape (n_lat, n_lon) (optionally of a pixel block)."""
        lon_deg, lat_deg = self.lonlat(lat, lon)
        return SkyCoord(lon_deg, lat_deg, unit="deg", frame=self.frame)

    def separation(self, position: SkyCoord, lat: slice = slice(None), lon: slice = slice(None)) -> np.ndarray:
        """Angular distance (deg) of each pixel centre from ``position``, shape (n_lat, n_lon)."""
        lon_deg, lat_deg = self.lonlat(lat, lon)
        position = position.transform_to(self.frame)
        return angular_distance(
            lon_deg, lat_deg, position.spherical.lon.deg, position.spherical.lat.deg
        )

    def solid_angle(self, lat: slice = slice(None), lon: slice = slice(None)) -> np.ndarray:
        """Exact solid angle (sr) of each pixel, shape (n_lat, n_lon).

        Each pixel is the spherical quadrilateral of its four corners, split into two spherical
        triangles whose areas follow from the Van Oosterom & Strackee (1983) formula.
        """
        y_idx = np.arange(self.shape[0])[lat]
        x_idx = np.arange(self.shape[1])[lon]
        ys = np.append(y_idx, y_idx[-1] + 1) - 0.5
        xs = np.append(x_idx, x_idx[-1] + 1) - 0.5
        xc, yc = np.meshgrid(xs, ys)
        lon_c, lat_c = self._wcs.wcs_pix2world(xc, yc, 0)
        v = unit_vectors(lon_c, lat_c)
        a, b, c, d = v[:-1, :-1], v[:-1, 1:], v[1:, 1:], v[1:, :-1]
        return triangle_solid_angle(a, b, c) + triangle_solid_angle(a, c, d)

    def region_mask(self, regions: regions.SkyRegion | Iterable[regions.SkyRegion], *, inside: bool = True) -> np.ndarray:
        """Boolean image (n_lat, n_lon), True for pixel centres inside any of ``regions``.

        Parameters
        ----------
        regions : `regions.SkyRegion` or iterable of them
            Sky regions (any frame).
        inside : bool
            If False, return the complement (pixels outside all regions). Default is True.
        """
        from regions import PixCoord, SkyRegion

        if isinstance(regions, SkyRegion):
            regions = [regions]
        ny, nx = self.shape
        x, y = np.meshgrid(np.arange(nx), np.arange(ny))
        pixels = PixCoord(x, y)
        mask = np.zeros(self.shape, dtype=bool)
        for region in regions:
            if not isinstance(region, SkyRegion):
                raise GeometryError(f"expected a regions.SkyRegion, got {type(region).__name__}")
            mask |= region.to_pixel(self._wcs).contains(pixels)
        return mask if inside else ~mask

    # ------------------------------------------------------------------ xarray coordinates
    def _axis_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """World coordinates (deg) of pixel centres along the reference row (lon) and column (lat)."""
        ny, nx = self.shape
        ref_x = float(np.clip(np.round(self._wcs.wcs.crpix[0] - 1), 0, nx - 1))
        ref_y = float(np.clip(np.round(self._wcs.wcs.crpix[1] - 1), 0, ny - 1))
        lon, _ = self._wcs.wcs_pix2world(np.arange(nx, dtype=float), np.full(nx, ref_y), 0)
        _, lat = self._wcs.wcs_pix2world(np.full(ny, ref_x), np.arange(ny, dtype=float), 0)
        # Keep longitudes continuous around the reference value (e.g. -5..5 rather than 355..5).
        lon0 = self._wcs.wcs.crval[0]
        return (lon - lon0 + 180.0) % 360.0 - 180.0 + lon0, lat

    @cached_property
    def separable(self) -> bool:
        """Whether longitude depends on the column only and latitude on the row only.

        True for cylindrical projections (CAR, ...) with the reference point on the frame's
        equator; then the 1-D ``lon``/``lat`` coordinates of a map are exact world coordinates of
        every pixel. Checked on the first, middle and last rows and columns (to 1e-6 pixel).
        """
        ny, nx = self.shape
        lon_ref, lat_ref = self._axis_labels()
        tolerance = 1e-6 * self.pixel_scale
        for y in {0, ny // 2, ny - 1}:
            lon, lat = self._wcs.wcs_pix2world(np.arange(nx, dtype=float), np.full(nx, float(y)), 0)
            if np.max(np.abs((lon - lon_ref + 180.0) % 360.0 - 180.0)) > tolerance or np.ptp(lat) > tolerance:
                return False
        for x in {0, nx // 2, nx - 1}:
            lon, lat = self._wcs.wcs_pix2world(np.full(ny, float(x)), np.arange(ny, dtype=float), 0)
            if np.max(np.abs(lat - lat_ref)) > tolerance or np.ptp((lon - lon[0] + 180.0) % 360.0) > tolerance:
                return False
        return True

    def coords(self):
        """xarray coordinates of a map on this geometry (an `xarray.Coordinates`; see docs/architecture.md).

        ``lon``/``lat`` carry a :class:`~xgamma.geometry.indexes.SkyAxisIndex` on separable grids
        (exact labels) and a :class:`~xgamma.geometry.indexes.ProjectedSkyAxisIndex` otherwise
        (labels along the reference row and column only: ``.sel`` refuses them); ``energy``
        carries an :class:`~xgamma.geometry.indexes.EnergyIndex`. ``pix_lon``, ``pix_lat``,
        ``energy_min`` and ``energy_max`` carry a plain `~xarray.indexes.PandasIndex`: xarray keeps
        indexed coordinates in memory, so chunking a map never makes its geometry a dask array.
        """
        import xarray as xr

        from xgamma.geometry.indexes import sky_index

        ny, nx = self.shape
        lon, lat = self._axis_labels()
        note = "" if self.separable else " along the reference {} (not exact elsewhere: use .sky.sel)"
        variables = {
            "lon": xr.Variable("lon", lon, {"units": "deg",
                                            "long_name": f"{self.frame} longitude{note.format('row')}"}),
            "lat": xr.Variable("lat", lat, {"units": "deg",
                                            "long_name": f"{self.frame} latitude{note.format('column')}"}),
            "pix_lon": xr.Variable("lon", np.arange(nx, dtype=np.int64)),
            "pix_lat": xr.Variable("lat", np.arange(ny, dtype=np.int64)),
            "wcs": xr.Variable((), self.header_text),
        }
        indexes = {"lon": sky_index("lon", lon, separable=self.separable),
                   "lat": sky_index("lat", lat, separable=self.separable),
                   # indexed so that they stay in memory: Dataset.chunk never makes them dask arrays
                   "pix_lon": _plain_index(variables["pix_lon"], "pix_lon"),
                   "pix_lat": _plain_index(variables["pix_lat"], "pix_lat")}
        coords = xr.Coordinates(variables, indexes=indexes)
        return coords if self.energy_edges is None else coords.assign(self.energy_coords())

    def energy_coords(self, dim: str = "energy"):
        """The ``energy`` (bin centres, TeV, with an `~xgamma.geometry.indexes.EnergyIndex`),
        ``energy_min`` and ``energy_max`` coordinates (an `xarray.Coordinates`); with
        ``dim="energy_true"`` the same for a true-energy axis (``energy_true``, ...)."""
        import pandas as pd
        import xarray as xr

        from xgamma.geometry.indexes import EnergyIndex

        if self.energy_edges is None:
            raise GeometryError("this geometry has no energy axis")
        edges = self.energy_edges.to_value("TeV")
        centres = np.sqrt(edges[:-1] * edges[1:])
        variables = {dim: xr.Variable(dim, centres, {"units": "TeV"}),
                     f"{dim}_min": xr.Variable(dim, edges[:-1], {"units": "TeV"}),
                     f"{dim}_max": xr.Variable(dim, edges[1:], {"units": "TeV"})}
        return xr.Coordinates(variables, indexes={dim: EnergyIndex(pd.Index(centres), dim),
                                                  f"{dim}_min": _plain_index(variables[f"{dim}_min"], f"{dim}_min"),
                                                  f"{dim}_max": _plain_index(variables[f"{dim}_max"], f"{dim}_max")})


def _plain_index(variable, name: str):
    """A plain `~xarray.indexes.PandasIndex` of a 1-D non-dimension coordinate."""
    from xarray.indexes import PandasIndex

    return PandasIndex(variable.to_index().rename(name), variable.dims[0], coord_dtype=variable.dtype)


@lru_cache(maxsize=32)
def _restore_geometry(header: str, shape: tuple[int, int], edges: tuple[float, ...] | None) -> SkyGeometry:
    # Cached: geometries are immutable values, and a worker rebuilds each one only once.
    return SkyGeometry._from_header_text(header, shape, None if edges is None else u.Quantity(edges, "TeV"))
