"""Ring background: analytic alpha, laziness, chunk invariance, offset cut, stacking, bad input."""

from __future__ import annotations

import warnings

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord
from scipy.ndimage import convolve

from xgamma.background import (
    RingBackground,
    make_exclusion_mask,
    ring_background,
    ring_kernel,
    stack_ring_maps,
)
from xgamma.exceptions import DataWarning, EstimatorError, UnitError
from xgamma.geometry import SkyGeometry
from xgamma.maps import make_map
from xgamma.testing import raise_if_dask_computes

BINSZ = 0.05  # deg
R_IN, WIDTH = 0.3, 0.2  # deg -> 6 and 4 pixels (outer radius 10 px)


@pytest.fixture
def geometry() -> SkyGeometry:
    return SkyGeometry.create((0, 0), width=[4 * u.deg, 3 * u.deg], binsz=BINSZ * u.deg, energy_edges=[1, 10] * u.TeV)


def _maps(geometry, counts, acceptance, chunks=None):
    # Chunk the data only (Dataset.chunk would also make the pix_* / wcs coordinates lazy).
    wrap = (lambda x: da.from_array(x, chunks=chunks)) if chunks else (lambda x: x)  # noqa: E731
    c = make_map(wrap(counts), geometry, name="counts")
    b = make_map(wrap(acceptance), geometry, name="background")
    return xr.Dataset({"counts": c, "background": b})


def test_flat_maps_analytic_alpha(geometry):
    # Flat counts and acceptance, nothing excluded: away from the edges the ring holds N pixels,
    # so off = N x counts and alpha = 1 / N exactly (N from the kernel itself).
    shape = geometry.data_shape
    ds = _maps(geometry, np.full(shape, 3.0), np.full(shape, 2.0))
    out = RingBackground(r_in=f"{R_IN} deg", width=f"{WIDTH} deg").run(ds)
    n_ring = ring_kernel(R_IN / BINSZ, WIDTH / BINSZ).sum()
    inner = dict(lat=slice(10, -10), lon=slice(10, -10))  # 10 px = outer radius
    np.testing.assert_allclose(out["alpha"].isel(**inner), 1.0 / n_ring, rtol=1e-12)
    np.testing.assert_array_equal(out["off"].isel(**inner), 3.0 * n_ring)
    np.testing.assert_allclose(out["background"].isel(**inner), 3.0, rtol=1e-12)
    assert RingBackground.name == "ring"
    assert {"off", "alpha", "background", "acceptance", "acceptance_off", "exclusion"} <= set(out.data_vars)
    assert out["alpha"].attrs["units"] == ""
    # At the map corner only part of the ring lies inside: fewer off counts, same background.
    assert out["off"].values[0, 0, 0] < 3.0 * n_ring
    np.testing.assert_allclose(out["background"].values[0, 0, 0], 3.0, rtol=1e-12)


def test_exclusion_removes_ring_pixels(geometry):
    shape = geometry.data_shape
    rng = np.random.default_rng(3)
    counts = rng.poisson(5.0, size=shape).astype(float)
    acceptance = np.full(shape, 5.0)
    exclusion = make_exclusion_mask(geometry, "galactic; circle(0.5, 0.2, 0.3)")
    out = ring_background(
        make_map(counts, geometry), make_map(acceptance, geometry), r_in=R_IN * u.deg, width=WIDTH * u.deg,
        exclusion=exclusion,
    )
    kernel = ring_kernel(R_IN / BINSZ, WIDTH / BINSZ)
    mask = exclusion.values.astype(float)
    expected_off = convolve(counts[0] * mask, kernel, mode="constant")
    expected_acc = convolve(acceptance[0] * mask, kernel, mode="constant")
    np.testing.assert_array_equal(out["off"].values[0], expected_off)
    np.testing.assert_allclose(out["acceptance_off"].values[0], expected_acc, rtol=1e-10)
    np.testing.assert_allclose(out["alpha"].values[0], acceptance[0] / expected_acc, rtol=1e-10)


