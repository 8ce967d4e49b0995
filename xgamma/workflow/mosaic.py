"""Survey mosaics streamed to disk chunk by chunk (``output.format: zarr`` or ``fits-tiles``).

For maps too large to hold in memory (a Galactic-plane survey: 0.02 deg pixels over 175 x 6 deg,
10-24 energy bins, ~60 M voxels per map), `run_mosaic` builds every product as one lazy graph
and writes it one spatial chunk at a time (`xgamma.io.chunked.ChunkedStore`):

* ``maps.zarr``: the stacked cube, ``counts``, ``exposure`` (m2 s) and ``background``;
* ``images.zarr``: the squashed images ``counts``, ``exposure``, ``background`` and, with a
  ``ring`` / ``significance`` / ``exclusion`` section, the ring background of the stacked images
  (``off``, ``alpha``, ``acceptance_off``, ``ring_background``), ``excess`` and ``significance``
  along a ``correlation_radius`` dim (one per ``significance.correlation_radius``), and the
  ``exclusion`` mask.

With ``fits-tiles`` each store is a folder of FITS files, one per chunk (``maps/maps_000_001.fits``,
the tile's WCS; radii split into ``significance_correlation_radius0.1``, ...).

The ring runs on the stacked images (as the H.E.S.S. survey and Gammapy's ring tutorial do;
the field-of-view cut is ``maps.offset_max``), not run by run as the FITS path of ``xgamma run``
does: per-run images of a whole survey would not fit anywhere.

Resuming: the products are written into ``OUTPUT/.xgamma-resume/`` with a fingerprint of the
resolved configuration, the runs and the geometry, and published into ``OUTPUT`` (with
``config.yaml``, ``summary.json`` and the manifest ``products.json``, `xgamma.workflow.staging`)
only when every chunk is written and verified. A run killed midway leaves that folder; the same
configuration run again into the same folder skips the chunks already written (each checked
against its recorded checksum). A different configuration, or complete products of an earlier
run, are replaced only with ``overwrite`` (``--overwrite``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xgamma.exceptions import ConfigError, XgammaError

if TYPE_CHECKING:
    import xarray as xr

    from xgamma.workflow.analysis import Analysis

__all__ = ["check_streamed", "fuse_per_chunk", "mosaic_datasets", "optimize_together", "place_groups",
           "prefetch_loads", "run_mosaic", "stacked_cube", "start_blocks", "start_loads", "write_tasks",
           "EARLY_BLOCKS_PER_WORKER", "FIRST_WRITES_PRIORITY", "NO_RUNS", "RESUME_FOLDER"]

log = logging.getLogger("xgamma")

#: Where an unfinished streamed run keeps its products, inside the output folder.
RESUME_FOLDER = ".xgamma-resume"
_FINGERPRINT = "fingerprint.json"
#: File and folder names of streamed products (a rerun with ``overwrite`` replaces all of them).
MOSAIC_PRODUCT_NAMES = ("maps.zarr", "images.zarr", "maps", "images", "summary.json", "config.yaml")
#: Sections of the FITS path that need maps in memory.
_IN_MEMORY_SECTIONS = ("psf", "models", "background_model", "fit", "detect", "plots")


def check_streamed(config: Any) -> None:
    """A streamed configuration has only the sections that streamed products use."""
    for name in _IN_MEMORY_SECTIONS:
        if config.get(name):
            raise ConfigError(f"{name}: not available with output.format {config['output']['format']!r} "
                              "(streamed survey products: maps, ring background and significance); "
                              "use output.format: fits for fits and plots")
    if "threshold" in config.get("exclusion", {}):
        raise ConfigError("exclusion.threshold: the iterated exclusion mask needs the images in memory; "
                          "not available with a streamed output.format")


def _radii(config: Any) -> list:
    from xgamma.workflow.config import parse_angle

    value = config.get("significance", {}).get("correlation_radius", "0.1 deg")
    values = value if isinstance(value, list) else [value]
    return [parse_angle(v, "significance.correlation_radius") for v in values]


def stacked_cube(analysis: Analysis) -> xr.Dataset:
    """The lazy stacked cube (counts, exposure, background) of a streamed run."""
    from xgamma.makers import make_maps
    from xgamma.workflow.stages import map_options

    return make_maps(analysis.observations, analysis.geometry, **map_options(analysis))


def mosaic_datasets(analysis: Analysis, *, cube: xr.Dataset | None = None) -> dict[str, xr.Dataset]:
    """The lazy products of a streamed run: ``{"maps": cube, "images": images + ring + significance}``
    (``cube``: the `stacked_cube` of ``analysis`` if already built)."""
    import numpy as np
    import xarray as xr

    from xgamma.makers import squash_energy
    from xgamma.maps import with_units
    from xgamma.workflow import inputs
    from xgamma.workflow.stages import squash_spectrum

    config = analysis.config
    cube = stacked_cube(analysis) if cube is None else cube
    images = squash_energy(cube, spectrum=squash_spectrum(config))
    products = {"maps": cube, "images": images}
    if not any(name in config for name in ("ring", "significance", "exclusion")):
        return products

    from xgamma.estimators.significance import significance_maps

    exclusion = analysis.exclusion if analysis.exclusion is not None else inputs.build_exclusion(
        config, analysis.geometry)
    ring = inputs.background_estimator_factory(config)(exclusion).run(images)
    if "obs_id" in ring.dims:  # an estimator that leaves observations unstacked: sum them
        ring = ring.sum("obs_id", keep_attrs=True)
    radii = _radii(config)
    correlate_off = config.get("significance", {}).get("correlate_off", True)
    correlated = [significance_maps(ring, correlation_radius=radius, correlate_off=correlate_off) for radius in radii]
    radius_coord = xr.DataArray([r.to_value("deg") for r in radii], dims="correlation_radius",
                                attrs={"units": "deg"})

    chunks = images["counts"].chunksizes

    def along_radius(name: str) -> xr.DataArray:
        # Stacked chunk by chunk in the images' (the writes') chunks: a write then takes its chunk of each
        # radius' blocks (the stacking of whole blocks made three tasks per block and radius).
        parts = [maps[name].chunk({dim: chunks[dim] for dim in maps[name].dims if dim in chunks}) for maps in correlated]
        stacked = xr.concat(parts, dim=radius_coord, coords="minimal", compat="override", join="override")
        return with_units(stacked, correlated[0][name].attrs.get("units", ""), name=name)

    layers = {name: with_units(ring[name], ring[name].attrs.get("units", ""), name=name)
              for name in ("off", "alpha", "acceptance_off") if name in ring}
    layers["ring_background"] = with_units(ring["background"], "", name="ring_background")
    layers["excess"] = along_radius("excess")
    layers["significance"] = along_radius("significance")
    # Chunked as booleans, written as int16: the graph holds the mask at one byte per pixel.
    mask = xr.DataArray(np.asarray(exclusion.values, dtype=bool)[np.newaxis], dims=("energy", "lat", "lon"),
                        coords=images["counts"].coords, attrs={"units": ""})
    layers["exclusion"] = mask.chunk(chunks).astype(np.int16)
    products["images"] = images.assign(layers)
    products["images"].attrs = {**images.attrs, "background_method": ring.attrs.get("background_method", "")}
    return products


def _fingerprint(analysis: Analysis) -> dict[str, Any]:
    """What must not change for a resumed run to continue the same products."""
    from xgamma.version import __version__
    from xgamma.workflow.config import dump_config

    text = dump_config(analysis.config)
    return {"config_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "obs_ids": [int(o.obs_id) for o in analysis.observations],
            "geometry": analysis.geometry.header_text, "shape": list(analysis.geometry.shape),
            "xgamma": __version__}


def _store_name(name: str, fmt: str) -> str:
    return f"{name}.zarr" if fmt == "zarr" else name


def _prepare_folder(output: Path, fingerprint: dict[str, Any], overwrite: bool) -> tuple[Path, bool]:
    """The resume folder and whether it holds an unfinished run of the same fingerprint (reused),
    else created (refusing to replace an unfinished different run or complete products without
    ``overwrite``)."""
    from xgamma.workflow.staging import read_manifest

    resume = output / RESUME_FOLDER
    previous = None
    if (resume / _FINGERPRINT).is_file():
        try:
            previous = json.loads((resume / _FINGERPRINT).read_text())
        except ValueError:
            previous = None
    if previous == fingerprint:
        log.info("resuming the unfinished run in %s", resume)
        return resume, True
    if resume.exists():
        if not overwrite:
            raise XgammaError(f"{output} holds an unfinished run of a different configuration ({resume}); "
                              "pass --overwrite (overwrite=True) to discard it, or another output folder")
        shutil.rmtree(resume)
    if read_manifest(output) is not None and not overwrite:
        raise XgammaError(f"{output} already holds the products of a complete run; pass --overwrite "
                          "(overwrite=True) to replace them, or another output folder")
    resume.mkdir(parents=True)
    (resume / _FINGERPRINT).write_text(json.dumps(fingerprint, indent=2))
    return resume, False


def run_mosaic(analysis: Analysis, output: str | Path | None, *, overwrite: bool = False,
               started: list | None = None) -> dict[str, Path]:
    """Write the streamed products of ``analysis`` into ``output`` (see the module docstring).

    ``started``: the futures of `prefetch_loads`, if it started the loads (emptied here once the
    graph is submitted); None to let this function start them (`start_loads`) when it can.

    Returns
    -------
    products : dict of Path
        The published stores / tile folders and files by name.
    """
    from xgamma.workflow.progress import collector_spared, compute, current_client

    config = analysis.config
    check_streamed(config)
    fmt = config["output"]["format"]
    if output is None:
        raise ConfigError(f"output.format {fmt!r} writes the products chunk by chunk: give an output folder")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    resume, resuming = _prepare_folder(output, _fingerprint(analysis), overwrite)
    client = current_client()
    with collector_spared() as spare:
        # A fresh run needs every load: the workers start them while the rest is built here.
        if started is None:
            started = start_loads(analysis, client) if client is not None and not resuming else []
        from xgamma.io.chunked import ChunkedStore  # xarray, zarr: imported while the loads run
        from xgamma.makers.chunks import DEFAULT_CHUNK

        cube = stacked_cube(analysis)
        if started:
            started += start_blocks(cube, client)
        chunks = config["maps"].get("chunks") or DEFAULT_CHUNK
        stores = {name: ChunkedStore(dataset, resume / _store_name(name, fmt), chunks=chunks,
                                     progress=resume / ".chunks" / name, format=fmt)
                  for name, dataset in mosaic_datasets(analysis, cube=cube).items()}
        resumed = {name: store.prepare() for name, store in stores.items()}
        writes = write_tasks(stores)
        log.info("writing %d chunks (%d already written)", len(writes), sum(resumed.values()))
        tasks = fuse_per_chunk(writes)
        if client is not None:
            tasks = place_groups(tasks, sorted(client.scheduler_info()["workers"]))
        if tasks:
            import dask

            spare()  # the graph: it lives until the computation ends
            # The graph carries the runs' metadata and the exclusion mask (~8 MB at N = 1000, growing with
            # the runs and the map): data the workers need, not data that dask could load itself, which is
            # what distributed's warning about graphs above 10 MB is for.
            with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 GiB"}):
                compute(*tasks, progress=analysis.progress, started=started)
    started.clear()
    for store in stores.values():
        store.finish()
    analysis.summary["mosaic"] = {
        "format": fmt,
        "stores": {name: {"chunks": int(store.n_chunks[0] * store.n_chunks[1]), "resumed": resumed[name]}
                   for name, store in stores.items()},
        "obs_ids": [int(o.obs_id) for o in analysis.observations],
    }
    return _publish(analysis, output, resume, {name: store.path for name, store in stores.items()})


def prefetch_loads(analysis: Analysis, output: str | Path | None) -> list[Any] | None:
    """Submit the loads of a streamed run (`start_loads`) before its other stages' inputs are checked.

    Called by `~xgamma.workflow.run_analysis` once the maps' inputs (runs, geometry, safe range)
    are checked: the workers then read the runs while the client checks the rest (the exclusion
    mask, the ring's options). On the 1000-run survey of bench_survey.py (2 workers, 2 cores) those
    checks took 0.85-1.07 s, mostly the client's imports; the workers, done with their own imports
    at 1.1-1.4 s, waited for the loads until 1.6-1.8 s. Now a worker's first load starts as its
    imports end. Nothing is written. The caller drops the futures if a check fails: the scheduler
    then forgets the loads.

    Returns
    -------
    futures : list or None
        None, starting nothing, without a distributed client, without ``output``, or when
        ``output`` holds an unfinished run or complete products: `run_mosaic` decides then
        whether the run resumes (and needs only the loads of the chunks left) or is refused.
    """
    from xgamma.workflow.progress import current_client
    from xgamma.workflow.staging import read_manifest

    client = current_client()
    if client is None or output is None:
        return None
    if (Path(output) / RESUME_FOLDER).exists() or read_manifest(output) is not None:
        return None
    return start_loads(analysis, client)


def start_loads(analysis: Analysis, client: Any) -> list[Any]:
    """Submit the map-making load tasks of ``analysis`` to ``client`` now; return their futures.

    Before its first task can start, the client imports xarray and dask.array, builds the graph
    (blocks, sums, squash, 1000 runs' chunks reached), writes the zarr metadata and optimises:
    ~1.5 s on the survey case, while every worker waits. The loads (reading and binning each run
    group's events: ~4 core-s at N = 1000) need only the runs, the geometry and the safe range,
    so they start first, with the placement of `place_groups`. Their keys are those of the
    graph built later (`xgamma.makers.chunks.load_layer`): the scheduler reuses the tasks. Hold
    the futures until that graph is submitted (`xgamma.workflow.progress.compute` ``started``),
    then let them go so each load's result is freed once its blocks are done.
    """
    from dask.delayed import Delayed

    from xgamma.makers.chunks import load_layer, resolve_runs_per_task
    from xgamma.makers.safe_energy import SafeEnergy
    from xgamma.workflow.stages import map_options

    options = map_options(analysis)
    observations = analysis.observations
    layer = load_layer(observations, analysis.geometry, SafeEnergy.parse(options["safe_energy"]),
                       options["energy_true"], resolve_runs_per_task(None, len(observations)))
    workers = sorted(client.scheduler_info()["workers"])
    futures = []
    for address, keys in _worker_shares(list(layer), workers):
        graph = {key: layer[key] for key in keys}
        placement = {"workers": [address], "allow_other_workers": True} if address is not None else {}
        futures += client.compute([Delayed(key, graph) for key in keys], **placement)
    return futures


#: `distributed` priority of the writes that free a chunk's cube (`fuse_per_chunk`); other tasks have 0.
FIRST_WRITES_PRIORITY = 1

#: Index, in the keys of `fuse_per_chunk`'s tasks, of the one task of all chunks that no run reaches.
NO_RUNS = ("no-runs",)

#: Block tasks per worker that `start_blocks` submits before the rest of the graph.
EARLY_BLOCKS_PER_WORKER = 8


def start_blocks(cube: xr.Dataset, client: Any) -> list[Any]:
    """Submit the first map-making block tasks of ``cube`` (`stacked_cube`) to ``client`` now; return
    their futures (held as those of `start_loads`).

    After its loads, a worker waits until the client has built the rest of the graph (the squash,
    the ring and significance of ``full`` products, the zarr metadata): 0.64-0.72 s per worker on the
    1000-run survey with ring and significance (2 workers, 2 cores). The blocks need only the loads,
    so the first `EARLY_BLOCKS_PER_WORKER` of each worker's share of run groups (those it runs first)
    start now: ~1 s of work per worker on the survey, and at most that many partial cubes per worker
    (19 MB each for the survey's 256-pixel chunks and 24 energy bins) held until their sums arrive,
    whatever the runs and the time the client takes. Their keys are those of the graph built later:
    the scheduler reuses them.
    """
    from dask.delayed import Delayed

    from xgamma.makers.chunks import BLOCK_PREFIX, LOAD_PREFIX

    graph = cube["counts"].data.__dask_graph__()

    def keys_of(prefix: str) -> list[Any]:
        return [key for key in graph if isinstance(key, tuple) and str(key[0]).startswith(prefix)]

    blocks = sorted(keys_of(BLOCK_PREFIX), key=lambda key: key[1:])  # (group, chunk): each worker's order
    if not blocks:
        return []
    # Counted from the loads, as `_worker_shares` places them: a last group that reaches no chunk has
    # no block but still counts there.
    n_groups = len(keys_of(LOAD_PREFIX))
    workers = sorted(client.scheduler_info()["workers"])
    taken: dict[int, list[Any]] = {}
    for key in blocks:  # the worker of group g is that of its load
        share = taken.setdefault(_worker_index(key[1], n_groups, len(workers)), [])
        if len(share) < EARLY_BLOCKS_PER_WORKER:
            share.append(key)
    keys = [key for share in taken.values() for key in share]
    dependencies = graph.get_all_dependencies()
    subgraph = {key: graph[key] for key in keys}
    subgraph.update({load: graph[load] for key in keys for load in dependencies[key]})  # the loads
    return client.compute([Delayed(key, subgraph) for key in keys])


def _worker_shares(loads: list[Any], workers: list[str]) -> list[tuple[str | None, list[Any]]]:
    """Consecutive run groups' loads for each worker: group g of G to worker ``g * W // G`` (keys sorted by
    name, then index); ``[(None, loads)]`` with fewer than 2 workers."""
    if len(workers) < 2:
        return [(None, loads)]
    loads = sorted(loads, key=lambda key: (str(key[0]), key[1:]))
    return [(address, [key for k, key in enumerate(loads) if _worker_index(k, len(loads), len(workers)) == index])
            for index, address in enumerate(workers)]


def _worker_index(group: int, n_groups: int, n_workers: int) -> int:
    """The worker (index in address order) of run group ``group`` of ``n_groups``: consecutive groups together."""
    return group * n_workers // n_groups


def write_tasks(stores: dict[str, Any]) -> list[Any]:
    """The chunk writes (`ChunkedStore.tasks`) of every store, their arrays optimised together
    (`optimize_together`); `fuse_per_chunk` makes one task per chunk of them."""
    arrays = {(name, var): array for name, store in stores.items() for var, array in store.arrays().items()}
    optimized = dict(zip(arrays, optimize_together(list(arrays.values()))))
    return [task for name, store in stores.items()
            for task in store.tasks({var: optimized[name, var] for var in store.arrays()})]


def optimize_together(arrays: list[Any]) -> list[Any]:
    """The dask arrays optimised as one graph, so that work shared between them stays shared.

    `dask.optimize` optimises each collection's graph on its own: a blockwise step feeding
    several products (the energy squash's range feeding the squashed exposure and both band
    edges; the on/off significance feeding excess and significance) was fused into each of them
    and computed once per product. Here all outputs' keys are given to one optimisation.
    """
    from dask.highlevelgraph import HighLevelGraph

    if not arrays:
        return []
    graph = HighLevelGraph.merge(*(array.__dask_graph__() for array in arrays))
    optimized = arrays[0].__dask_optimize__(graph, [array.__dask_keys__() for array in arrays])
    out = []
    for array in arrays:
        rebuild, args = array.__dask_postpersist__()
        out.append(rebuild(optimized, *args))
    return out


def fuse_per_chunk(writes: list[Any]) -> list[Any]:
    """One task per spatial chunk: its writes (of every store) and every task only they need.

    ``writes`` are the `ChunkedStore.tasks` of the stores (keys ``(name, i_lat, i_lon)``). Per
    chunk, dask and xarray make ~20 small tasks after map making (the partial cubes' sum, a
    ``getitem`` per variable, the energy squash's sums, range and transposes, the writes): each
    costs the `distributed` scheduler and worker 1-2 ms, as much as its compute, and moves the
    chunk between workers when they land on different ones. Here every task whose results only
    the chunk's writes use (directly or through other such tasks) runs inside one task, on the
    synchronous scheduler (`dask.get`). The map-making loads and blocks
    (`xgamma.makers.chunks.MAP_TASK_PREFIXES`: sized per run group already) and
    tasks shared between chunks (the ring's overlaps) stay separate tasks. Slices (dask's
    ``getitem``) and constants (zero cubes) run inside each task that uses them, shared or not
    (`_inline_free_tasks`).

    A chunk whose writes wait for tasks that need other chunks too (the ring's and significance's
    blocks) is two tasks (`_waiting_for_other_chunks`): first what its map making alone gives (the
    cube's writes; the squashed exposure and safe energy range, handed to the second), then the
    rest. As one task, on the 1000-run survey, a chunk's cube (19 MB) stayed in memory until the
    ring's and significance's blocks around it were done, and the last blocks' cubes were written
    at the very end, while one worker waited for the other. The first tasks carry the `distributed`
    priority `FIRST_WRITES_PRIORITY` (dask's order put them next to the second ones). A chunk that no
    run reaches has a zero cube, made again in its task: it stays one task.

    The chunks whose writes use no run's data (none of map making's tasks upstream) are one group,
    key ``(name, *NO_RUNS)``, as if one chunk: with them go the tasks that only they use (their energy
    sums, the ring's and significance's blocks far from every run, those blocks' channels), while
    those that a chunk with runs needs too stay tasks of their own. On the 1000-run survey (runs
    over 15 of the map's 35 columns of chunks) 210 of 624 `full` tasks computed from zeros alone; on
    a cluster each task costs the scheduler and a worker ~3 ms of CPU: 460 tasks now.

    Returns
    -------
    tasks : list of `dask.delayed.Delayed`
        One per chunk (one for all chunks without runs), computing to the tuple of its writes' results.
    """
    from functools import partial
    from uuid import uuid4

    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

    if not writes:
        return []
    graph = dict(HighLevelGraph.merge(*(task.__dask_graph__() for task in writes)))
    dependencies = HighLevelGraph.from_collections("fuse", graph, dependencies=()).get_all_dependencies()
    graph, dependencies = _inline_free_tasks(graph, dependencies, keep={task.key for task in writes})
    with_runs = _using_runs(graph, dependencies)
    dependents: dict[Any, set] = {key: set() for key in graph}
    for key, keys in dependencies.items():
        for dependency in keys:
            dependents[dependency].add(key)
    chunks: dict[tuple, list] = {}
    for task in writes:
        chunks.setdefault(tuple(task.key[1:]), []).append(task.key)
    without_runs = [index for index, outputs in chunks.items() if not with_runs.intersection(outputs)]
    if len(without_runs) > 1:  # one group, as if one chunk: see the docstring
        chunks[NO_RUNS] = [key for index in without_runs for key in chunks.pop(index)]
    token = uuid4().hex
    name, first_name = f"write-chunk-{token}", f"write-first-{token}"
    fused, first, last = dict(graph), {}, {}
    for index, outputs in chunks.items():
        members, added = set(outputs), set(outputs)
        while added:  # until no task outside has all its dependents inside (the last to join brings it in)
            candidates = {d for key in added for d in dependencies[key]} - members
            added = {d for d in candidates if not _separate(d) and dependents[d] <= members}
            members |= added
        subgraph = {key: fused.pop(key) for key in members}
        later = _waiting_for_other_chunks(members, dependencies)
        first_writes = [key for key in outputs if key not in later]
        # A chunk that no run reaches has a zero cube, made again in its task: nothing to let go early.
        if not later or not first_writes or not (members - later) & with_runs:
            inputs = _inputs(members, dependencies)
            last[(name, *index)] = (partial(_run_fused, subgraph, inputs, tuple(outputs)), *inputs)
            continue
        # Two tasks: the writes that need this chunk's map making alone run as soon as it is done
        # and let its cube go; they hand the rest what it needs of their work (squashed images).
        early = members - later
        handed = tuple(sorted({d for key in later for d in dependencies[key]} & early, key=str))
        inputs = _inputs(early, dependencies)
        first[(first_name, *index)] = (partial(_run_fused, {key: subgraph[key] for key in early}, inputs,
                                               (*first_writes, *handed)), *inputs)
        inputs = tuple(key for key in _inputs(later, dependencies) if key not in early)
        last[(name, *index)] = (partial(_run_after, {key: subgraph[key] for key in later}, inputs, tuple(outputs),
                                        (*first_writes, *handed)), (first_name, *index), *inputs)
    # A chunk's first task lets its cube go: on a cluster it runs before the other tasks ready then
    # (dask's order left it next to the chunk's later task, the cube held until then).
    graph = HighLevelGraph(
        {f"{name}-inputs": MaterializedLayer(fused),
         first_name: MaterializedLayer(first, annotations={"priority": FIRST_WRITES_PRIORITY}),
         name: MaterializedLayer(last)},
        {f"{name}-inputs": set(), first_name: {f"{name}-inputs"}, name: {f"{name}-inputs", first_name}})
    return [Delayed((name, *index), graph, layer=name) for index in chunks]


def _using_runs(graph: dict, dependencies: dict[Any, set]) -> set:
    """The keys of ``graph`` that use some run's data: map making's tasks (`_separate`) and those that
    depend on them, directly or not."""
    from dask.core import toposort

    using: set = set()
    for key in toposort(graph, dependencies=dependencies):
        if _separate(key) or dependencies[key] & using:
            using.add(key)
    return using


def _inputs(members: set, dependencies: dict[Any, set]) -> tuple:
    """The keys outside ``members`` that they depend on, in a fixed order."""
    return tuple(sorted({d for key in members for d in dependencies[key]} - members, key=str))


def _waiting_for_other_chunks(members: set, dependencies: dict[Any, set]) -> set:
    """The tasks of ``members`` (one chunk's group of `fuse_per_chunk`) that wait for more than map making.

    An input of the group is ready with the chunk's map making if it is one of map making's tasks
    (`_separate`) or made from them alone (the squashed images that the ring's blocks share); the
    others (the ring's and significance's blocks) wait for the chunk's neighbours. Their users, and
    the users of those, wait with them.
    """
    def ready_early(key: Any) -> bool:
        return _separate(key) or all(_separate(d) for d in dependencies[key])

    later = {key for key in members if any(d not in members and not ready_early(d) for d in dependencies[key])}
    added = later
    while added:
        added = {key for key in members - later if dependencies[key] & added}
        later |= added
    return later


def _is_view(key: Any) -> bool:
    """dask's ``getitem`` tasks: slices of an array chunk (a numpy view, nothing computed)."""
    from dask.utils import key_split

    return key_split(key) == "getitem"


def _inline_free_tasks(graph: dict, dependencies: dict[Any, set], keep: set) -> tuple[dict, dict[Any, set]]:
    """``graph`` with each free task but those of ``keep`` taken inside every task that uses it, and
    the dependencies of that graph.

    Free tasks are views (`_is_view`) and constants: tasks without inputs, map making's loads
    (`_separate`) excepted, i.e. the zero cubes of chunks that no run reaches and the chunks of
    in-memory arrays (the exclusion mask).

    The squash slices each chunk's counts and background cubes out of its stacked maps, and those
    slices feed both the chunk's writes and the energy sums that the ring's blocks share: as tasks
    of their own they stayed between the two (140 tasks on the 1000-run survey, each costing the
    scheduler and a worker ~2 ms), and a write landing on the other worker fetched the chunk's maps
    and both slices (31 MB instead of 19). A chunk's zero cube (19 MB, most of the 1000-run survey's
    map) travelled to the sums or writes that landed on the other worker. Slicing again, or making
    zeros again, in each user costs nothing; a view that is a copy after all (fancy indexing) is
    computed once per user, and a constant holding an array is sent with each of its users (the
    exclusion product's chunks have one, their chunk's write; the ring's mask chunks the one or two
    blocks whose windows touch them: 65 kB each on the survey).
    """
    from functools import partial

    free = {key for key in graph if _is_view(key) or (not dependencies[key] and not _separate(key))} - keep
    if not free:
        return graph, dependencies
    inlined = {key: task for key, task in graph.items() if key not in free}
    inlined_dependencies = {key: dependencies[key] for key in inlined}
    for key in inlined:
        members, pending = {key}, list(dependencies[key] & free)
        while pending:  # and the free tasks those use (views of views)
            task = pending.pop()
            if task not in members:
                members.add(task)
                pending.extend(dependencies[task] & free)
        if len(members) == 1:
            continue
        inputs = _inputs(members, dependencies)
        subgraph = {member: graph[member] for member in members}
        inlined[key] = (partial(_run_inlined, subgraph, inputs, key), *inputs)
        inlined_dependencies[key] = set(inputs)
    return inlined, inlined_dependencies


def place_groups(tasks: list[Any], workers: list[str]) -> list[Any]:
    """``tasks`` with the map-making loads of consecutive run groups asked of the same worker.

    Neighbouring groups of runs reach the same chunks: each chunk's partial cubes are added where
    most of them are, and the others travel between workers. Left to the scheduler, groups went
    to the workers in turn (two at a time) and half of the 19 MB partial cubes moved (survey
    N = 1000, 2 workers: 78 of 150, 880 MB). Here group g of G is asked of worker
    ``g * len(workers) // G`` (in address order), a loose restriction (`distributed` worker
    annotations with ``allow_other_workers``): an idle worker still steals loads, and a lost
    worker's loads go to the others. With fewer than 2 workers ``tasks`` come back unchanged.
    """
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

    from xgamma.makers.chunks import LOAD_PREFIX

    if len(workers) < 2 or not tasks:
        return tasks
    merged = HighLevelGraph.merge(*(task.__dask_graph__() for task in tasks))
    graph = merged.to_dict()
    loads = [key for key in graph if isinstance(key, tuple) and str(key[0]).startswith(LOAD_PREFIX)]
    if not loads:
        return tasks
    name = str(tasks[0].key[0])
    layers, dependencies = {}, {}
    for index, (address, keys) in enumerate(_worker_shares(loads, workers)):
        layers[f"{name}-loads-{index}"] = MaterializedLayer(
            {key: graph[key] for key in keys}, annotations={"workers": [address], "allow_other_workers": True})
        dependencies[f"{name}-loads-{index}"] = set()
    load_layers, placed_loads = set(layers), set(loads)
    for layer_name, layer in merged.layers.items():  # the rest, with their own annotations
        layers[layer_name] = MaterializedLayer({key: task for key, task in layer.items() if key not in placed_loads},
                                               annotations=layer.annotations)
        dependencies[layer_name] = set(merged.dependencies.get(layer_name, ())) | load_layers
    placed = HighLevelGraph(layers, dependencies)
    return [Delayed(task.key, placed, layer=name) for task in tasks]


def _separate(key: Any) -> bool:
    """Map making's own tasks (`xgamma.makers.chunks.MAP_TASK_PREFIXES`) stay tasks of their own."""
    from xgamma.makers.chunks import MAP_TASK_PREFIXES

    return str(key[0] if isinstance(key, tuple) else key).startswith(MAP_TASK_PREFIXES)


def _given(value: Any) -> Any:
    return value


def _run_fused(subgraph: dict, inputs: tuple, outputs: tuple, *values: Any) -> tuple:
    """Compute ``outputs`` of ``subgraph`` given the values of its ``inputs`` (a task of `fuse_per_chunk`)."""
    from functools import partial

    import dask

    graph = dict(subgraph)
    # Given values enter as tasks returning them: dask would read a tuple or list as a task.
    graph.update({key: (partial(_given, value),) for key, value in zip(inputs, values)})
    return tuple(dask.get(graph, list(outputs)))


def _run_after(subgraph: dict, inputs: tuple, outputs: tuple, handed: tuple, first: tuple, *values: Any) -> tuple:
    """Compute ``outputs`` of ``subgraph`` from its ``inputs`` and from ``first``, the results of the
    chunk's first task (`fuse_per_chunk`), those of the keys ``handed``."""
    return _run_fused(subgraph, (*handed, *inputs), outputs, *first, *values)


def _run_inlined(subgraph: dict, inputs: tuple, output: Any, *values: Any) -> Any:
    """Compute ``output`` of ``subgraph`` (a task and the free tasks it uses, `_inline_free_tasks`) from its
    inputs."""
    return _run_fused(subgraph, inputs, (output,), *values)[0]


def _publish(analysis: Analysis, output: Path, resume: Path, stores: dict[str, Path]) -> dict[str, Path]:
    """Publish the finished stores with ``summary.json`` and ``config.yaml`` (`StagedOutput`:
    earlier products replaced, the manifest ``products.json`` last), then drop the resume folder."""
    from xgamma.workflow import products
    from xgamma.workflow.staging import StagedOutput

    with StagedOutput(output, product_names=(*products.PRODUCT_NAMES, *MOSAIC_PRODUCT_NAMES)) as staging:
        staged = {}
        for name, path in stores.items():
            staged[name] = path.rename(staging.path / path.name)  # same file system: a rename
        staged["summary"] = products.write_summary(analysis, staging.path)
        staged["config"] = products.write_config(analysis, staging.path)
    shutil.rmtree(resume)
    return {name: staging.final(path) for name, path in staged.items()}
