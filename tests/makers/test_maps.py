"""Map making: analytic flat-IRF case, laziness, chunk invariance, distributed execution, errors."""

from __future__ import annotations

import astropy.units as u
import dask
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord
from flat_store import AREA_M2, LIVETIME, ONTIME, RATE

from xgamma.exceptions import ConfigError, DataStoreError, GeometryError
from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.io.datastore import DataStore
from xgamma.makers import make_map_products, make_maps, make_observation_maps, squash_energy
from xgamma.testing import raise_if_dask_computes


@pytest.fixture(scope="module")
def flat_obs(flat_store_dir):
    return DataStore(flat_store_dir).observations()


@pytest.fixture(scope="module")
def flat_geom():
    return SkyGeometry.create((83.63, 22.51), width=4 * u.deg, binsz=0.05 * u.deg, frame="icrs",
                              projection="TAN", energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 4))


def test_flat_irf_gives_analytic_maps(flat_obs, flat_geom):
    maps = make_maps(flat_obs, flat_geom, offset_max=1.5 * u.deg).compute()
    inside = flat_geom.separation(flat_obs[0].pointing) < 1.5
    assert maps.exposure.attrs["units"] == "m2 s" and maps.background.attrs["units"] == ""
    # Exposure: A x livetime exactly (float64 arithmetic on exactly representable inputs).
    np.testing.assert_allclose(maps.exposure.values[:, inside], AREA_M2 * LIVETIME, rtol=1e-12)
    assert np.all(maps.exposure.values[:, ~inside] == 0)
    # Background: rate x dE x solid angle x ontime. The IRF table is float32 in the file, and
    # its log-log energy integration runs at that precision: rtol 1e-6 (a few float32 epsilons).
    d_energy = np.diff(flat_geom.energy_edges.to_value("MeV"))
    expected = RATE * d_energy[:, None, None] * flat_geom.solid_angle()[None] * ONTIME
    np.testing.assert_allclose(maps.background.values[:, inside], expected[:, inside], rtol=1e-6)
    assert np.all(maps.background.values[:, ~inside] == 0)


def test_counts_match_direct_histogram(flat_obs, flat_geom):
    maps = make_maps(flat_obs, flat_geom, offset_max=10 * u.deg).compute()
    events = flat_obs[0].events
    x, y = flat_geom.skycoord_to_pixel(SkyCoord(events.ra, events.dec, unit="deg"))
    edges = flat_geom.energy_edges.to_value("TeV")
    expected, _ = np.histogramdd(
        np.column_stack([np.asarray(events.energy, float), y, x]),
        bins=[edges, np.arange(flat_geom.shape[0] + 1) - 0.5, np.arange(flat_geom.shape[1] + 1) - 0.5],
    )
    np.testing.assert_array_equal(maps.counts.values, expected)


def test_safe_energy_zeroes_bins_outside_thresholds(flat_obs, flat_geom):
    # LO_THRES = 0.5 TeV, HI_THRES = 50 TeV: bins [0.1, 0.316] and [0.316, 1] are not fully inside.
    maps = make_maps(flat_obs, flat_geom, offset_max=1.5 * u.deg, safe_energy="aeff-default").compute()
    totals = maps.exposure.sum(("lat", "lon")).values
    assert totals[0] == 0 and totals[1] == 0 and totals[2] > 0 and totals[3] > 0


def test_building_is_lazy_and_chunk_invariant(flat_obs, flat_geom):
    with raise_if_dask_computes():
        small = make_maps(flat_obs, flat_geom, offset_max=1.5 * u.deg, chunks=(7, 13))
        images = squash_energy(small)
    assert isinstance(small.counts.data, dask.array.Array) and isinstance(images.exposure.data, dask.array.Array)
    assert small.counts.data.chunks[1][0] == 7 and small.counts.data.chunks[2][0] == 13
    whole = make_maps(flat_obs, flat_geom, offset_max=1.5 * u.deg, chunks=1000).compute()
    xr.testing.assert_allclose(small.compute(), whole, rtol=1e-12, atol=0)


def test_one_task_per_overlapping_chunk(flat_obs):
    """Chunks beyond offset_max of every pointing get no block task at all."""
    geom = SkyGeometry.create((83.63, 22.51), width=(12 * u.deg, 4 * u.deg), binsz=0.1 * u.deg, frame="icrs",
                              energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 2))
    maps = make_maps(flat_obs, geom, offset_max=1 * u.deg, chunks=20)
    keys = [k for k in dict(maps.counts.data.__dask_graph__()) if isinstance(k, tuple) and "block" in k[0]]
    n_chunks = len(maps.counts.data.chunks[1]) * len(maps.counts.data.chunks[2])
    assert 0 < len(keys) < n_chunks


