"""Survey mosaics streamed to zarr / FITS tiles: same products as in memory, resumable, reopenable."""

from __future__ import annotations

import json
import operator

import dask
import numpy as np
import pytest
import xarray as xr
from mosaic_cases import assert_products_equal, beyond_runs_config, in_memory_products, mosaic_config

from xgamma.exceptions import ConfigError, XgammaError
from xgamma.io.zarr_maps import read_zarr
from xgamma.workflow import run_analysis
from xgamma.workflow.mosaic import RESUME_FOLDER


def _read_stores(output) -> dict:
    return {name: read_zarr(output / f"{name}.zarr").compute() for name in ("maps", "images")}


def test_zarr_mosaic_equals_the_in_memory_products_and_reopens(survey_store, reference_products, tmp_path):
    output = tmp_path / "out"
    analysis = run_analysis(mosaic_config(survey_store, chunks=40), output=output)
    assert {p.name for p in output.iterdir()} == {"maps.zarr", "images.zarr", "summary.json", "config.yaml",
                                                 "products.json"}
    # Chunk invariance: 9 chunks of 40 pixels written one by one = the map computed as one chunk.
    assert_products_equal(_read_stores(output), reference_products)
    plain = xr.open_zarr(output / "images.zarr")
    assert plain["significance"].dims == ("correlation_radius", "energy", "lat", "lon")
    assert plain["significance"].chunks[-2:] == ((40, 40, 40), (40, 40, 40))
    assert list(plain["correlation_radius"].values) == [0.1, 0.2]
    from xgamma.maps import map_geometry

    assert map_geometry(read_zarr(output / "maps.zarr")) == analysis.geometry
    # Plain xarray keeps the geometry too (the spatial_ref coordinate): the accessor works on it.
    assert map_geometry(xr.open_zarr(output / "maps.zarr")) == analysis.geometry
    assert plain["significance"].sky.geometry.wcs.wcs.compare(analysis.geometry.wcs.wcs)
    summary = json.loads((output / "summary.json").read_text())["mosaic"]
    assert summary["stores"]["maps"] == {"chunks": 9, "resumed": 0}
    assert not (output / RESUME_FOLDER).exists()


@pytest.mark.slow
@pytest.mark.parametrize("frame,projection", [("icrs", "TAN"), ("galactic", "AIT")])
def test_zarr_mosaic_in_another_frame_and_projection_equals_the_in_memory_products(survey_store, tmp_path, frame,
                                                                                   projection):
    """Off the survey's galactic CAR map: equatorial TAN (the map's axes are not l and b: which chunks a run
    reaches is found on a curved grid) and galactic AIT. Chunks of 40 against one chunk."""
    config = mosaic_config(survey_store, chunks=40)
    config["geometry"]["projection"] = projection
    if frame == "icrs":  # l = b = 0 deg, the exclusion region at l = 0.5 deg, b = 0.2 deg
        config["geometry"]["center"] = {"lon": "266.40 deg", "lat": "-28.94 deg", "frame": "icrs"}
        config["exclusion"] = {"regions": ["galactic; circle(0.5, 0.2, 0.3)"]}
    whole = {**config, "maps": {**config["maps"], "chunks": 120}}
    expected = in_memory_products(whole)
    analysis = run_analysis(config, output=tmp_path / "out")
    assert analysis.geometry.frame == frame and analysis.geometry.projection == projection
    assert int(expected["images"]["counts"].sum()) > 10_000  # the runs are inside the map
    assert_products_equal(_read_stores(tmp_path / "out"), expected)


def test_fits_tiles_hold_the_same_maps_with_their_own_wcs(survey_store, reference_products, tmp_path):
    from xgamma.io.fits_maps import read_maps
    from xgamma.maps import map_geometry

    output = tmp_path / "tiles"
    run_analysis(mosaic_config(survey_store, chunks=50, output_format="fits-tiles"), output=output)
    tiles = sorted((output / "images").glob("*.fits"))
    assert len(tiles) == 9  # 50 + 50 + 20 pixels per axis
    expected = reference_products["images"]
    geometry = map_geometry(expected)
    mosaic = np.full(geometry.shape, np.nan)
    for path in tiles:
        tile = read_maps(path)
        tile_geometry = map_geometry(tile)
        # The tile's WCS puts its first pixel where it belongs in the full map.
        x, y = geometry.wcs.world_to_pixel(tile_geometry.pixel_to_skycoord(0, 0))
        i, j = int(round(float(y))), int(round(float(x)))
        ny, nx = tile_geometry.shape
        mosaic[i:i + ny, j:j + nx] = tile["significance_correlation_radius0.2"].values[0]
        np.testing.assert_array_equal(tile["counts"].values[0], expected["counts"].values[0, i:i + ny, j:j + nx])
    np.testing.assert_allclose(mosaic, expected["significance"].sel(correlation_radius=0.2).values[0],
                               rtol=1e-9, atol=1e-8)
    assert len(sorted((output / "maps").glob("*.fits"))) == 9


