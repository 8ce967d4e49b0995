"""The array layout shared by the map-making graphs (`xgamma.makers.maps`, `xgamma.makers.exposure`):
chunk slices, which chunks a pointing reaches, the run groups and their load tasks, the names of
map making's tasks, the cubes' dtype, input checks.

Light on purpose (no xarray, no dask.array): a distributed client starts the load tasks from here
before it builds the rest of the graph (`xgamma.workflow.mosaic`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle

from xgamma.exceptions import ConfigError, DataStoreError, GeometryError
from xgamma.geometry.spherical import chord_separation, unit_vectors

if TYPE_CHECKING:
    from xgamma.geometry import SkyGeometry
    from xgamma.io.datastore import Observation
    from xgamma.makers.safe_energy import SafeEnergy

__all__ = ["DEFAULT_CHUNK", "DEFAULT_MAP_DTYPE", "DEFAULT_RUNS_PER_TASK", "GROUPS_PER_LIST", "LOAD_PREFIX", "BLOCK_PREFIX",
           "EXPOSURE_TRUE_PREFIX",
           "MAP_TASK_PREFIXES", "ChunkIndex", "chunk_slices", "normalise_chunks", "check_inputs", "load_layer",
           "resolve_map_dtype", "resolve_runs_per_task", "run_groups", "runs_key"]

DEFAULT_CHUNK = 256
#: Default of the ``"xgamma.runs_per_task"`` dask config key.
DEFAULT_RUNS_PER_TASK = 8
#: Above ``DEFAULT_RUNS_PER_TASK x GROUPS_PER_LIST`` runs, the default groups make this many tasks.
GROUPS_PER_LIST = 32
#: Name prefixes of the load tasks (one per run group: `load_layer`), of the block tasks (one per run group
#: and chunk it reaches: `xgamma.makers.maps`) and of the true-energy exposure's tasks (`xgamma.makers.exposure`).
LOAD_PREFIX, BLOCK_PREFIX, EXPOSURE_TRUE_PREFIX = "xgamma-load-", "xgamma-block-", "xgamma-exposure-true-"
#: Map making's own tasks: sized per run group already and shared between the spatial chunks of the
#: products (`xgamma.workflow.mosaic.fuse_per_chunk` keeps them apart).
MAP_TASK_PREFIXES = (LOAD_PREFIX, BLOCK_PREFIX, EXPOSURE_TRUE_PREFIX)
#: Default of the ``"xgamma.map_dtype"`` dask config key: the dtype of the cubes (docs/architecture.md).
DEFAULT_MAP_DTYPE = "float32"


def resolve_map_dtype(value: Any = None) -> np.dtype:
    """The dtype of the counts / exposure / background cubes: ``value``, else the ``"xgamma.map_dtype"`` config key.

    ``float32`` (default, as Gammapy) or ``float64``. Each run's exposure and background are
    computed in float64 and rounded once to this dtype; the sums over runs are made in it (see
    docs/architecture.md for the error bound). Set it with ``dask.config.set({"xgamma.map_dtype":
    "float64"})``. The per-run energy-squashed images stay float64.
    """
    if value is None:
        import dask

        value = dask.config.get("xgamma.map_dtype", DEFAULT_MAP_DTYPE)
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = np.dtype(bool)
    if dtype.name not in ("float32", "float64"):
        raise ConfigError(f"map dtype ('xgamma.map_dtype') must be 'float32' or 'float64', got {value!r}")
    return dtype


def resolve_runs_per_task(value: int | None = None, n_observations: int | None = None) -> int:
    """Observations per load / block task: ``value``, else the ``"xgamma.runs_per_task"`` config key,
    else a default that grows with the number of observations.

    A H.E.S.S. run costs ~10 ms per chunk it touches: eight of them give a task well above the
    1-3 ms a `distributed` scheduler spends on it. Above 256 runs the default is
    ``ceil(n_observations / GROUPS_PER_LIST)`` runs per task: fewer partial cubes to add up and to
    move between workers, while 32 groups still keep every worker of a small cluster busy
    (benchmarks/README.md, bench_survey at N = 1000: 2 workers 1.59x faster than 1 with 32 runs per
    task, 1.51x with 8). Set it with ``dask.config.set({"xgamma.runs_per_task": n})``.
    """
    if value is None:
        import dask

        value = dask.config.get("xgamma.runs_per_task", None)
    if value is None:
        value = DEFAULT_RUNS_PER_TASK
        if n_observations is not None:
            value = max(value, -(-int(n_observations) // GROUPS_PER_LIST))
    try:
        value = int(value)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise ConfigError(f"runs_per_task ('xgamma.runs_per_task') must be an integer >= 1, got {value!r}")
    return value


def run_groups(n_observations: int, group_size: int) -> list[list[int]]:
    """Indices of the observations of each task group: ``group_size`` consecutive ones at a time."""
    return [list(range(start, min(start + group_size, n_observations)))
            for start in range(0, n_observations, group_size)]


def load_layer(observations: Sequence[Observation], geometry: SkyGeometry, safe_energy: SafeEnergy | None,
               energy_true: u.Quantity | None, group_size: int) -> dict[tuple[str, int], tuple]:
    """The load tasks of map making: ``{(LOAD_PREFIX + token, g): task}``, one per run group (`run_groups`).

    A load reads its group's runs and places their events (`~xgamma.makers.observation.prepare_observations`).
    The token comes from the loads' own inputs only, so every graph of these runs on this geometry
    (stacked cubes or per-run images, any chunking or dtype) has the same load keys, and a
    `distributed` client that submitted them early (`xgamma.workflow.mosaic`) sees them reused.
    """
    from dask.base import tokenize

    from xgamma.makers.observation import prepare_observations

    token = tokenize(runs_key(observations), geometry.header_text, geometry.shape, geometry.energy_edges.value,
                     repr(safe_energy), group_size,
                     None if energy_true is None else u.Quantity(energy_true, "TeV").value)
    name = f"{LOAD_PREFIX}{token}"
    return {(name, g): (prepare_observations, [observations[k] for k in members], geometry, safe_energy, energy_true)
            for g, members in enumerate(run_groups(len(observations), group_size))}


def runs_key(observations: Sequence[Observation]) -> str:
    """The runs of a map graph (ids and files) as one string, for its dask token: tokenizing 1000
    runs' nested tuples instead took 80 ms."""
    return repr([(o.obs_id, sorted(o.hdus.items())) for o in observations])


