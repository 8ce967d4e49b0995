"""Lazy map making: counts, exposure and background per observation, stacked by summing.

The dask graph has three kinds of tasks:

* one ``load`` task per observation (read events and IRFs, bin event positions to pixels);
* one ``block`` task per (observation, spatial chunk) that the observation overlaps within
  ``offset_max`` (counts, exposure and background of that pixel block);
* one ``stack`` task per spatial chunk that sums the blocks of all observations touching it.

So memory grows with a chunk, not with the map, and chunks far from every pointing cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
import xarray as xr
from astropy.coordinates import Angle, SkyCoord

from xgamma.exceptions import ConfigError, DataStoreError, GeometryError
from xgamma.geometry import SkyGeometry
from xgamma.geometry.spherical import (
    angular_distance,
    chord_separation,
    lonlat_from_vectors,
    rotation_matrix,
    transform_lonlat,
    unit_vectors,
)
from xgamma.makers.safe_energy import SafeEnergy, safe_energy_mask, safe_offset_max
from xgamma.maps import make_map

if TYPE_CHECKING:
    from xgamma.io.datastore import Observation

__all__ = ["make_maps", "make_observation_maps", "DEFAULT_CHUNK", "MAP_VARIABLES"]

DEFAULT_CHUNK = 256
MAP_VARIABLES = ("counts", "exposure", "background")
_UNITS = {"counts": "", "exposure": "m2 s", "background": ""}


@dataclass(frozen=True)
class _ObservationData:
    """What the block tasks need from one observation, loaded once per observation."""

    obs_id: int
    pointing: SkyCoord
    pointing_vector: np.ndarray  # unit vector of the pointing in the map frame
    livetime_s: float
    ontime_s: float
    event_ix: np.ndarray  # 0-based pixel column of each event inside the map and energy axis
    event_iy: np.ndarray  # pixel row
    event_energy_bin: np.ndarray  # energy bin index
    aeff: Any
    bkg: Any
    observation: Any
    energy_mask: np.ndarray  # bool per energy bin: inside the safe range
    offset_max_deg: float  # the map's offset cut, tightened by the safe range's offset-max


def _chunk_slices(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _normalise_chunks(chunks: int | Sequence[int] | None, shape: tuple[int, int]) -> tuple[int, int]:
    if chunks is None:
        chunks = DEFAULT_CHUNK
    sizes = np.broadcast_to(np.asarray(chunks, dtype=int), (2,))
    if np.any(sizes < 1):
        raise GeometryError(f"spatial chunk sizes must be positive, got {chunks}")
    return int(min(sizes[0], shape[0])), int(min(sizes[1], shape[1]))


def _load_observation(observation: Observation, geometry: SkyGeometry, safe_energy: SafeEnergy | None,
                      offset_max_deg: float, energy_true: u.Quantity | None = None) -> _ObservationData:
    """Read one observation's events and IRFs and place events on the pixel grid."""
    events = observation.events
    edges = geometry.energy_edges.to_value("TeV")
    # A fixed rotation (not SkyCoord) to the map frame: same numbers as astropy to 1e-13 deg.
    lon, lat = transform_lonlat(np.asarray(events.ra, float), np.asarray(events.dec, float), "icrs", geometry.frame)
    x, y = geometry.wcs.wcs_world2pix(lon, lat, 0)
    # Pixel index = floor(x + 0.5): pixel i spans [i - 0.5, i + 0.5) in 0-based pixel coordinates.
    ix = np.floor(x + 0.5)
    iy = np.floor(y + 0.5)
    energy = np.asarray(events.energy, dtype=float)
    energy_bin = np.searchsorted(edges, energy, side="right") - 1
    keep = ((energy >= edges[0]) & (energy < edges[-1]) & (ix >= 0) & (ix < geometry.shape[1])
            & (iy >= 0) & (iy < geometry.shape[0]))
    aeff = observation.aeff
    return _ObservationData(
        obs_id=int(observation.obs_id),
        pointing=observation.pointing,
        pointing_vector=unit_vectors(*transform_lonlat(observation.pointing.ra.deg, observation.pointing.dec.deg,
                                                       "icrs", geometry.frame)),
        livetime_s=u.Quantity(observation.livetime).to_value("s"),
        ontime_s=u.Quantity(observation.ontime).to_value("s"),
        event_ix=ix[keep].astype(np.int32),
        event_iy=iy[keep].astype(np.int32),
        event_energy_bin=energy_bin[keep].astype(np.int32),
        aeff=aeff,
        bkg=observation.bkg,
        observation=observation,
        energy_mask=safe_energy_mask(observation, geometry, safe_energy, energy_true=energy_true),
        offset_max_deg=safe_offset_max(safe_energy, offset_max_deg),
    )