def test_interrupted_run_resumes_and_rewrites_a_damaged_chunk(survey_store, reference_products, tmp_path,
                                                             monkeypatch):
    import zarr

    import xgamma.io.chunked as chunked

    config = mosaic_config(survey_store, chunks=40)
    output = tmp_path / "out"
    write = chunked._write_zarr_chunk
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt("interrupted")
        return write(*args, **kwargs)

    monkeypatch.setattr(chunked, "_write_zarr_chunk", failing_write)
    with pytest.raises(KeyboardInterrupt), dask.config.set(scheduler="sync"):  # one chunk at a time
        run_analysis(config, output=output)
    # Nothing looks complete: the stores are only in the resume folder, with the 6 chunks written
    # before the interruption recorded.
    assert not (output / "products.json").exists() and not (output / "maps.zarr").exists()
    resume = output / RESUME_FOLDER
    markers = list((resume / ".chunks").rglob("*.json"))
    assert len(markers) == 6
    # Damage one recorded chunk: the resumed run must notice it and write it again.
    store, name = markers[0].parent.name, markers[0].stem
    i, j = (int(k) for k in name.split("_"))
    group = zarr.open_group(str(resume / f"{store}.zarr"), mode="r+")
    group["counts"][..., i * 40:(i + 1) * 40, j * 40:(j + 1) * 40] = -1.0

    monkeypatch.setattr(chunked, "_write_zarr_chunk", write)
    run_analysis(config, output=output)
    summary = json.loads((output / "summary.json").read_text())["mosaic"]["stores"]
    assert summary["maps"]["resumed"] + summary["images"]["resumed"] == len(markers) - 1
    assert_products_equal(_read_stores(output), reference_products)


def test_existing_products_are_replaced_only_with_overwrite(survey_store, tmp_path):
    config = mosaic_config(survey_store, chunks=60)
    config["ring"] = {"method": "ring", "r_in": "0.5 deg", "width": "0.3 deg"}
    config["significance"] = {"correlation_radius": "0.1 deg"}
    output = tmp_path / "out"
    run_analysis(config, output=output)
    with pytest.raises(XgammaError, match="complete run.*--overwrite"):
        run_analysis(config, output=output)
    # A different unfinished run in the folder is not resumed with another configuration.
    (output / RESUME_FOLDER).mkdir()
    (output / RESUME_FOLDER / "fingerprint.json").write_text("{}")
    with pytest.raises(XgammaError, match="unfinished run of a different configuration"):
        run_analysis(config, output=output)
    run_analysis(config, output=output, overwrite=True)
    assert json.loads((output / "products.json").read_text())["complete"] is True


@pytest.mark.parametrize(("change", "match"), [
    ({"fit": {"on": "images"}}, "fit: not available with output.format 'zarr'"),
    ({"plots": True}, "plots: not available"),
    ({"exclusion": {"threshold": 5.0}}, "exclusion.threshold"),
])
def test_sections_that_need_maps_in_memory_are_refused(survey_store, tmp_path, change, match):
    with pytest.raises(ConfigError, match=match):
        run_analysis({**mosaic_config(survey_store), **change}, output=tmp_path / "out")


def test_streamed_formats_need_an_output_folder_and_fits_one_radius(survey_store):
    with pytest.raises(ConfigError, match="give an output folder"):
        run_analysis(mosaic_config(survey_store))
    with pytest.raises(ConfigError, match="several radii need output.format zarr"):
        run_analysis(mosaic_config(survey_store, output_format="fits"))