@pytest.mark.parametrize("chunks", [(1, 4, 7), (1, 9, 80), (1, 60, 5)])
@pytest.mark.parametrize("block_size", [None, 0], ids=["merged", "overlap"], indirect=True)
def test_lazy_and_chunk_invariant(block_size, geometry, chunks):
    # Chunks (4, 5, 7, 9 px) smaller than the ring's outer radius (10 px).
    shape = geometry.data_shape
    rng = np.random.default_rng(4)
    counts = rng.poisson(2.0, size=shape).astype(float)
    acceptance = 2.0 + rng.random(shape)
    exclusion = make_exclusion_mask(geometry, "galactic; circle(0, 0, 0.4)")
    estimator = RingBackground(r_in=R_IN * u.deg, width=WIDTH * u.deg, exclusion=exclusion)
    reference = estimator.run(_maps(geometry, counts, acceptance))
    with raise_if_dask_computes():
        lazy = estimator.run(_maps(geometry, counts, acceptance, chunks=chunks))
    for name in ("off", "acceptance_off", "alpha", "background"):
        assert isinstance(lazy[name].data, da.Array), name
    computed = lazy.compute()
    np.testing.assert_array_equal(computed["off"], reference["off"])  # integer sums
    # FFT rounding differs between block sizes: 1e-10 relative is far below any physics effect.
    for name in ("acceptance_off", "alpha", "background"):
        np.testing.assert_allclose(computed[name], reference[name], rtol=1e-10, equal_nan=True)



def test_block_tasks_carry_only_their_part_of_an_in_memory_mask(geometry):
    """With dask maps and an in-memory exclusion mask, a block's task refers to the mask's chunks it
    touches instead of holding the whole mask: the bytes sent with the blocks must not grow with
    the number of blocks times the map's area (a survey's mask is MBs, its blocks dozens)."""
    import pickle

    import dask
    from dask.utils import key_split

    shape = geometry.data_shape
    maps = [make_map(da.from_array(np.ones(shape), chunks=(1, 20, 20)), geometry) for _ in range(2)]
    exclusion = make_exclusion_mask(geometry, "galactic; circle(0, 0, 0.4)")

    def block_task_bytes(mask):
        with dask.config.set({"xgamma.block_size": 0}):  # one block per chunk: 12 blocks
            out = ring_background(*maps, r_in=R_IN * u.deg, width=WIDTH * u.deg, exclusion=mask)
        graph = dict(out["off"].data.__dask_graph__())
        sizes = [len(pickle.dumps(task)) for key, task in graph.items() if key_split(key) == "ring_core"]
        assert len(sizes) == 12
        return max(sizes)

    mask_bytes = exclusion.values.nbytes  # 4800
    assert block_task_bytes(exclusion) - block_task_bytes(None) < mask_bytes / 4

def test_offset_cut(geometry):
    shape = geometry.data_shape
    pointing = SkyCoord(0.5, 0.0, unit="deg", frame="galactic")
    out = ring_background(
        make_map(np.ones(shape), geometry), make_map(np.ones(shape), geometry),
        r_in=R_IN * u.deg, width=WIDTH * u.deg, offset_max="1 deg", pointing=pointing,
    )
    separation = geometry.separation(pointing)
    inside = separation < 1.0
    assert np.array_equal(out["counts"].values[0] > 0, inside)
    assert np.all(np.isnan(out["alpha"].values[0][~inside]))
    assert np.all(out["off"].values[0][~inside] == 0)
    assert np.all(np.isfinite(out["alpha"].values[0][inside]))
    with pytest.raises(EstimatorError, match="pointing"):
        ring_background(make_map(np.ones(shape), geometry), make_map(np.ones(shape), geometry),
                        r_in=R_IN * u.deg, width=WIDTH * u.deg, offset_max="1 deg")


def test_per_observation_stacking(geometry):
    # Two observations along obs_id: off counts and alpha x off add, alpha = sum(alpha off) / sum(off).
    shape = geometry.data_shape
    rng = np.random.default_rng(5)
    counts = rng.poisson(3.0, size=(2, *shape)).astype(float)
    acceptance = np.stack([np.full(shape, 3.0), np.full(shape, 1.0)])
    c = xr.concat([make_map(x, geometry, name="counts") for x in counts], "obs_id")
    b = xr.concat([make_map(x, geometry, name="background") for x in acceptance], "obs_id")
    pointings = SkyCoord([-0.5, 0.5], [0.0, 0.0], unit="deg", frame="galactic").icrs
    ds = xr.Dataset({"counts": c, "background": b}).assign_coords(
        pointing_ra=("obs_id", pointings.ra.deg), pointing_dec=("obs_id", pointings.dec.deg)
    )
    estimator = RingBackground(r_in=R_IN * u.deg, width=WIDTH * u.deg, offset_max="1.2 deg")
    stacked = estimator.run(ds)
    singles = [
        ring_background(c[i], b[i], r_in=R_IN * u.deg, width=WIDTH * u.deg, offset_max="1.2 deg",
                        pointing=pointings[i])
        for i in range(2)
    ]
    off = sum(s["off"].values for s in singles)
    bkg = sum(np.nan_to_num(s["alpha"].values * s["off"].values) for s in singles)
    np.testing.assert_array_equal(stacked["off"].values, off)
    has = off > 0
    np.testing.assert_allclose(stacked["alpha"].values[has], bkg[has] / off[has], rtol=1e-12)
    np.testing.assert_allclose(stacked["background"].values[has], bkg[has], rtol=1e-12)
    np.testing.assert_array_equal(stacked["counts"].values, sum(s["counts"].values for s in singles))
    # acceptance / acceptance_off keeps the stacked alpha
    np.testing.assert_allclose(
        (stacked["acceptance"] / stacked["acceptance_off"]).values[has], stacked["alpha"].values[has], rtol=1e-12
    )
    # the list form gives the same
    again = stack_ring_maps(singles)
    np.testing.assert_allclose(again["alpha"].values, stacked["alpha"].values, rtol=1e-12, equal_nan=True)