def _block_counts(data: _ObservationData, geometry: SkyGeometry, lat: slice, lon: slice) -> np.ndarray:
    nbins = geometry.nbins
    ny, nx = lat.stop - lat.start, lon.stop - lon.start
    ix = data.event_ix - lon.start
    iy = data.event_iy - lat.start
    keep = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    flat = (data.event_energy_bin[keep].astype(np.int64) * ny + iy[keep]) * nx + ix[keep]
    return np.bincount(flat, minlength=nbins * ny * nx).reshape(nbins, ny, nx).astype(float)


@dataclass(frozen=True)
class _PixelBlock:
    """Geometry of one spatial chunk, computed once and shared by every observation touching it."""

    lat: slice
    lon: slice
    vectors: np.ndarray  # unit vectors of pixel centres in the map frame, (n_lat, n_lon, 3)
    ra_deg: np.ndarray  # pixel centres in ICRS (for field-of-view coordinates)
    dec_deg: np.ndarray
    solid_angle: np.ndarray  # sr


def _pixel_block(geometry: SkyGeometry, lat: slice, lon: slice) -> _PixelBlock:
    lon_deg, lat_deg = geometry.lonlat(lat, lon)
    vectors = unit_vectors(lon_deg, lat_deg)
    ra, dec = lonlat_from_vectors(vectors @ rotation_matrix(geometry.frame, "icrs").T)
    return _PixelBlock(lat, lon, vectors, ra, dec, geometry.solid_angle(lat, lon))