def test_mosaic_graph_is_lazy(survey_store):
    from xgamma.testing import raise_if_dask_computes
    from xgamma.workflow import inputs, validate_config
    from xgamma.workflow.analysis import Analysis
    from xgamma.workflow.mosaic import mosaic_datasets

    config = validate_config(mosaic_config(survey_store))
    analysis = Analysis(config=config, observations=inputs.select_observations(config),
                        geometry=inputs.build_geometry(config))
    with raise_if_dask_computes():
        products = mosaic_datasets(analysis)
    assert all(var.chunks is not None for ds in products.values() for var in ds.data_vars.values())


def test_mosaic_graph_moves_no_data_between_chunks_and_blocks(survey_store, tmp_path):
    """The submitted graph of ring + significance products: map making, the shared squashed images,
    the ring's and significance's blocks (one task each, reading the chunks they touch) and their
    channels, one write per chunk: no rechunk, overlap or concatenation tasks in between."""
    from collections import Counter

    from dask.highlevelgraph import HighLevelGraph
    from dask.utils import key_split

    from xgamma.io.chunked import ChunkedStore
    from xgamma.workflow import inputs, validate_config
    from xgamma.workflow.analysis import Analysis
    from xgamma.workflow.mosaic import fuse_per_chunk, mosaic_datasets, write_tasks

    config = validate_config(mosaic_config(survey_store))
    analysis = Analysis(config=config, observations=inputs.select_observations(config),
                        geometry=inputs.build_geometry(config))
    with dask.config.set({"xgamma.block_size": 40 * 80}):  # blocks of 2 chunks: blocks have neighbours
        stores = {name: ChunkedStore(dataset, tmp_path / f"{name}.zarr", chunks=40, progress=tmp_path / name)
                  for name, dataset in mosaic_datasets(analysis).items()}
    tasks = fuse_per_chunk(write_tasks(stores))
    graph = dict(HighLevelGraph.merge(*(task.__dask_graph__() for task in tasks)))
    kinds = Counter(key_split(key) for key in graph)
    assert kinds["write-chunk"] == 9
    # Each chunk's cubes are written (and let go) as soon as its map making is done.
    assert kinds["write-first"] == 9
    dependencies = tasks[0].__dask_graph__().get_all_dependencies()
    assert {key_split(d) for key in graph if key_split(key) == "write-first" for d in dependencies[key]} == {
        "xgamma-maps"}
    assert not {kind for kind in kinds if "rechunk" in kind or kind in ("overlap", "concatenate")}, kinds
    assert "getitem" not in kinds  # the squash's slices of the stacked maps run inside their users
    assert kinds["adaptive_ring_block"] > 1 and kinds["on_off_core"] > 2  # several blocks, two radii


def test_tasks_without_runs_join_one_task_and_write_the_same_products(survey_store, beyond_runs_products,
                                                                     tmp_path):
    """A map reaching beyond the runs: the chunks that no run reaches, and the tasks only they use (their
    energy sums, the ring's and significance's blocks over zeros and their channels), run as one task
    (`fuse_per_chunk`'s `NO_RUNS` group), and such a chunk is not split into first writes and the rest;
    the products are those computed in memory as one chunk."""
    from collections import Counter

    from dask.highlevelgraph import HighLevelGraph
    from dask.utils import key_split

    from xgamma.io.chunked import ChunkedStore
    from xgamma.makers.chunks import LOAD_PREFIX
    from xgamma.workflow import inputs, validate_config
    from xgamma.workflow.analysis import Analysis
    from xgamma.workflow.mosaic import NO_RUNS, fuse_per_chunk, mosaic_datasets, write_tasks

    config = beyond_runs_config(survey_store)
    with dask.config.set({"xgamma.block_size": 40 * 80}):  # blocks of 2 chunks: some see no run at all
        run_analysis(config, output=tmp_path / "out")
        assert_products_equal(_read_stores(tmp_path / "out"), beyond_runs_products)
        config = validate_config(config)
        analysis = Analysis(config=config, observations=inputs.select_observations(config),
                            geometry=inputs.build_geometry(config))
        stores = {name: ChunkedStore(dataset, tmp_path / f"{name}.zarr", chunks=40, progress=tmp_path / name)
                  for name, dataset in mosaic_datasets(analysis).items()}
    writes = write_tasks(stores)
    unfused = dict(HighLevelGraph.merge(*(write.__dask_graph__() for write in writes)))
    tasks = fuse_per_chunk(writes)
    graph = dict(HighLevelGraph.merge(*(task.__dask_graph__() for task in tasks)))
    reached = {key[-2:] for key in graph if key_split(key) == "xgamma-maps"}  # the chunks with map making
    n_chunks = len({write.key[1:] for write in writes})
    assert 0 < len(reached) < n_chunks == 27
    # Only a chunk with runs lets its cube go first: the others have a zero cube, made in their task.
    assert {key[1:] for key in graph if key_split(key) == "write-first"} == reached
    (constant,) = [task.key for task in tasks if task.key[1:] == NO_RUNS]
    assert len(tasks) < n_chunks
    dependencies = tasks[0].__dask_graph__().get_all_dependencies()
    upstream, pending = set(), [constant]
    while pending:  # everything the joined task waits for: no run's load among it
        for key in dependencies[pending.pop()] - upstream:
            upstream.add(key)
            pending.append(key)
    assert not any(str(key[0]).startswith(LOAD_PREFIX) for key in upstream if isinstance(key, tuple))
    kinds, before = Counter(key_split(key) for key in graph), Counter(key_split(key) for key in unfused)
    assert kinds["on_off_core"] < before["on_off_core"]  # some joined it (here the ring's blocks, and the sums
    # they read, feed significance blocks that use runs too)
    # Each chunk is written once: by its own task or by the joined one.
    for store in stores.values():
        store.prepare()
    results = dask.compute(*tasks, scheduler="sync")
    assert sum(len(result) for result in results) == len(writes)
    assert len(results[[task.key for task in tasks].index(constant)]) > len(stores)  # several chunks' writes
    with_runs = [write for write in writes if write.key[1:] in reached]
    assert not [task for task in fuse_per_chunk(with_runs) if task.key[1:] == NO_RUNS]  # nothing to join