def _runs_dataset(geometry, n_runs, chunks=None):
    shape = geometry.data_shape
    rng = np.random.default_rng(7)
    counts = rng.poisson(3.0, size=(n_runs, *shape)).astype(float)
    acceptance = 1.0 + rng.random((n_runs, *shape))
    wrap = (lambda x: da.from_array(x, chunks=chunks)) if chunks else (lambda x: x)  # noqa: E731
    template = make_map(counts[0], geometry)
    dims = ("obs_id", *template.dims)
    pointings = SkyCoord(np.linspace(-0.6, 0.6, n_runs), np.zeros(n_runs), unit="deg", frame="galactic").icrs
    return xr.Dataset(
        {"counts": (dims, wrap(counts)), "background": (dims, wrap(acceptance))},
        coords=template.coords.assign(obs_id=np.arange(n_runs), pointing_ra=("obs_id", pointings.ra.deg),
                                      pointing_dec=("obs_id", pointings.dec.deg)),
    )


# 5 runs of 60 x 80 pixels in chunks of 1 run x 30 x 40: the blocks (and blocks along the runs) for
# each block size (values; the ring groups REDUCED_AXIS_FACTOR = 4 times more along the runs);
# ``added``: blocks of partial sums added by one task (fewer than the blocks of runs: a tree sum).
@pytest.mark.parametrize(("size", "n_blocks", "run_blocks", "added"),
                         [(None, 1, 1, 16), (4800, 2, 2, 16), (1200, 8, 2, 16), (600, 12, 3, 16), (600, 12, 3, 2),
                          (0, 20, 5, 16), (0, 20, 5, 2)])
def test_stacked_runs_do_not_depend_on_blocks_of_runs(geometry, size, n_blocks, run_blocks, added, monkeypatch):
    # Runs grouped into blocks whose partial sums are added, planes whole or in overlapped chunks:
    # the same stacked maps as all runs in one block (and as numpy), for any grouping.
    import dask

    from xgamma.background import stacking

    monkeypatch.setattr(stacking, "_ADDED_IN_ONE_TASK", added)

    exclusion = make_exclusion_mask(geometry, "galactic; circle(0, 0, 0.4)")
    estimator = RingBackground(r_in=R_IN * u.deg, width=WIDTH * u.deg, exclusion=exclusion, offset_max="1.2 deg")
    reference = estimator.run(_runs_dataset(geometry, 5))
    config = {} if size is None else {"xgamma.block_size": size}
    with dask.config.set(config):
        with raise_if_dask_computes():
            lazy = estimator.run(_runs_dataset(geometry, 5, chunks=(1, 1, 30, 40)))
    # the graph is fixed when built: computed under another configuration, it gives the same
    ring_task = [k for k in lazy["off"].data.__dask_graph__().layers if k.startswith("ring_core")]
    assert len(lazy["off"].data.__dask_graph__().layers[ring_task[0]]) == n_blocks
    tree_sum = any(k.startswith("sum") for k in lazy["off"].data.__dask_graph__().layers)
    assert tree_sum == (run_blocks > added)
    computed = lazy.compute(scheduler="threads")
    np.testing.assert_array_equal(computed["off"], reference["off"])
    np.testing.assert_array_equal(computed["counts"], reference["counts"])
    for name in ("acceptance_off", "alpha", "background"):
        np.testing.assert_allclose(computed[name], reference[name], rtol=1e-10, equal_nan=True)


