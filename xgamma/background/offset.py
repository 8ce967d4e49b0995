"""Field-of-view offset cuts of sky maps: which pixels lie within ``offset_max`` of a pointing.

Pixel positions (and unit vectors) are computed once per geometry and cached, so a cut per
observation costs one dot product per pixel.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from xgamma.exceptions import EstimatorError

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord

    from xgamma.geometry import SkyGeometry

__all__ = ["offset_mask"]

_PIXEL_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_PIXEL_LOCK = threading.Lock()


def _geometry_key(geometry: SkyGeometry) -> tuple:
    """Hashable identity of a pixel grid (shape and WCS header text); cheap to hash once built."""
    return (geometry.shape, geometry.header_text)


def _pixel_positions(geometry: SkyGeometry, key: tuple | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-centre (lon, lat) in degrees and unit vectors of a geometry, computed once.

    The WCS evaluation is the costly part of an offset cut; every observation (and block) of a
    map shares it. ``key`` (`_geometry_key`) saves rebuilding the header text on every call.
    """
    from xgamma.geometry.spherical import unit_vectors

    key = _geometry_key(geometry) if key is None else key
    cached = _PIXEL_CACHE.get(key)
    if cached is None:
        lon, lat = geometry.lonlat()
        cached = (lon, lat, unit_vectors(lon, lat))
        with _PIXEL_LOCK:  # threaded scheduler: blocks of one graph share the cache
            while len(_PIXEL_CACHE) >= 4:  # a few geometries at a time: keep memory bounded
                _PIXEL_CACHE.pop(next(iter(_PIXEL_CACHE)))
            _PIXEL_CACHE[key] = cached
    return cached


# Dot products within this of cos(offset_max) are re-checked with the exact great-circle
# distance, so that the cut is identical to ``separation < offset_max`` pixel by pixel.
_DOT_MARGIN = 1e-9


def _inside_block(
    geometry: SkyGeometry, pointings: np.ndarray, limit: float, lat: slice, lon: slice, key: tuple | None = None
) -> np.ndarray:
    """Pixels of a block closer than ``limit`` deg to each pointing, shape (n_pointing, n_lat, n_lon).

    ``pointings`` (n, 2) are (lon, lat) in degrees in the geometry frame. A dot product with
    cached pixel vectors decides all pixels but those within rounding of the edge, which get the
    exact distance.
    """
    from xgamma.geometry.spherical import angular_distance, unit_vectors

    lon_px, lat_px, vectors = _pixel_positions(geometry, key)
    lon_px, lat_px, vectors = lon_px[lat, lon], lat_px[lat, lon], vectors[lat, lon]
    cos_limit = np.cos(np.radians(limit))
    out = np.empty((len(pointings), *lon_px.shape), dtype=bool)
    for k, (plon, plat) in enumerate(pointings):
        dot = vectors @ unit_vectors(plon, plat)
        out[k] = dot > cos_limit
        edge = np.abs(dot - cos_limit) <= _DOT_MARGIN
        if edge.any():
            out[k][edge] = angular_distance(lon_px[edge], lat_px[edge], plon, plat) < limit
    return out


def _offset_block(
    geometry: SkyGeometry, lon: float, lat: float, limit: float, key: tuple, block_info: Any = None
) -> np.ndarray:
    (y0, y1), (x0, x1) = block_info[None]["array-location"][-2:]
    return _inside_block(geometry, np.array([[lon, lat]]), limit, slice(y0, y1), slice(x0, x1), key)[0]


def _lonlat_in_frame(coord: SkyCoord, frame: str) -> np.ndarray:
    """(lon, lat) in degrees of (an array of) positions in ``frame``, shape (n, 2).

    ICRS <-> Galactic is a fixed rotation (`~xgamma.geometry.spherical.transform_lonlat`), much
    cheaper than `SkyCoord.transform_to`; other frames go through astropy.
    """
    from xgamma.geometry.spherical import transform_lonlat

    name = coord.frame.name
    if name in ("icrs", "galactic") and frame in ("icrs", "galactic"):
        spherical = coord.spherical
        lon, lat = transform_lonlat(spherical.lon.deg, spherical.lat.deg, name, frame)
    else:
        spherical = coord.transform_to(frame).spherical
        lon, lat = spherical.lon.deg, spherical.lat.deg
    return np.stack([np.ravel(lon), np.ravel(lat)], axis=-1).astype(float)


def _pointing_lonlat(geometry: SkyGeometry, pointing: SkyCoord) -> tuple[float, float]:
    """Pointing (lon, lat) in degrees in the geometry frame."""
    lon, lat = _lonlat_in_frame(pointing, geometry.frame)[0]
    return float(lon), float(lat)


def _offset_limit(offset_max: Any) -> float:
    from xgamma.units import parse_angle

    limit = parse_angle(offset_max, name="offset_max").to_value("deg")
    if not limit > 0:
        raise EstimatorError(f"offset_max must be positive, got {offset_max!r}")
    return float(limit)


def offset_mask(
    geometry: SkyGeometry, pointing: SkyCoord, *, offset_max: Any, chunks: Any = None
) -> Any:
    """Boolean image, True for pixel centres closer than ``offset_max`` to ``pointing``.

    Parameters
    ----------
    geometry : `~xgamma.geometry.SkyGeometry`
        Pixel grid.
    pointing : `~astropy.coordinates.SkyCoord`
        Pointing position (scalar).
    offset_max : str or `~astropy.units.Quantity`
        Maximum offset (angle); the cut is strict (``<``), as Gammapy's safe mask.
    chunks : tuple, optional
        Dask chunks ``(lat_chunks, lon_chunks)``; None returns a numpy array.

    Returns
    -------
    mask : `numpy.ndarray` or `dask.array.Array`
        Shape ``geometry.shape``.
    """
    limit = _offset_limit(offset_max)
    image = geometry.to_image().with_energy(None)
    args = (image, *_pointing_lonlat(geometry, pointing), limit, _geometry_key(image))
    if chunks is None:
        n_lat, n_lon = geometry.shape
        return _offset_block(*args, block_info={None: {"array-location": [(0, n_lat), (0, n_lon)]}})
    import dask.array as da

    return da.map_blocks(_offset_block, *args, chunks=chunks, dtype=bool, meta=np.empty((0, 0), bool))