def test_fuse_per_chunk_joins_the_chunks_that_no_run_reaches():
    """The writes of chunks made from no map-making task, and the tasks only they use, are one task; a task of
    that kind that a chunk with runs needs stays a task of its own (an input of the joined one). A single
    chunk without runs stays its own task. Values are those of the unfused graph."""
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    from xgamma.workflow.mosaic import NO_RUNS, fuse_per_chunk

    load = "xgamma-load-test"
    graph = {
        (load, 0): (np.arange, 4.0),
        ("edge-base",): (np.ones, 4),  # a constant: made again in each user (`_inline_free_tasks`)
        ("edge-test",): (np.negative, ("edge-base",)),  # no run, but needed by a write with runs too
        ("inner-test", 1): (np.full, 4, 2.0),
        ("inner-test", 2): (np.multiply, ("inner-test", 1), ("edge-test",)),  # used by two chunks without runs
        ("write-a", 0, 0): (np.dot, (load, 0), ("edge-test",)),
        ("write-a", 0, 1): (np.sum, ("inner-test", 2)),
        ("write-b", 0, 2): (np.dot, ("inner-test", 1), ("inner-test", 2)),
    }
    layer = HighLevelGraph.from_collections("test", graph, dependencies=())
    keys = [("write-a", 0, 0), ("write-a", 0, 1), ("write-b", 0, 2)]
    writes = [Delayed(key, layer, layer="test") for key in keys]
    expected = dask.compute(*writes, scheduler="sync")
    tasks = fuse_per_chunk(writes)
    assert [task.key[1:] for task in tasks] == [(0, 0), NO_RUNS]
    merged = tasks[0].__dask_graph__()
    assert set(merged.to_dict()) == {(load, 0), ("edge-test",), tasks[0].key, tasks[1].key}
    assert merged.get_all_dependencies()[tasks[1].key] == {("edge-test",)}
    assert dask.compute(*tasks, scheduler="sync") == ((expected[0],), (expected[1], expected[2]))
    alone = fuse_per_chunk(writes[:2])  # a single chunk without runs: nothing to join
    assert [task.key[1:] for task in alone] == [(0, 0), (0, 1)]
    assert dask.compute(*alone, scheduler="sync") == ((expected[0],), (expected[1],))
    assert fuse_per_chunk([]) == []