def test_observation_maps_sum_to_stack(flat_obs, flat_geom):
    per_obs = make_observation_maps(flat_obs, flat_geom, offset_max=1.5 * u.deg)
    stacked = make_maps(flat_obs, flat_geom, offset_max=1.5 * u.deg)
    assert per_obs.counts.dims == ("obs_id", "energy", "lat", "lon")
    assert per_obs.obs_id.values.tolist() == [1] and per_obs.exposure.attrs["units"] == "m2 s"
    xr.testing.assert_allclose(per_obs.sum("obs_id").compute(), stacked.compute(), rtol=1e-13, atol=0)
    images = squash_energy(per_obs).compute()
    assert images.counts.dims == ("obs_id", "energy", "lat", "lon") and images.sizes["energy"] == 1
    np.testing.assert_array_equal(images.counts.values[0], squash_energy(stacked).counts.values)


@pytest.fixture(scope="module")
def hess_runs(hess_datastore_dir):
    """Six PKS 2155-304 runs and a 4 x 4 deg TAN geometry (chunks of 70 x 90 pixels: runs of a group
    reach different chunks)."""
    observations = DataStore(hess_datastore_dir).select(object_name="PKS 2155-304").observations()[:6]
    geometry = SkyGeometry.create((329.717, -30.2256), width=4 * u.deg, binsz=0.04 * u.deg, frame="icrs",
                                  projection="TAN", energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 5))
    return observations, geometry


def test_products_of_one_graph_agree_and_do_not_depend_on_grouping(hess_runs):
    """Stacked cube, per-run cubes and fused per-run images agree, for any number of runs per task.

    In float64 cubes, to the rounding of sums made in another order (float32 cubes: the test below).
    """
    observations, geometry = hess_runs
    options = dict(offset_max=2 * u.deg, safe_energy="aeff-default", chunks=(30, 40), dtype="float64")
    reference = make_observation_maps(observations, geometry, runs_per_task=1, **options).compute()
    for runs_per_task in (2, 4, 6):
        with raise_if_dask_computes():
            products = make_map_products(observations, geometry, observation_images=True,
                                         runs_per_task=runs_per_task, **options)
        assert products.observation_maps is None
        images = products.observation_images
        assert images.counts.data.chunks[0] == tuple(
            min(runs_per_task, len(observations) - s) for s in range(0, len(observations), runs_per_task))
        maps, images = dask.compute(products.maps, images)
        xr.testing.assert_allclose(maps, reference.sum("obs_id"), rtol=1e-13, atol=0)
        expected = squash_energy(reference[["counts", "background"]])
        xr.testing.assert_allclose(images, expected, rtol=1e-13, atol=0)
        assert images.counts.attrs["units"] == "" and images.obs_id.values.tolist() == reference.obs_id.values.tolist()
    # images alone (the ring stage's request when the maps stage did not make them): no cube at all
    alone = make_map_products(observations, geometry, maps=False, observation_images=True, **options)
    assert alone.maps is None
    xr.testing.assert_allclose(alone.observation_images.compute(), expected, rtol=1e-13, atol=0)
    assert reference.counts.sum() > 100 and (reference.counts.sum(("energy", "lat", "lon")) > 0).all()


def test_blocks_keep_only_the_rectangle_their_runs_reach(hess_runs):
    """The stacked cube's blocks hold the part of the chunk their runs reach (`Patch`); the sums place
    them bit for bit where whole-chunk cubes give (those of the per-run images' graph), any grouping."""
    from dask.sizeof import sizeof

    from xgamma.makers.chunks import BLOCK_PREFIX

    observations, geometry = hess_runs
    options = dict(offset_max=1.0 * u.deg, safe_energy="aeff-default", chunks=(30, 40))
    for runs_per_task in (1, 4):
        cropped = make_maps(observations, geometry, runs_per_task=runs_per_task, **options)
        whole = make_map_products(observations, geometry, observation_images=True, runs_per_task=runs_per_task,
                                  **options).maps  # blocks of whole chunks (the images need them)
        graph = dict(cropped.counts.data.__dask_graph__())
        blocks = [key for key in graph if str(key[0]).startswith(BLOCK_PREFIX)]
        patches = [value["maps"] for value in dask.get(graph, blocks)]
        areas = [patch.values.shape[-2] * patch.values.shape[-1] for patch in patches]
        assert min(areas) < 30 * 40 and max(areas) <= 30 * 40 and sum(areas) < 0.8 * len(areas) * 30 * 40
        # The scheduler sees a block's bytes (it places the sums near them).
        assert all(sizeof(patch) >= patch.values.nbytes for patch in patches)
        cropped, whole = dask.compute(cropped, whole)
        for name in ("counts", "exposure", "background"):
            np.testing.assert_array_equal(cropped[name].values.view(np.uint32), whole[name].values.view(np.uint32))
        assert cropped.counts.sum() > 100