@pytest.mark.parametrize(
    ("r_in", "width", "match"),
    [("0 deg", "0.2 deg", "r_in"), ("-0.1 deg", "0.2 deg", "r_in"), ("0.3 deg", "0 deg", "width"),
     ("1.5 deg", "1 deg", "wider than the map"), ("0.3 m", "0.2 deg", "r_in")],
)
def test_bad_radii(geometry, r_in, width, match):
    ds = _maps(geometry, np.ones(geometry.data_shape), np.ones(geometry.data_shape))
    with pytest.raises((EstimatorError, UnitError), match=match):
        RingBackground(r_in=r_in, width=width).run(ds)


def test_everything_excluded_gives_nan_alpha_and_warns(geometry):
    ds = _maps(geometry, np.ones(geometry.data_shape), np.ones(geometry.data_shape))
    exclusion = make_exclusion_mask(geometry, "galactic; circle(0, 0, 10)")
    assert not exclusion.values.any()
    with pytest.warns(DataWarning, match="excludes every pixel"):  # an xgamma warning, and a RuntimeWarning
        out = RingBackground(r_in=R_IN * u.deg, width=WIDTH * u.deg, exclusion=exclusion).run(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning while computing
        assert np.all(np.isnan(out["alpha"].values))
    assert np.all(out["off"].values == 0)


def test_mismatched_inputs(geometry):
    ds = _maps(geometry, np.ones(geometry.data_shape), np.ones(geometry.data_shape))
    with pytest.raises(EstimatorError, match="exclusion mask has shape"):
        RingBackground(exclusion=np.ones((3, 3), bool)).run(ds)
    with pytest.raises(EstimatorError, match="background"):
        RingBackground().run(ds.drop_vars("background"))


def test_dataset_chunk_builds_ring_and_significance_without_computing(geometry):
    # `Dataset.chunk` chunks the coordinates too (pointings on obs_id become dask arrays; the
    # geometry coordinates are indexed and stay in memory): the ring + significance graph is still
    # built without a single compute, and gives the numpy result.
    from xgamma.estimators import significance_maps

    exclusion = make_exclusion_mask(geometry, "galactic; circle(0, 0, 0.4)")
    estimator = RingBackground(r_in=R_IN * u.deg, width=WIDTH * u.deg, exclusion=exclusion)
    numpy_maps = _runs_dataset(geometry, 3).drop_vars(["pointing_ra", "pointing_dec"])
    reference = significance_maps(estimator.run(numpy_maps))
    chunked = numpy_maps.chunk({"obs_id": 1, "lat": 30, "lon": 40})
    with raise_if_dask_computes():
        lazy = significance_maps(estimator.run(chunked))
    assert isinstance(lazy["significance"].data, da.Array)
    np.testing.assert_allclose(lazy["significance"].values, reference["significance"].values, rtol=1e-10,
                               equal_nan=True)


@pytest.mark.parametrize("offset_max", [None, "1.2 deg"])
def test_fast_ring_block_equals_the_reference_equations(geometry, offset_max):
    # ring_block (FFT over each run's field of view, in-place channels) against the equations as
    # written (ring_reference) on the run's cut maps.
    from xgamma.background.ring_blocks import ring_reference

    shape = geometry.data_shape
    rng = np.random.default_rng(8)
    counts, acceptance = rng.poisson(3.0, size=shape).astype(float), 1.0 + rng.random(shape)
    exclusion = make_exclusion_mask(geometry, "galactic; circle(0.3, 0, 0.3)")
    pointing = SkyCoord(0.2, 0.1, unit="deg", frame="galactic")
    out = ring_background(make_map(counts, geometry), make_map(acceptance, geometry), r_in=R_IN * u.deg,
                          width=WIDTH * u.deg, exclusion=exclusion, offset_max=offset_max, pointing=pointing)
    inside = np.ones(geometry.shape, bool) if offset_max is None else geometry.separation(pointing) < 1.2
    expected = ring_reference(counts * inside, acceptance * inside, exclusion.values,
                              ring_kernel(R_IN / BINSZ, WIDTH / BINSZ))
    has_off = inside & (expected["acceptance_off"] > 0)
    np.testing.assert_array_equal(out["off"].values, np.where(has_off, expected["off"], 0.0))
    for name in ("acceptance_off", "alpha", "background"):
        np.testing.assert_allclose(out[name].values[has_off], expected[name][has_off], rtol=1e-10)
    assert np.all(np.isnan(out["alpha"].values[~has_off]))