def test_example_survey_configuration_is_the_hess_survey_geometry(survey_store):
    """examples/gps-survey.yaml: 63 M voxels per cube pass the checks (no in-memory size limit)."""
    from pathlib import Path

    import yaml

    raw = yaml.safe_load((Path(__file__).parents[2] / "examples" / "gps-survey.yaml").read_text())
    raw["data"]["datastore"] = str(survey_store)
    with dask.config.set({"xgamma.max_memory": "500 MB"}):  # far less than the 63 M-voxel cube needs
        analysis = run_analysis(raw, dry_run=True)
        in_memory = {**raw, "output": {"format": "fits"}, "significance": {"correlation_radius": "0.1 deg"}}
        with pytest.raises(ConfigError, match="output.format: zarr"):  # refused without streaming
            run_analysis(in_memory, dry_run=True)
    assert analysis.geometry.shape == (300, 8750) and analysis.geometry.nbins == 24
    lon, lat = analysis.geometry.lonlat()
    lon = (lon + 180) % 360 - 180  # l = 250 .. 360 .. 65 deg
    assert lon.min() == pytest.approx(-110 + 0.01) and lon.max() == pytest.approx(65 - 0.01)
    assert abs(lat).max() == pytest.approx(3 - 0.01)


def test_fuse_per_chunk_runs_each_chunks_own_tasks_in_one_task():
    """Tasks only one chunk's writes need join them; loads/blocks and tasks shared by chunks stay apart."""
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    from xgamma.workflow.mosaic import fuse_per_chunk

    block = "xgamma-block-test"
    graph = {
        (block, 0): (np.arange, 3.0), (block, 1): (np.ones, 3),
        ("sum-test", 0, 0): (np.add, (block, 0), (block, 1)),
        ("neg-test", 0, 0): (np.negative, ("sum-test", 0, 0)),
        ("shared-test",): (np.multiply, (block, 0), 2.0),  # needed by two chunks
        ("write-a", 0, 0): (np.dot, ("sum-test", 0, 0), ("shared-test",)),
        ("write-b", 0, 0): (np.sum, ("neg-test", 0, 0)),
        ("write-a", 0, 1): (np.sum, ("shared-test",)),
    }
    layer = HighLevelGraph.from_collections("test", graph, dependencies=())
    writes = [Delayed(key, layer, layer="test") for key in (("write-a", 0, 0), ("write-b", 0, 0), ("write-a", 0, 1))]
    expected = dask.compute(*writes, scheduler="sync")
    fused = fuse_per_chunk(writes)
    assert [task.key[1:] for task in fused] == [(0, 0), (0, 1)]
    merged = dict(HighLevelGraph.merge(*(task.__dask_graph__() for task in fused)))
    # The chunk's sum and negation run inside its task; the blocks and the shared product do not.
    assert set(merged) == {(block, 0), (block, 1), ("shared-test",), fused[0].key, fused[1].key}
    (first, second) = dask.compute(*fused, scheduler="sync")
    assert first == (expected[0], expected[1]) and second == (expected[2],)
    assert fuse_per_chunk([]) == []


def test_fuse_per_chunk_slices_inside_each_user():
    """A ``getitem`` (a view) used by a task shared between chunks and by a chunk's write is no task
    of its own: both slice again. A constant (a task without inputs, e.g. the zero cube of a chunk no
    run reaches) is made again in each user. The values are those of the unfused graph."""
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    from xgamma.workflow.mosaic import fuse_per_chunk

    block, view = "xgamma-block-test", "getitem-" + "0123456789abcdef" * 2  # dask's slices: getitem-<token>
    graph = {
        (block, 0): (np.arange, 6.0),
        (view, 0): (operator.getitem, (block, 0), slice(1, 4)),
        (view, 1): (operator.getitem, (view, 0), slice(0, 2)),  # a view of a view
        ("constant-test",): (np.full, 2, 2.0),
        ("shared-test",): (np.multiply, (view, 1), ("constant-test",)),  # needed by two chunks
        ("write-a", 0, 0): (np.dot, (view, 1), ("shared-test",)),
        ("write-b", 0, 0): (np.sum, (view, 0)),
        ("write-a", 0, 1): (np.sum, ("shared-test",)),
    }
    layer = HighLevelGraph.from_collections("test", graph, dependencies=())
    writes = [Delayed(key, layer, layer="test") for key in (("write-a", 0, 0), ("write-b", 0, 0), ("write-a", 0, 1))]
    expected = dask.compute(*writes, scheduler="sync")
    fused = fuse_per_chunk(writes)
    merged = dict(HighLevelGraph.merge(*(task.__dask_graph__() for task in fused)))
    assert set(merged) == {(block, 0), ("shared-test",), fused[0].key, fused[1].key}
    first, second = dask.compute(*fused, scheduler="sync")
    assert first == (expected[0], expected[1]) and second == (expected[2],)