def test_float32_cubes_are_float64_ones_rounded(hess_runs):
    """Default float32 cubes: counts exact, exposure and background within the bound of summing
    n positive float64 terms in float32, each rounded once (n x 2**-24 relative, n = runs);
    chunk invariance stays exact (each pixel's sum runs in the same order); images stay float64."""
    observations, geometry = hess_runs
    options = dict(offset_max=2 * u.deg, safe_energy="aeff-default", runs_per_task=4)
    single = make_map_products(observations, geometry, observation_images=True, chunks=(30, 40), **options)
    wide = make_maps(observations, geometry, chunks=(100, 70), **options)
    exact = make_maps(observations, geometry, chunks=(30, 40), dtype="float64", **options)
    assert {str(v.dtype) for v in single.maps.data_vars.values()} == {"float32"}
    assert single.observation_images.counts.dtype == np.float64
    maps, wide, exact, images = dask.compute(single.maps, wide, exact, single.observation_images)
    xr.testing.assert_identical(maps, wide)
    np.testing.assert_array_equal(maps.counts.values, exact.counts.values)
    bound = len(observations) * 2.0**-24
    for name in ("exposure", "background"):
        x32, x64 = maps[name].values.astype(float), exact[name].values
        assert x64.max() > 0 and np.all(np.abs(x32 - x64) <= bound * x64), name
    np.testing.assert_allclose(images.background.sum("obs_id").values[0], exact.background.sum("energy").values,
                               rtol=1e-12)
    with dask.config.set({"xgamma.map_dtype": "float64"}):
        assert make_maps(observations, geometry, **options).exposure.dtype == np.float64
    for bad in ("float16", "int32", "x"):
        with pytest.raises(ConfigError, match="xgamma.map_dtype"):
            make_maps(observations, geometry, dtype=bad, **options)


def test_graph_grows_with_runs_times_chunks_touched(hess_runs):
    observations, geometry = hess_runs
    maps = make_maps(observations, geometry, offset_max=1 * u.deg, chunks=10, runs_per_task=2)
    graph = dict(maps.counts.data.__dask_graph__())
    kinds = [k[0].split("-")[1] for k in graph if isinstance(k, tuple)]
    n_chunks = len(maps.counts.data.chunks[1]) * len(maps.counts.data.chunks[2])
    # 3 groups of 2 runs; a run reaches ~ (2 deg / 0.4 deg per chunk)^2 * pi / 4 chunks, far fewer than all
    assert kinds.count("load") == 3
    assert 0 < kinds.count("block") < 3 * n_chunks / 2
    with pytest.raises(ConfigError, match="runs_per_task"):
        make_maps(observations, geometry, offset_max=1 * u.deg, runs_per_task=0)
    with dask.config.set({"xgamma.runs_per_task": "x"}), pytest.raises(ConfigError, match="xgamma.runs_per_task"):
        make_maps(observations, geometry, offset_max=1 * u.deg)


def test_squash_exposure_weighting(flat_obs, flat_geom):
    maps = make_maps(flat_obs, flat_geom, offset_max=1.5 * u.deg)
    images = squash_energy(maps, spectrum={"type": "powerlaw", "index": 2.0}).compute()
    assert images.counts.shape == (1, *flat_geom.shape)
    np.testing.assert_allclose(images.energy_min.values, [0.1])
    np.testing.assert_allclose(images.energy_max.values, [10])
    # npred = sum_i F_i A_i = F_total x squashed exposure for the weighting spectrum.
    edges = flat_geom.energy_edges.to_value("TeV")
    fluxes = 1 / edges[:-1] - 1 / edges[1:]  # integral of E^-2 over each bin
    cube = maps.exposure.compute().values
    npred = (fluxes[:, None, None] * cube).sum(axis=0)
    np.testing.assert_allclose(images.exposure.values[0] * fluxes.sum(), npred, rtol=1e-12)
    np.testing.assert_array_equal(images.counts.values[0], maps.counts.values.sum(axis=0))