def chunk_slices(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def normalise_chunks(chunks: int | Sequence[int] | None, shape: tuple[int, int]) -> tuple[int, int]:
    if chunks is None:
        chunks = DEFAULT_CHUNK
    sizes = np.broadcast_to(np.asarray(chunks, dtype=int), (2,))
    if np.any(sizes < 1):
        raise GeometryError(f"spatial chunk sizes must be positive, got {chunks}")
    return int(min(sizes[0], shape[0])), int(min(sizes[1], shape[1]))


class ChunkIndex:
    """Which spatial chunks each pointing reaches: a cheap bound, then the exact border test.

    A chunk is reached when a pixel centre lies within ``offset_max`` of the pointing. The
    nearest pixel of a chunk to an outside point lies on the chunk's border, so the border
    pixels (plus "pointing inside the chunk") decide it; one and a half pixels of margin cover
    the curvature of the projection. Chunks farther than offset_max + the chunk's own radius
    (angular distance from its centre pixel to its farthest border pixel) are skipped without
    the border test, so building the graph costs runs x chunks touched, not runs x chunks.
    """

    def __init__(self, geometry: SkyGeometry, lat_slices: list[slice], lon_slices: list[slice],
                 offset_max_deg: float) -> None:
        self.geometry = geometry
        self.lat_slices, self.lon_slices = lat_slices, lon_slices
        self.limit = offset_max_deg + 1.5 * geometry.pixel_scale  # deg
        self.cos_limit = np.cos(np.radians(self.limit))
        # Border pixels of every chunk, then its centre, through one WCS call for all chunks.
        xs, ys, sizes = [], [], []
        for lat in lat_slices:
            for lon in lon_slices:
                y, x = np.arange(lat.start, lat.stop), np.arange(lon.start, lon.stop)
                xs += [x, x, np.full(y.size, x[0]), np.full(y.size, x[-1]), [(x[0] + x[-1]) / 2]]
                ys += [np.full(x.size, y[0]), np.full(x.size, y[-1]), y, y, [(y[0] + y[-1]) / 2]]
                sizes.append(2 * (x.size + y.size) + 1)
        vectors = unit_vectors(*geometry.pixel_to_world(np.concatenate(xs), np.concatenate(ys)))
        self.borders = []
        centres, radii = [], []
        for chunk in np.split(vectors, np.cumsum(sizes)[:-1]):
            finite = np.all(np.isfinite(chunk), axis=1)
            centre, border = chunk[-1], chunk[:-1][finite[:-1]]
            self.borders.append(border)
            centres.append(centre)
            radii.append(chord_separation(border, centre).max() if border.size else 180.0)
        self.centres = np.array(centres)
        self.radii = np.array(radii)
        self.cos_reach = np.cos(np.radians(np.minimum(self.limit + self.radii, 180.0)))

    def reached(self, pointing_vector: np.ndarray, pixel: tuple[float, float]) -> list[int]:
        """Flat indices (i_lat * n_lon_chunks + i_lon) of the chunks a pointing reaches."""
        # Cuts on cosines (one dot product per vector: this runs for every run x chunk nearby).
        candidates = np.flatnonzero(~(self.centres @ pointing_vector < self.cos_reach))  # NaN centres stay candidates
        x, y = pixel
        n_lon = len(self.lon_slices)
        reached = []
        for index in candidates:
            lat, lon = self.lat_slices[index // n_lon], self.lon_slices[index % n_lon]
            if lon.start - 0.5 <= x < lon.stop - 0.5 and lat.start - 0.5 <= y < lat.stop - 0.5:
                reached.append(int(index))
                continue
            border = self.borders[index]
            if border.size and (border @ pointing_vector).max() > self.cos_limit:
                reached.append(int(index))
        return reached


def check_inputs(observations: Sequence[Observation], geometry: SkyGeometry, offset_max: Any) -> float:
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