def test_fuse_per_chunk_writes_what_needs_map_making_alone_first():
    """A chunk whose writes wait for a task that needs other chunks (a ring block) is two tasks: first the
    writes made from its map making alone, handing on what the rest needs of their work, marked to run
    before other ready tasks on a cluster (they let the chunk's cube go); then the rest, which no longer
    needs the cube. A chunk with only such writes stays one task. Values are those of the unfused graph,
    and `place_groups` keeps the marks."""
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    from xgamma.workflow.mosaic import FIRST_WRITES_PRIORITY, fuse_per_chunk, place_groups

    load, cube = "xgamma-load-test", "xgamma-maps-test"
    graph = {
        (load, 0): (np.arange, 4.0), (load, 1): (np.ones, 4),
        (cube, 0): (np.multiply, (load, 0), 2.0), (cube, 1): (np.negative, (load, 1)),
        ("squash-test", 0): (np.cumsum, (cube, 0)),  # chunk 0's own work on its cube
        ("sum-test", 0): (np.sum, (cube, 0)),  # an image of chunk 0 made from its cube alone
        ("ring-test",): (np.add, ("sum-test", 0), (cube, 1)),  # needs both chunks
        ("write-maps", 0, 0): (np.sum, ("squash-test", 0)),
        ("write-images", 0, 0): (np.dot, ("squash-test", 0), ("ring-test",)),
        ("write-images", 0, 1): (np.sum, ("ring-test",)),
    }
    layer = HighLevelGraph.from_collections("test", graph, dependencies=())
    keys = [("write-maps", 0, 0), ("write-images", 0, 0), ("write-images", 0, 1)]
    writes = [Delayed(key, layer, layer="test") for key in keys]
    expected = dask.compute(*writes, scheduler="sync")
    fused = fuse_per_chunk(writes)
    merged = fused[0].__dask_graph__()
    dependencies = merged.get_all_dependencies()
    (first,) = [key for key in merged.to_dict() if str(key[0]).startswith("write-first-")]
    assert first[1:] == (0, 0) and [task.key[1:] for task in fused] == [(0, 0), (0, 1)]
    assert dependencies[first] == {(cube, 0)}
    assert dependencies[fused[0].key] == {first, ("ring-test",)}  # the cube is not held for it
    assert dependencies[fused[1].key] == {("ring-test",)}
    assert dask.compute(*fused, scheduler="sync") == ((expected[0], expected[1]), (expected[2],))
    placed = place_groups(fused, ["tcp://a:1", "tcp://b:1"])
    annotated = {key: layer.annotations for layer in placed[0].__dask_graph__().layers.values() for key in layer}
    assert annotated[first] == {"priority": FIRST_WRITES_PRIORITY}
    assert annotated[(load, 0)]["workers"] == ["tcp://a:1"] and not annotated[fused[0].key]
    assert dask.compute(*placed, scheduler="sync") == ((expected[0], expected[1]), (expected[2],))


def test_place_groups_asks_consecutive_loads_of_the_same_worker():
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    from xgamma.workflow.mosaic import place_groups

    load = "xgamma-load-test"
    graph = {(load, g): (np.full, 2, float(g)) for g in range(5)}
    graph[("write-chunk", 0, 0)] = (sum, [(np.sum, (load, g)) for g in range(5)])
    tasks = [Delayed(("write-chunk", 0, 0), HighLevelGraph.from_collections("write-chunk", graph, ()),
                     layer="write-chunk")]
    assert place_groups(tasks, ["tcp://a:1"]) is tasks  # one worker: nothing to place
    placed = place_groups(tasks, ["tcp://a:1", "tcp://b:1"])
    asked = {}
    for layer in placed[0].__dask_graph__().layers.values():
        if layer.annotations:
            assert layer.annotations["allow_other_workers"] is True
            asked.update({key[1]: layer.annotations["workers"] for key in layer})
    assert asked == {0: ["tcp://a:1"], 1: ["tcp://a:1"], 2: ["tcp://a:1"], 3: ["tcp://b:1"], 4: ["tcp://b:1"]}
    assert dask.compute(*placed, scheduler="sync") == dask.compute(*tasks, scheduler="sync") == (20.0,)