@pytest.mark.slow
def test_distributed_local_cluster_gives_same_maps(flat_obs, flat_geom):
    distributed = pytest.importorskip("distributed")
    reference = make_maps(flat_obs, flat_geom, offset_max=1.5 * u.deg, chunks=40).compute(scheduler="sync")
    from xgamma.cluster import WORKER_MALLOC_ENVIRON, local_cluster

    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        maps = make_maps(flat_obs, flat_geom, offset_max=1.5 * u.deg, chunks=40)
        result = client.compute(maps).result()
        assert len(client.scheduler_info()["workers"]) == 2
        # the workers run with xgamma's malloc settings, not distributed's trim-at-once default
        environ = client.run(lambda: {k: __import__("os").environ.get(k) for k in WORKER_MALLOC_ENVIRON})
        assert all(env == {k: str(v) for k, v in WORKER_MALLOC_ENVIRON.items()} for env in environ.values())
        # no dashboard, so no statistical profiler sampling the task threads, and distributed's
        # event-loop and system monitoring at QUIET_MONITORING in the workers, nannies and scheduler
        def intervals(server):
            return {name: callback.callback_time for name, callback in server.periodic_callbacks.items()}

        workers = [*client.run(lambda dask_worker: intervals(dask_worker)).values(),
                   *(intervals(nanny) for nanny in cluster.workers.values())]
        scheduler = client.run_on_scheduler(lambda dask_scheduler: intervals(dask_scheduler))
        for server in [*workers, scheduler]:
            assert "profile" not in server
            assert (server["tick"], server["monitor"]) == (500, 2000)
        assert [server["memory_monitor"] for server in workers] == [500] * 4
    xr.testing.assert_identical(result, reference)


def test_local_cluster_keeps_distributed_monitoring_when_asked():
    distributed = pytest.importorskip("distributed")
    import dask

    from xgamma.cluster import local_cluster

    tick = 1000 * dask.utils.parse_timedelta(dask.config.get("distributed.admin.tick.interval"))  # ms
    with local_cluster(1, monitor=True) as cluster, distributed.Client(cluster) as client:
        names, time = client.run(lambda dask_worker: (set(dask_worker.periodic_callbacks),
                                                     dask_worker.periodic_callbacks["tick"].callback_time)).popitem()[1]
    assert "profile" in names and time == tick


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"offset_max": -1 * u.deg}, ConfigError, "offset_max must be positive"),
        ({"offset_max": 1 * u.TeV}, ConfigError, "offset_max: expected an angle"),
        ({"offset_max": 1 * u.deg, "chunks": 0}, GeometryError, "chunk sizes must be positive"),
    ],
)
def test_bad_arguments(flat_obs, flat_geom, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_maps(flat_obs, flat_geom, **kwargs)


def test_empty_selection_and_missing_energy_axis(flat_obs, flat_geom):
    with pytest.raises(DataStoreError, match="selection is empty"):
        make_maps([], flat_geom, offset_max=1 * u.deg)
    with pytest.raises(GeometryError, match="energy axis"):
        make_maps(flat_obs, flat_geom.with_energy(None), offset_max=1 * u.deg)


def test_reference_workflow_graph_builds_without_computing(cta_datastore_dir):
    """Maps -> squashed images -> per-observation ring background -> Li & Ma: zero dask computes."""
    from xgamma.background.exclusion import make_exclusion_mask
    from xgamma.background import RingBackground
    from xgamma.estimators.significance import significance_maps

    observations = DataStore(cta_datastore_dir).observations([110380, 111140, 111159])
    geometry = SkyGeometry.create((0, 0), width=(10 * u.deg, 8 * u.deg), binsz=0.02 * u.deg,
                                  energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 10))
    exclusion = make_exclusion_mask(geometry.to_image(), ["galactic; circle(-0.054, -0.053, 0.3)"])
    with raise_if_dask_computes():
        maps = make_maps(observations, geometry, offset_max=4 * u.deg)
        images = squash_energy(maps)
        per_obs = make_observation_maps(observations, geometry, offset_max=4 * u.deg)
        stacked = squash_energy(per_obs[["counts", "background"]])
        ring = RingBackground(r_in="0.3 deg", width="0.3 deg", exclusion=exclusion, offset_max="3 deg").run(stacked)
        significance = significance_maps(ring, correlation_radius="0.1 deg")
    for da in (images.counts, images.exposure, ring.alpha, significance.significance):
        assert isinstance(da.data, dask.array.Array)


def test_local_cluster_rejects_no_workers():
    from xgamma.cluster import local_cluster
    from xgamma.exceptions import ConfigError

    with pytest.raises(ConfigError, match="n_workers must be >= 1"):
        local_cluster(0)


def test_default_runs_per_task_grows_with_long_run_lists():
    import dask

    from xgamma.makers.maps import DEFAULT_RUNS_PER_TASK, GROUPS_PER_LIST, resolve_runs_per_task

    assert resolve_runs_per_task(None, 30) == DEFAULT_RUNS_PER_TASK
    assert resolve_runs_per_task(None, DEFAULT_RUNS_PER_TASK * GROUPS_PER_LIST) == DEFAULT_RUNS_PER_TASK
    assert resolve_runs_per_task(None, 1000) == 32  # ceil(1000 / 32): 32 groups of at most 32 runs
    assert resolve_runs_per_task(5, 1000) == 5  # an explicit value wins
    with dask.config.set({"xgamma.runs_per_task": 3}):
        assert resolve_runs_per_task(None, 1000) == 3  # so does the config key