def _background_rate(data: _ObservationData, edges: u.Quantity, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Background rate integrated over each energy bin (s-1 sr-1), shape (n_energy, n_pixels)."""
    from xgamma.irf.background import Background3D, fov_coordinates, fov_coordinates_radec, fov_rotation_times

    bkg = data.bkg
    if not isinstance(bkg, Background3D) or bkg.fov_alignment == "RADEC":
        pointing = data.pointing
        fov_lon, fov_lat = fov_coordinates_radec(ra, dec, pointing.ra.deg, pointing.dec.deg)
        return bkg.integrate_energy(edges, fov_lon, fov_lat).to_value("s-1 sr-1")
    # ALTAZ-aligned model: the field of view rotates on the sky during the run. Average the rate
    # over time steps small enough that the rotation stays below 1 deg, weighted by duration.
    times = fov_rotation_times(data.observation)
    mids = times[:-1] + 0.5 * (times[1:] - times[:-1])
    weights = (times[1:] - times[:-1]).to_value("s")
    pixels = SkyCoord(ra, dec, unit="deg", frame="icrs")
    rate = np.zeros((edges.size - 1, ra.size))
    for time, weight in zip(mids, weights / weights.sum()):
        fov_lon, fov_lat = fov_coordinates(data.observation, pixels, alignment="ALTAZ", time=time)
        rate += weight * bkg.integrate_energy(edges, fov_lon, fov_lat).to_value("s-1 sr-1")
    return rate


def _make_block(
    data: _ObservationData, pixels: _PixelBlock, geometry: SkyGeometry, offset_max_deg: float
) -> np.ndarray:
    """Counts, exposure (m2 s) and background (counts) of one observation on one pixel block.

    Returns an array of shape (3, n_energy, n_lat_block, n_lon_block).
    """
    edges = geometry.energy_edges
    offset = chord_separation(pixels.vectors, data.pointing_vector)
    inside = offset < min(offset_max_deg, data.offset_max_deg)
    out = np.zeros((3, geometry.nbins, *offset.shape))
    if not inside.any():
        return out
    counts = _block_counts(data, geometry, pixels.lat, pixels.lon)
    counts[:, ~inside] = 0.0
    out[0] = counts

    # Evaluate the IRFs only on pixels within offset_max (1-D pixel list keeps temporaries small);
    # exposure and background stay zero elsewhere.
    offset_in = u.Quantity(offset[inside], "deg")
    centers = u.Quantity(np.sqrt(edges.value[:-1] * edges.value[1:]), edges.unit)
    aeff = data.aeff.evaluate(energy_true=centers[:, None], offset=offset_in[None, :])
    out[1][:, inside] = aeff.to_value("m2") * data.livetime_s

    rate = _background_rate(data, edges, pixels.ra_deg[inside], pixels.dec_deg[inside])
    # The background rate is per unit wall-clock time (dead time included), hence ontime.
    out[2][:, inside] = rate * (pixels.solid_angle[inside] * data.ontime_s)

    if not data.energy_mask.all():
        out[:, ~data.energy_mask] = 0.0
    return out


def _add_blocks(total: np.ndarray, block: np.ndarray) -> np.ndarray:
    return total + block


def _overlaps(geometry: SkyGeometry, pointing: tuple[float, float, float, float], lat: slice, lon: slice,
              offset_max_deg: float) -> bool:
    """Whether any pixel centre of the block lies within ``offset_max`` of the pointing.

    The nearest pixel of a block to an outside point lies on the block's border, so the border
    pixels plus a "pointing inside the block" test decide it; one pixel of margin covers the
    curvature of the projection.
    """
    lon0, lat0, x, y = pointing
    if lon.start - 0.5 <= x < lon.stop - 0.5 and lat.start - 0.5 <= y < lat.stop - 0.5:
        return True
    ys = np.arange(lat.start, lat.stop)
    xs = np.arange(lon.start, lon.stop)
    border_x = np.concatenate([xs, xs, np.full(ys.size, xs[0]), np.full(ys.size, xs[-1])])
    border_y = np.concatenate([np.full(xs.size, ys[0]), np.full(xs.size, ys[-1]), ys, ys])
    lon_deg, lat_deg = geometry.wcs.wcs_pix2world(border_x, border_y, 0)
    distance = angular_distance(lon_deg, lat_deg, lon0, lat0)
    return bool(distance.min() < offset_max_deg + 1.5 * geometry.pixel_scale)


def _check_inputs(observations: Sequence[Observation], geometry: SkyGeometry, offset_max: Any) -> float:
    if geometry.energy_edges is None:
        raise GeometryError("map making needs a geometry with an energy axis (energy_edges)")
    if len(observations) == 0:
        raise DataStoreError("no observations to make maps from: the selection is empty")
    try:
        offset_max_deg = Angle(offset_max).to_value("deg")
    except (u.UnitsError, ValueError, TypeError) as error:
        raise ConfigError(f"maps.offset_max: expected an angle, got {offset_max!r}") from error
    if not offset_max_deg > 0:
        raise ConfigError(f"maps.offset_max must be positive, got {offset_max}")
    return offset_max_deg


def make_maps(
    observations: Sequence[Observation],
    geometry: SkyGeometry,
    *,
    offset_max: u.Quantity,
    safe_energy: SafeEnergy | str | Sequence[str] | dict | None = None,
    energy_true: u.Quantity | None = None,
    chunks: int | Sequence[int] | None = None,
) -> xr.Dataset:
    """Stacked counts, exposure and background cubes of observations, as a lazy Dataset.

    Parameters
    ----------
    observations : sequence of `~xgamma.io.datastore.Observation`
        Observations to stack.
    geometry : `~xgamma.geometry.SkyGeometry`
        Map geometry, with an energy axis (reconstructed energy; without energy dispersion the
        exposure is evaluated at the same bin centres).
    offset_max : `~astropy.units.Quantity`
        Maximum field-of-view offset (angle) of a pixel centre; pixels beyond are zero.
    safe_energy : `~xgamma.makers.safe_energy.SafeEnergy`, method name(s) or mapping, optional
        Safe data range per observation (`~xgamma.makers.safe_energy`): counts, background
        and exposure are zeroed in the reco-energy bins outside it (and beyond its
        ``offset-max``). Default is None (no energy cut).
    energy_true : `~astropy.units.Quantity`, optional
        True-energy bin edges. When given, the Dataset also holds ``exposure_true`` (dims
        ``("energy_true", "lat", "lon")``, not cut in energy: with energy dispersion the safe
        range acts on reconstructed energy, through the migration kernel), and the
        ``aeff-max`` / ``edisp-bias`` safe ranges evaluate the IRFs on this axis.
    chunks : int or (int, int), optional
        Spatial chunk size (n_lat, n_lon) in pixels. Default is 256.

    Returns
    -------
    maps : `xarray.Dataset`
        ``counts`` (counts), ``exposure`` (m2 s) and ``background`` (counts) with dims
        ``("energy", "lat", "lon")`` (plus ``exposure_true``), each a dask array; nothing is
        computed.
    """
    safe_energy = SafeEnergy.parse(safe_energy)
    stacked = _build_array(observations, geometry, offset_max=offset_max, safe_energy=safe_energy, chunks=chunks,
                           per_observation=False, energy_true=energy_true)
    variables = {
        name: make_map(stacked[index], geometry, name=name, units=_UNITS[name])
        for index, name in enumerate(MAP_VARIABLES)
    }
    if energy_true is not None:
        from xgamma.makers.exposure import make_exposure_true

        variables["exposure_true"] = make_exposure_true(observations, geometry, energy_true, offset_max=offset_max,
                                                        safe_energy=safe_energy, chunks=chunks)
    dataset = xr.Dataset(variables)
    dataset.attrs["obs_ids"] = [int(o.obs_id) for o in observations]
    dataset.attrs["offset_max_deg"] = Angle(offset_max).to_value("deg")
    return dataset


def _build_array(
    observations: Sequence[Observation],
    geometry: SkyGeometry,
    *,
    offset_max: Any,
    safe_energy: SafeEnergy | None,
    chunks: int | Sequence[int] | None,
    per_observation: bool,
    energy_true: u.Quantity | None = None,
):
    """The dask array (3, energy, lat, lon) of the stack, or (obs, 3, energy, lat, lon) per observation."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    offset_max_deg = _check_inputs(observations, geometry, offset_max)
    size_y, size_x = _normalise_chunks(chunks, geometry.shape)
    lat_slices = _chunk_slices(geometry.shape[0], size_y)
    lon_slices = _chunk_slices(geometry.shape[1], size_x)
    token = tokenize([o.obs_id for o in observations], [str(o) for o in observations], geometry.header_text,
                     geometry.shape, geometry.energy_edges.value, offset_max_deg, repr(safe_energy), size_y, size_x,
                     per_observation, None if energy_true is None else u.Quantity(energy_true, "TeV").value)
    load_name, pixel_name, block_name, sum_name, out_name = (
        f"xgamma-{kind}-{token}" for kind in ("load", "pixels", "block", "sum", "maps")
    )

    graph: dict[Any, Any] = {}
    pointings = []
    for observation in observations:
        lon0, lat0 = transform_lonlat(observation.pointing.ra.deg, observation.pointing.dec.deg, "icrs",
                                      geometry.frame)
        x0, y0 = geometry.wcs.wcs_world2pix(lon0, lat0, 0)
        pointings.append((float(lon0), float(lat0), float(x0), float(y0)))
    for k, observation in enumerate(observations):
        graph[(load_name, k)] = (_load_observation, observation, geometry, safe_energy, offset_max_deg, energy_true)
    for i, lat in enumerate(lat_slices):
        for j, lon in enumerate(lon_slices):
            shape = (3, geometry.nbins, lat.stop - lat.start, lon.stop - lon.start)
            block_keys = {}
            for k in range(len(observations)):
                if _overlaps(geometry, pointings[k], lat, lon, offset_max_deg):
                    key = (block_name, k, i, j)
                    graph[key] = (_make_block, (load_name, k), (pixel_name, i, j), geometry, offset_max_deg)
                    block_keys[k] = key
            if block_keys:
                graph[(pixel_name, i, j)] = (_pixel_block, geometry, lat, lon)
            if per_observation:
                for k in range(len(observations)):
                    graph[(out_name, k, 0, 0, i, j)] = (
                        (_expand, block_keys[k]) if k in block_keys else (np.zeros, (1, *shape))
                    )
                continue
            if not block_keys:
                graph[(out_name, 0, 0, i, j)] = (np.zeros, shape)
                continue
            # Stack as a chain (block 0 + block 1, + block 2, ...) so that each block is added and
            # released as soon as it exists: memory stays ~ one chunk per observation in flight.
            keys = list(block_keys.values())
            total = keys[0]
            for m, key in enumerate(keys[1:], start=1):
                graph[(sum_name, m, i, j)] = (_add_blocks, total, key)
                total = (sum_name, m, i, j)
            graph[(out_name, 0, 0, i, j)] = (np.copy, total)

    chunks_out = ((3,), (geometry.nbins,), tuple(s.stop - s.start for s in lat_slices),
                  tuple(s.stop - s.start for s in lon_slices))
    if per_observation:
        chunks_out = ((1,) * len(observations), *chunks_out)
    hlg = HighLevelGraph.from_collections(out_name, graph, dependencies=())
    return da.Array(hlg, out_name, chunks=chunks_out, dtype=float)


def _expand(block: np.ndarray) -> np.ndarray:
    return block[np.newaxis]


def make_observation_maps(
    observations: Sequence[Observation],
    geometry: SkyGeometry,
    *,
    offset_max: u.Quantity,
    safe_energy: SafeEnergy | str | Sequence[str] | dict | None = None,
    energy_true: u.Quantity | None = None,
    chunks: int | Sequence[int] | None = None,
) -> xr.Dataset:
    """Per-observation counts, exposure and background along an ``obs_id`` dim (lazy).

    Same parameters as `make_maps` (``energy_true`` only sets the axis of the safe-range
    methods; ``exposure_true`` is not made per observation); ``maps.sum("obs_id")`` equals its
    result. Estimators that
    must not mix observations before a non-linear step (the ring background) use these. The
    blocks are the tasks of `make_maps` (one per observation and overlapping chunk; chunks an
    observation does not reach are zeros), so computing a stack and per-observation products
    together reads each observation once.

    Returns
    -------
    maps : `xarray.Dataset`
        ``counts``, ``exposure`` (m2 s), ``background`` with dims ``("obs_id", "energy", "lat",
        "lon")`` and coordinates ``obs_id``, ``pointing_ra``, ``pointing_dec`` (ICRS, deg).
    """
    data = _build_array(observations, geometry, offset_max=offset_max, safe_energy=SafeEnergy.parse(safe_energy),
                        chunks=chunks, per_observation=True, energy_true=energy_true)
    coords = geometry.coords().assign(  # keeps the sky and energy indexes of the geometry
        obs_id=("obs_id", [int(o.obs_id) for o in observations]),
        pointing_ra=("obs_id", [float(o.pointing.ra.deg) for o in observations], {"units": "deg"}),
        pointing_dec=("obs_id", [float(o.pointing.dec.deg) for o in observations], {"units": "deg"}),
    )
    variables = {
        name: xr.DataArray(data[:, index], dims=("obs_id", "energy", "lat", "lon"), coords=coords, name=name,
                           attrs={"units": _UNITS[name]})
        for index, name in enumerate(MAP_VARIABLES)
    }
    return xr.Dataset(variables, attrs={"offset_max_deg": Angle(offset_max).to_value("deg")})
