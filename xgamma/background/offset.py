"""Field-of-view offset cuts of sky maps: which pixels lie within ``offset_max`` of a pointing.

A cut per observation costs one dot product per pixel with the unit vectors of the pixel centres.
Those vectors are computed per block of pixels (a block function asks for its own window) and a
few recent blocks are kept, read-only, so that the runs of a block and repeated estimations
(iterative exclusion) share them; memory is proportional to a block, never to the map.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from xgamma.exceptions import EstimatorError

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord

    from xgamma.geometry import SkyGeometry

__all__ = ["offset_mask", "inside_offset", "offset_limit", "pointing_lonlat", "lonlat_in_frame"]

#: Blocks of pixel vectors kept (each at most a block: `xgamma.blocks.block_size` pixels plus overlap).
_KEPT_BLOCKS = 4
_VECTORS: OrderedDict[tuple, np.ndarray] = OrderedDict()
_VECTORS_LOCK = threading.Lock()

# Dot products within this of cos(offset_max) are re-checked with the exact great-circle
# distance, so that the cut is identical to ``separation < offset_max`` pixel by pixel.
_DOT_MARGIN = 1e-9


def _pixel_vectors(geometry: SkyGeometry, lat: slice, lon: slice) -> np.ndarray:
    """Unit vectors (n_lat, n_lon, 3) of the pixel centres of a block, read-only.

    The WCS evaluation is the costly part of an offset cut: the last few blocks are kept (a
    least-recently-used set keyed by the geometry's header text and the block's pixel ranges).
    """
    from xgamma.geometry.spherical import unit_vectors

    key = (geometry.shape, geometry.header_text, lat.start, lat.stop, lon.start, lon.stop)
    with _VECTORS_LOCK:
        vectors = _VECTORS.get(key)
        if vectors is not None:
            _VECTORS.move_to_end(key)
            return vectors
    vectors = unit_vectors(*geometry.lonlat(lat, lon))
    vectors.flags.writeable = False  # shared by every caller: nobody may write into it
    with _VECTORS_LOCK:
        _VECTORS[key] = vectors
        while len(_VECTORS) > _KEPT_BLOCKS:
            _VECTORS.popitem(last=False)
    return vectors


def inside_offset(geometry: SkyGeometry, pointings: np.ndarray, limit: float, lat: slice, lon: slice) -> np.ndarray:
    """Pixels of a block closer than ``limit`` deg to each pointing, shape (n_pointing, n_lat, n_lon).

    Parameters
    ----------
    geometry : `~xgamma.geometry.SkyGeometry`
        Pixel grid of the whole map.
    pointings : `numpy.ndarray`
        (n, 2): (lon, lat) in degrees in the geometry's frame.
    limit : float
        Offset cut in degrees (strict: ``separation < limit``).
    lat, lon : slice
        Pixel ranges of the block (unit step, explicit start and stop).

    Notes
    -----
    A dot product with the pixel unit vectors decides all pixels but those within rounding of
    the edge, which get the exact great-circle distance of their WCS position.
    """
    from xgamma.geometry.spherical import angular_distance, unit_vectors

    vectors = _pixel_vectors(geometry, lat, lon)
    cos_limit = np.cos(np.radians(limit))
    out = np.empty((len(pointings), *vectors.shape[:2]), dtype=bool)
    for k, (plon, plat) in enumerate(pointings):
        dot = vectors @ unit_vectors(plon, plat)
        np.greater(dot, cos_limit, out=out[k])
        edge = np.abs(dot - cos_limit) <= _DOT_MARGIN
        if edge.any():
            rows, cols = np.nonzero(edge)
            lon_px, lat_px = geometry.pixel_to_world(cols + lon.start, rows + lat.start)
            out[k][edge] = angular_distance(lon_px, lat_px, plon, plat) < limit
    return out


def _offset_block(geometry: SkyGeometry, lon: float, lat: float, limit: float, block_info: Any = None) -> np.ndarray:
    (y0, y1), (x0, x1) = block_info[None]["array-location"][-2:]
    return inside_offset(geometry, np.array([[lon, lat]]), limit, slice(y0, y1), slice(x0, x1))[0]


def lonlat_in_frame(coord: SkyCoord, frame: str) -> np.ndarray:
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


def pointing_lonlat(geometry: SkyGeometry, pointing: SkyCoord) -> tuple[float, float]:
    """Pointing (lon, lat) in degrees in the geometry frame."""
    lon, lat = lonlat_in_frame(pointing, geometry.frame)[0]
    return float(lon), float(lat)


def offset_limit(offset_max: Any) -> float:
    """``offset_max`` (angle: str or Quantity) in degrees, checked positive."""
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
    limit = offset_limit(offset_max)
    image = geometry.to_image().with_energy(None)
    args = (image, *pointing_lonlat(geometry, pointing), limit)
    if chunks is None:
        n_lat, n_lon = geometry.shape
        return _offset_block(*args, block_info={None: {"array-location": [(0, n_lat), (0, n_lon)]}})
    import dask.array as da

    return da.map_blocks(_offset_block, *args, chunks=chunks, dtype=bool, meta=np.empty((0, 0), bool))
