"""Lazy exposure in true energy (the exposure of an analysis with energy dispersion).

Same task layout as `xgamma.makers.maps`: one small ``load`` task per observation (effective
area, pointing, livetime), one ``block`` task per (observation, spatial chunk) the observation
reaches within its offset cut, and a chain of sums per chunk. Only the spatial part of the safe
range (``offset-max``) applies: energy cuts act on reconstructed energy, through the migration
kernel (`xgamma.makers.edisp`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
import xarray as xr

from xgamma.exceptions import GeometryError
from xgamma.geometry.spherical import transform_lonlat, unit_vectors
from xgamma.makers.chunks import (EXPOSURE_TRUE_PREFIX, ChunkIndex, check_inputs, chunk_slices, normalise_chunks,
                                   resolve_map_dtype, runs_key)
from xgamma.makers.observation import offsets, pixel_block
from xgamma.makers.safe_energy import SafeEnergy, safe_offset_max
from xgamma.maps import make_map

if TYPE_CHECKING:
    from xgamma.geometry import SkyGeometry
    from xgamma.io.datastore import Observation

__all__ = ["make_exposure_true"]


@dataclass(frozen=True)
class _Exposure:
    """What the exposure blocks need from one observation."""

    aeff: Any
    pointing_vector: np.ndarray  # unit vector of the pointing in the map frame
    livetime_s: float
    offset_max_deg: float


def _load(observation: Observation, frame: str, offset_max_deg: float) -> _Exposure:
    ra, dec = observation.pointing_radec
    return _Exposure(
        aeff=observation.aeff,
        pointing_vector=unit_vectors(*transform_lonlat(ra, dec, "icrs", frame)),
        livetime_s=u.Quantity(observation.livetime).to_value("s"),
        offset_max_deg=offset_max_deg,
    )


def _block(data: _Exposure, pixels: Any, centres_tev: np.ndarray) -> np.ndarray:
    """Exposure (m2 s) of one observation on one pixel block, shape (n_true, n_lat, n_lon)."""
    offset = offsets(pixels, data.pointing_vector)
    inside = np.flatnonzero(offset < data.offset_max_deg)
    out = np.zeros((centres_tev.size, offset.size))
    if inside.size:
        area = data.aeff.evaluate(energy_true=centres_tev[:, None], offset=offset[inside][None, :])
        out[:, inside] = area.to_value("m2") * data.livetime_s
    return out.reshape(centres_tev.size, *pixels.shape)


def _add(total: np.ndarray, block: np.ndarray) -> np.ndarray:
    return total + block


def make_exposure_true(
    observations: Sequence[Observation],
    geometry: SkyGeometry,
    energy_true: u.Quantity,
    *,
    offset_max: u.Quantity,
    safe_energy: SafeEnergy | Any = None,
    chunks: int | Sequence[int] | None = None,
    dtype: Any = None,
) -> xr.DataArray:
    """Stacked exposure on a true-energy axis (lazy): effective area at each bin's log centre and
    the pixel-centre offset x livetime, summed over observations.

    Parameters
    ----------
    observations : sequence of `~xgamma.io.datastore.Observation`
        Observations to stack.
    geometry : `~xgamma.geometry.SkyGeometry`
        Pixel grid (its energy axis is not used).
    energy_true : `~astropy.units.Quantity`
        True-energy bin edges.
    offset_max : `~astropy.units.Quantity`
        Offset cut (angle); tightened per observation by the safe range's ``offset-max``.
    safe_energy : `~xgamma.makers.safe_energy.SafeEnergy` or a configuration form, optional
        Only its spatial cut applies here.
    chunks : int or (int, int), optional
        Spatial chunk size in pixels (default as `~xgamma.makers.make_maps`).
    dtype : {"float32", "float64"}, optional
        Dtype of the result (default as `~xgamma.makers.make_maps`); the sum over observations
        runs in float64 and is rounded once.

    Returns
    -------
    exposure_true : `xarray.DataArray`
        Dims ``("energy_true", "lat", "lon")``, m2 s, a dask array; nothing is computed.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    edges = u.Quantity(energy_true, "TeV")
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges.value) <= 0):
        raise GeometryError("energy_true: expected >= 2 strictly increasing bin edges")
    true_geometry = geometry.with_energy(edges)
    offset_max_deg = check_inputs(observations, true_geometry, offset_max)
    dtype = resolve_map_dtype(dtype)
    run_offset_max = safe_offset_max(SafeEnergy.parse(safe_energy), offset_max_deg)
    centres = np.sqrt(edges.value[:-1] * edges.value[1:])
    size_y, size_x = normalise_chunks(chunks, geometry.shape)
    lat_slices = chunk_slices(geometry.shape[0], size_y)
    lon_slices = chunk_slices(geometry.shape[1], size_x)
    token = tokenize(runs_key(observations), geometry.header_text, geometry.shape, edges.value,
                     offset_max_deg, run_offset_max, size_y, size_x, dtype.str)
    load, pixels, block, total, out = (f"{EXPOSURE_TRUE_PREFIX}{kind}-{token}"
                                       for kind in ("load", "pixels", "block", "sum", "out"))
    graph: dict[Any, Any] = {}
    index = ChunkIndex(geometry, lat_slices, lon_slices, run_offset_max)
    n_lon = len(lon_slices)
    blocks_of_chunk: dict[int, list[tuple]] = {}
    for k, observation in enumerate(observations):
        graph[(load, k)] = (_load, observation, geometry.frame, run_offset_max)
        ra, dec = observation.pointing_radec
        lon0, lat0 = transform_lonlat(ra, dec, "icrs", geometry.frame)
        x0, y0 = geometry.world_to_pixel(lon0, lat0)  # (this thread's WCS: no copy per run)
        for chunk in index.reached(unit_vectors(lon0, lat0), (float(x0), float(y0))):
            key = (block, k, chunk)
            graph[key] = (_block, (load, k), (pixels, chunk), centres)
            blocks_of_chunk.setdefault(chunk, []).append(key)
    for i, lat in enumerate(lat_slices):
        for j, lon in enumerate(lon_slices):
            keys = blocks_of_chunk.get(i * n_lon + j, [])
            if not keys:
                graph[(out, 0, i, j)] = (np.zeros, (centres.size, lat.stop - lat.start, lon.stop - lon.start), dtype)
                continue
            graph[(pixels, i * n_lon + j)] = (pixel_block, geometry, lat, lon)
            running = keys[0]
            for m, key in enumerate(keys[1:], start=1):
                graph[(total, m, i, j)] = (_add, running, key)
                running = (total, m, i, j)
            graph[(out, 0, i, j)] = (np.array, running, dtype)  # a copy (the sum may be a block's array)
    chunks_out = ((centres.size,), tuple(s.stop - s.start for s in lat_slices),
                  tuple(s.stop - s.start for s in lon_slices))
    data = da.Array(HighLevelGraph.from_collections(out, graph, dependencies=()), out, chunks=chunks_out,
                    dtype=dtype)
    return make_map(data, true_geometry, name="exposure_true", units="m2 s", energy_dim="energy_true")
