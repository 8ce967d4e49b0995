"""Lazy map making: counts, exposure and background per observation, stacked by summing.

The dask graph groups observations (`resolve_runs_per_task` consecutive runs, the ``"xgamma.runs_per_task"``
dask config key) and has three kinds of tasks:

* one ``load`` task per group (read events and IRFs, place events on pixels and energy bins:
  `~xgamma.makers.chunks.load_layer`, keyed by the loads' own inputs);
* one ``block`` task per (group, spatial chunk) that some run of the group reaches within
  ``offset_max``: counts, exposure and background of those runs on that chunk, summed over the
  group and, when asked, each run's energy-squashed counts and background images (the squash is
  fused into the block, no cube per run is made);
* a tree of ``sum`` tasks per chunk adding the groups' partial cubes.

So the graph grows with runs x chunks touched, memory with a chunk, and chunks far from every
pointing cost nothing. `make_map_products` returns the stacked cube and the per-run images of one
graph; `make_maps` and `make_observation_maps` are its special cases.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import astropy.units as u
import numpy as np
import xarray as xr
from astropy.coordinates import Angle

from xgamma.exceptions import ConfigError
from xgamma.geometry import SkyGeometry
from xgamma.geometry.spherical import transform_lonlat, unit_vectors
from xgamma.makers.chunks import (BLOCK_PREFIX, DEFAULT_CHUNK, DEFAULT_MAP_DTYPE, DEFAULT_RUNS_PER_TASK,
                                   GROUPS_PER_LIST, ChunkIndex, check_inputs, chunk_slices, load_layer, normalise_chunks,
                                   resolve_map_dtype, resolve_runs_per_task, run_groups, runs_key)
from xgamma.makers.observation import add_observation, pixel_block, run_pixels, window_of
from xgamma.makers.safe_energy import SafeEnergy
from xgamma.maps import make_map

if TYPE_CHECKING:
    from xgamma.io.datastore import Observation

__all__ = ["make_maps", "make_observation_maps", "make_map_products", "MapProducts", "resolve_runs_per_task",
           "resolve_map_dtype", "DEFAULT_CHUNK", "DEFAULT_RUNS_PER_TASK", "GROUPS_PER_LIST", "DEFAULT_MAP_DTYPE",
           "MAP_VARIABLES", "IMAGE_VARIABLES"]

MAP_VARIABLES = ("counts", "exposure", "background")
#: Per-observation energy-squashed images `make_map_products` can add to the block tasks.
IMAGE_VARIABLES = ("counts", "background")
_UNITS = {"counts": "", "exposure": "m2 s", "background": ""}
# Partial cubes added per sum task (a tree: the graph stays shallow with thousands of runs).
_SPLIT_EVERY = 8


def _group_block(runs: list, members: tuple[int, ...], geometry: SkyGeometry, lat: slice, lon: slice,
                 offset_max_deg: float, outputs: tuple[str, ...], dtype: np.dtype) -> dict[str, Any]:
    """Maps of the runs ``members`` of a group on one chunk.

    ``outputs``: ``"maps"`` (3, n_energy, ny, nx) summed over the group, ``"observation_maps"``
    (n_group, 3, n_energy, ny, nx) and ``"observation_images"`` (n_group, 2, 1, ny, nx), one
    entry per run of the group (zeros for runs that do not reach the chunk). Cubes in ``dtype``,
    images in float64. With ``"maps"`` alone, the summed cube is a `Patch`: only the rectangle of
    the chunk the runs reach (51 % of the chunk's area on average in the 1000-run survey of
    bench_survey.py: 0.7 deg steps, 256-pixel chunks), so less memory to fill, add up and move
    between workers.
    """
    block = pixel_block(geometry, lat, lon)
    ny, nx = block.shape
    if outputs == ("maps",):
        reached = [run_pixels(runs[k], block, offset_max_deg) for k in members]
        windows = [window for window in (window_of(pixels, block) for pixels, _ in reached) if window is not None]
        if not windows:
            return {"maps": Patch(np.zeros((3, geometry.nbins, 0, 0), dtype), 0, 0)}
        row, column = min(w[0] for w in windows), min(w[1] for w in windows)
        window = (row, column, max(w[0] + w[2] for w in windows) - row, max(w[1] + w[3] for w in windows) - column)
        cube = np.zeros((3, geometry.nbins, window[2] * window[3]), dtype)
        for k, run_reach in zip(members, reached):
            add_observation(cube, runs[k], block, geometry, offset_max_deg, reached=run_reach, window=window)
        return {"maps": Patch(cube.reshape(3, -1, window[2], window[3]), row, column)}
    shape = (3, geometry.nbins, ny * nx)
    per_run = np.zeros((len(runs), *shape), dtype) if "observation_maps" in outputs else None
    cube = np.zeros(shape, dtype) if per_run is None and "maps" in outputs else None  # None: images only
    images = np.zeros((len(runs), 2, ny * nx)) if "observation_images" in outputs else None
    for k in members:
        add_observation(cube if per_run is None else per_run[k], runs[k], block, geometry, offset_max_deg,
                        image=None if images is None else images[k])
    result = {}
    if "maps" in outputs:
        result["maps"] = Patch((cube if per_run is None else per_run.sum(axis=0)).reshape(3, -1, ny, nx), 0, 0)
    if per_run is not None:
        result["observation_maps"] = per_run.reshape(len(runs), 3, -1, ny, nx)
    if images is not None:
        result["observation_images"] = images.reshape(len(runs), 2, 1, ny, nx)
    return result


class Patch(NamedTuple):
    """Part of a chunk's cube: ``values`` (..., n_rows, n_columns) whose first pixel is (``row``, ``column``)
    of the chunk; zero outside.

    A tuple, so that `dask.sizeof` (and so the `distributed` scheduler, which places a task near
    the bytes of its inputs) counts the array's bytes.
    """

    values: np.ndarray
    row: int
    column: int


def _add_into(total: np.ndarray, row: int, column: int, part: Patch) -> None:
    """``total`` (a rectangle of the chunk whose first pixel is (``row``, ``column``)) += ``part``."""
    rows, columns = part.values.shape[-2:]
    total[..., part.row - row:part.row - row + rows, part.column - column:part.column - column + columns] += \
        part.values


def _add_patches(*parts: Patch) -> Patch:
    """The sum of ``parts`` on the smallest rectangle holding them all.

    In the order given, from zeros: a pixel outside a part adds nothing to it (x + 0 = x), so the
    sums are bit for bit those of whole-chunk cubes added in the same order.
    """
    parts = [part for part in parts if part.values.size] or list(parts[:1])
    row, column = min(p.row for p in parts), min(p.column for p in parts)
    n_rows = max(p.row + p.values.shape[-2] for p in parts) - row
    n_columns = max(p.column + p.values.shape[-1] for p in parts) - column
    total = np.zeros((*parts[0].values.shape[:-2], n_rows, n_columns), parts[0].values.dtype)
    for part in parts:
        _add_into(total, row, column, part)
    return Patch(total, row, column)


def _chunk_sum(shape: tuple[int, ...], dtype: np.dtype, *parts: Patch) -> np.ndarray:
    """The chunk's cube (``shape``): the `Patch` es added up in order (`_add_patches`), zero elsewhere.

    A single part that already covers the chunk is the chunk (no zero-filled copy: that copy was one
    more pass over every chunk's cube).
    """
    if len(parts) == 1 and parts[0].values.shape == tuple(shape) and parts[0].values.dtype == dtype:
        return parts[0].values
    total = np.zeros(shape, dtype)
    for part in parts:
        _add_into(total, 0, 0, part)
    return total


@dataclass(frozen=True)
class MapProducts:
    """What `make_map_products` returns (lazy).

    Attributes
    ----------
    maps : `xarray.Dataset` or None
        Stacked ``counts``, ``exposure`` (m2 s) and ``background`` cubes, dims ``("energy", "lat", "lon")``.
    observation_maps : `xarray.Dataset` or None
        The same per observation, dims ``("obs_id", "energy", "lat", "lon")``.
    observation_images : `xarray.Dataset` or None
        Per-observation energy-squashed ``counts`` and ``background`` (a length-1 ``energy`` dim),
        dims ``("obs_id", "energy", "lat", "lon")``; what the ring background takes.
    """

    maps: xr.Dataset | None = None
    observation_maps: xr.Dataset | None = None
    observation_images: xr.Dataset | None = None


def make_map_products(
    observations: Sequence[Observation],
    geometry: SkyGeometry,
    *,
    offset_max: u.Quantity,
    safe_energy: SafeEnergy | str | Sequence[str] | dict | None = None,
    energy_true: u.Quantity | None = None,
    chunks: int | Sequence[int] | None = None,
    maps: bool = True,
    observation_maps: bool = False,
    observation_images: bool = False,
    runs_per_task: int | None = None,
    dtype: Any = None,
) -> MapProducts:
    """Stacked cubes, per-observation cubes and per-observation images from one graph (lazy).

    Every product comes from the same block tasks (one per group of runs and chunk), so each
    run is read and each pixel's IRFs evaluated once, whichever products are asked for.

    Parameters
    ----------
    observations : sequence of `~xgamma.io.datastore.Observation`
        Observations, grouped in this order (`runs_per_task` at a time): give neighbouring runs
        next to each other so that a group touches few chunks.
    geometry : `~xgamma.geometry.SkyGeometry`
        Map geometry with an energy axis.
    offset_max : `~astropy.units.Quantity`
        Maximum field-of-view offset (angle) of a pixel centre; pixels beyond are zero.
    safe_energy : `~xgamma.makers.safe_energy.SafeEnergy`, method name(s) or mapping, optional
        Safe data range per observation (`~xgamma.makers.safe_energy`): counts, background
        and exposure are zeroed in the reco-energy bins outside it (and beyond its
        ``offset-max``). Default is None (no energy cut).
    energy_true : `~astropy.units.Quantity`, optional
        True-energy bin edges. When given, the stacked maps also hold ``exposure_true`` (dims
        ``("energy_true", "lat", "lon")``, not cut in energy: with energy dispersion the safe
        range acts on reconstructed energy, through the migration kernel), and the
        ``aeff-max`` / ``edisp-bias`` safe ranges evaluate the IRFs on this axis.
    chunks : int or (int, int), optional
        Spatial chunk size (n_lat, n_lon) in pixels. Default is 256.
    maps, observation_maps, observation_images : bool
        Which products to build (default: the stacked cubes only).
    runs_per_task : int, optional
        Observations per task (default: the ``"xgamma.runs_per_task"`` dask config key, else 8, or
        ``ceil(n / 32)`` for more than 256 observations: `resolve_runs_per_task`).
    dtype : {"float32", "float64"}, optional
        Dtype of the cubes (stacked and per observation; also ``exposure_true``). Default: the
        ``"xgamma.map_dtype"`` dask config key, float32 (`resolve_map_dtype`).

    Returns
    -------
    products : MapProducts
        The requested products (None for the others); nothing is computed.
    """
    outputs = tuple(name for name, wanted in (("maps", maps), ("observation_maps", observation_maps),
                                              ("observation_images", observation_images)) if wanted)
    if not outputs:
        raise ConfigError("make_map_products: ask for at least one of maps, observation_maps, observation_images")
    safe_energy = SafeEnergy.parse(safe_energy)
    group_size = resolve_runs_per_task(runs_per_task, len(observations))
    arrays = _build_arrays(observations, geometry, offset_max=offset_max, safe_energy=safe_energy, chunks=chunks,
                           outputs=outputs, group_size=group_size, energy_true=energy_true, dtype=dtype)
    offset_max_deg = Angle(offset_max).to_value("deg")
    obs_ids = [int(o.obs_id) for o in observations]
    result = {}
    if "maps" in arrays:
        stacked = arrays["maps"]
        # One coordinate set for the three maps (building and aligning it per map cost ~10 ms each).
        first = make_map(stacked[0], geometry, name=MAP_VARIABLES[0], units=_UNITS[MAP_VARIABLES[0]])
        dataset = xr.Dataset(coords=first.coords).assign(
            {name: (first.dims, stacked[index], {"units": u.Unit(_UNITS[name]).to_string()})
             for index, name in enumerate(MAP_VARIABLES)})
        if energy_true is not None:
            from xgamma.makers.exposure import make_exposure_true

            dataset["exposure_true"] = make_exposure_true(observations, geometry, energy_true, offset_max=offset_max,
                                                          safe_energy=safe_energy, chunks=chunks, dtype=dtype)
        dataset.attrs.update(obs_ids=obs_ids, offset_max_deg=offset_max_deg)
        result["maps"] = dataset
    if "observation_maps" in arrays:
        result["observation_maps"] = _per_observation(arrays["observation_maps"], MAP_VARIABLES, observations,
                                                      geometry, offset_max_deg)
    if "observation_images" in arrays:
        result["observation_images"] = _per_observation(arrays["observation_images"], IMAGE_VARIABLES,
                                                        observations, geometry.to_image(), offset_max_deg)
    return MapProducts(**result)


def _per_observation(data: Any, names: Sequence[str], observations: Sequence[Observation], geometry: SkyGeometry,
                     offset_max_deg: float) -> xr.Dataset:
    pointings = [o.pointing_radec for o in observations]
    coords = geometry.coords().assign(  # keeps the sky and energy indexes of the geometry
        obs_id=("obs_id", [int(o.obs_id) for o in observations]),
        pointing_ra=("obs_id", [ra for ra, _ in pointings], {"units": "deg"}),
        pointing_dec=("obs_id", [dec for _, dec in pointings], {"units": "deg"}),
    )
    variables = {
        name: xr.DataArray(data[:, index], dims=("obs_id", "energy", "lat", "lon"), coords=coords, name=name,
                           attrs={"units": _UNITS[name]})
        for index, name in enumerate(names)
    }
    return xr.Dataset(variables, attrs={"offset_max_deg": offset_max_deg})


def make_maps(
    observations: Sequence[Observation],
    geometry: SkyGeometry,
    *,
    offset_max: u.Quantity,
    safe_energy: SafeEnergy | str | Sequence[str] | dict | None = None,
    energy_true: u.Quantity | None = None,
    chunks: int | Sequence[int] | None = None,
    runs_per_task: int | None = None,
    dtype: Any = None,
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
    safe_energy, energy_true
        The safe data range and the true-energy axis of ``exposure_true``: see
        `make_map_products`. Default: no energy cut, no true-energy axis.
    chunks : int or (int, int), optional
        Spatial chunk size (n_lat, n_lon) in pixels. Default is 256.
    runs_per_task : int, optional
        Observations per task (default: the ``"xgamma.runs_per_task"`` dask config key, else 8, or
        ``ceil(n / 32)`` for more than 256 observations: `resolve_runs_per_task`).
    dtype : {"float32", "float64"}, optional
        Dtype of the cubes (default: the ``"xgamma.map_dtype"`` dask config key, float32).

    Returns
    -------
    maps : `xarray.Dataset`
        ``counts`` (counts), ``exposure`` (m2 s) and ``background`` (counts) with dims
        ``("energy", "lat", "lon")`` (and ``exposure_true``), each a dask array; nothing is
        computed.
    """
    return make_map_products(observations, geometry, offset_max=offset_max, safe_energy=safe_energy,
                             energy_true=energy_true, chunks=chunks, runs_per_task=runs_per_task, dtype=dtype).maps


def make_observation_maps(
    observations: Sequence[Observation],
    geometry: SkyGeometry,
    *,
    offset_max: u.Quantity,
    safe_energy: SafeEnergy | str | Sequence[str] | dict | None = None,
    energy_true: u.Quantity | None = None,
    chunks: int | Sequence[int] | None = None,
    runs_per_task: int | None = None,
    dtype: Any = None,
) -> xr.Dataset:
    """Per-observation counts, exposure and background along an ``obs_id`` dim (lazy).

    Same parameters as `make_maps` (``energy_true`` only sets the axis of the safe-range methods:
    no ``exposure_true`` per observation); ``maps.sum("obs_id")`` equals its result (to the
    rounding of ``dtype``: the sums run in another order). Estimators that
    must not mix observations before a non-linear step (the ring background) use these, or
    rather their energy-squashed images, which `make_map_products` makes without per-run cubes.

    Returns
    -------
    maps : `xarray.Dataset`
        ``counts``, ``exposure`` (m2 s), ``background`` with dims ``("obs_id", "energy", "lat",
        "lon")`` and coordinates ``obs_id``, ``pointing_ra``, ``pointing_dec`` (ICRS, deg); the
        ``obs_id`` axis is chunked by task groups.
    """
    return make_map_products(observations, geometry, offset_max=offset_max, safe_energy=safe_energy,
                             energy_true=energy_true, chunks=chunks, maps=False, observation_maps=True,
                             runs_per_task=runs_per_task, dtype=dtype).observation_maps


def _build_arrays(
    observations: Sequence[Observation],
    geometry: SkyGeometry,
    *,
    offset_max: Any,
    safe_energy: SafeEnergy | None,
    chunks: int | Sequence[int] | None,
    outputs: tuple[str, ...],
    group_size: int,
    energy_true: u.Quantity | None = None,
    dtype: Any = None,
) -> dict[str, Any]:
    """The dask arrays of ``outputs``: ``"maps"`` (3, energy, lat, lon), ``"observation_maps"`` (obs, 3,
    energy, lat, lon), ``"observation_images"`` (obs, 2, 1, lat, lon)."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    offset_max_deg = check_inputs(observations, geometry, offset_max)
    dtype = resolve_map_dtype(dtype)
    size_y, size_x = normalise_chunks(chunks, geometry.shape)
    lat_slices = chunk_slices(geometry.shape[0], size_y)
    lon_slices = chunk_slices(geometry.shape[1], size_x)
    token = tokenize(runs_key(observations), geometry.header_text, geometry.shape,
                     geometry.energy_edges.value, offset_max_deg, repr(safe_energy), size_y, size_x, outputs, group_size,
                     None if energy_true is None else u.Quantity(energy_true, "TeV").value, dtype.str)
    name = {kind: f"xgamma-{kind}-{token}" for kind in ("sum", *outputs)}
    name["block"] = f"{BLOCK_PREFIX}{token}"
    loads = list(load_layer(observations, geometry, safe_energy, energy_true, group_size).items())

    # Pointings in the map frame (vectors, pixel positions), all runs at once.
    radec = np.array([o.pointing_radec for o in observations], dtype=float)
    lon0, lat0 = transform_lonlat(radec[:, 0], radec[:, 1], "icrs", geometry.frame)
    vectors = unit_vectors(lon0, lat0)
    x0, y0 = geometry.world_to_pixel(lon0, lat0)
    index = ChunkIndex(geometry, lat_slices, lon_slices, offset_max_deg)
    n_lon = len(lon_slices)

    graph: dict[Any, Any] = {}
    groups = run_groups(len(observations), group_size)
    blocks_of_chunk: dict[int, list[tuple]] = {}
    group_blocks: list[dict[int, tuple]] = []
    for g, members in enumerate(groups):
        reached: dict[int, list[int]] = {}
        for position, k in enumerate(members):
            for chunk in index.reached(vectors[k], (float(x0[k]), float(y0[k]))):
                reached.setdefault(chunk, []).append(position)
        keys = {}
        load_key, load_task = loads[g]
        if reached:
            graph[load_key] = load_task
        for chunk, positions in sorted(reached.items()):
            lat, lon = lat_slices[chunk // n_lon], lon_slices[chunk % n_lon]
            key = (name["block"], g, chunk)
            graph[key] = (_group_block, load_key, tuple(positions), geometry, lat, lon, offset_max_deg,
                          outputs, dtype)
            keys[chunk] = key
            blocks_of_chunk.setdefault(chunk, []).append(key)
        group_blocks.append(keys)

    n_energy = geometry.nbins
    dtypes = {"maps": dtype, "observation_maps": dtype, "observation_images": np.dtype(float)}
    arrays = {}
    if "maps" in outputs:
        for i, lat in enumerate(lat_slices):
            for j, lon in enumerate(lon_slices):
                parts = [(operator.getitem, key, "maps") for key in blocks_of_chunk.get(i * n_lon + j, [])]
                out_key = (name["maps"], 0, 0, i, j)
                if not parts:
                    graph[out_key] = (np.zeros, (3, n_energy, lat.stop - lat.start, lon.stop - lon.start), dtype)
                    continue
                level = 0
                while len(parts) > _SPLIT_EVERY:  # tree sum, _SPLIT_EVERY partial cubes per task
                    merged = []
                    for m in range(0, len(parts), _SPLIT_EVERY):
                        batch = parts[m:m + _SPLIT_EVERY]
                        if len(batch) == 1:
                            merged.append(batch[0])
                            continue
                        key = (name["sum"], level, m, i, j)
                        graph[key] = (_add_patches, *batch)
                        merged.append(key)
                    parts, level = merged, level + 1
                # The last sum is the output chunk itself (not an alias task after it).
                shape = (3, n_energy, lat.stop - lat.start, lon.stop - lon.start)
                graph[out_key] = (_chunk_sum, shape, dtype, *parts)
        arrays["maps"] = ((3,), (n_energy,))
    for output, channels in (("observation_maps", (3, n_energy)), ("observation_images", (2, 1))):
        if output not in outputs:
            continue
        for g, members in enumerate(groups):
            for i, lat in enumerate(lat_slices):
                for j, lon in enumerate(lon_slices):
                    block_key = group_blocks[g].get(i * n_lon + j)
                    out_key = (name[output], g, 0, 0, i, j)
                    if block_key is None:
                        graph[out_key] = (np.zeros, (len(members), *channels, lat.stop - lat.start,
                                                     lon.stop - lon.start), dtypes[output])
                    else:
                        graph[out_key] = (operator.getitem, block_key, output)
        arrays[output] = (tuple(len(m) for m in groups), *((c,) for c in channels))

    spatial = (tuple(s.stop - s.start for s in lat_slices), tuple(s.stop - s.start for s in lon_slices))
    result = {}
    for output, leading in arrays.items():
        hlg = HighLevelGraph.from_collections(name[output], graph, dependencies=())
        result[output] = da.Array(hlg, name[output], chunks=(*leading, *spatial), dtype=dtypes[output])
    return result
