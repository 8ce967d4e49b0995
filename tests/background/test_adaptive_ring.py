"""Adaptive ring background: reduces to the plain ring when the first ring qualifies, grows otherwise."""

from __future__ import annotations

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from xgamma.background import AdaptiveRingBackground, RingBackground, make_exclusion_mask, tophat_kernel
from xgamma.background.adaptive_ring import adaptive_ring_kernels
from xgamma.exceptions import EstimatorError
from xgamma.geometry import SkyGeometry
from xgamma.maps import make_map
from xgamma.testing import raise_if_dask_computes

BINSZ = 0.05


@pytest.fixture
def geometry() -> SkyGeometry:
    return SkyGeometry.create((0, 0), width=[5 * u.deg, 4 * u.deg], binsz=BINSZ * u.deg, energy_edges=[1, 10] * u.TeV)


def _dataset(geometry, chunks=None):
    rng = np.random.default_rng(11)
    counts = rng.poisson(4.0, size=geometry.data_shape).astype(float)
    acceptance = np.full(geometry.data_shape, 4.0)
    wrap = (lambda x: da.from_array(x, chunks=chunks)) if chunks else (lambda x: x)  # noqa: E731
    return xr.Dataset({"counts": make_map(wrap(counts), geometry), "background": make_map(wrap(acceptance), geometry)})


def test_first_ring_qualifies_equals_plain_ring(geometry):
    # With a generous alpha threshold the first (smallest) ring is used everywhere.
    ds = _dataset(geometry)
    adaptive = AdaptiveRingBackground(r_in="0.3 deg", width="0.2 deg", r_out_max="1 deg",
                                      stepsize="0.05 deg", threshold_alpha=1e6, theta="0.1 deg").run(ds)
    plain = RingBackground(r_in="0.3 deg", width="0.2 deg").run(ds)
    assert AdaptiveRingBackground.name == "adaptive_ring"
    assert np.all(adaptive["ring_index"].values == 0)
    np.testing.assert_array_equal(adaptive["off"].values, plain["off"].values)
    np.testing.assert_allclose(adaptive["alpha"].values, plain["alpha"].values, rtol=1e-10)


def test_ring_grows_near_exclusion_until_alpha_threshold(geometry):
    ds = _dataset(geometry)
    exclusion = make_exclusion_mask(geometry, "galactic; circle(0, 0, 0.6)")
    threshold, theta = 0.25, 0.1
    out = AdaptiveRingBackground(r_in="0.3 deg", width="0.2 deg", r_out_max="1.5 deg", stepsize="0.05 deg",
                                 threshold_alpha=threshold, theta=f"{theta} deg", exclusion=exclusion).run(ds)
    index = out["ring_index"].values[0]
    centre = (geometry.shape[0] // 2, geometry.shape[1] // 2)
    assert index[centre] > 0  # the smallest ring lies inside the exclusion at the centre
    # Where a ring was found, the theta-correlated alpha obeys the threshold.
    n_on = tophat_kernel(theta / BINSZ).sum()
    found = index >= 0
    alpha_approx = n_on * 4.0 / out["acceptance_off"].values[0][found]
    assert np.all(alpha_approx <= threshold * (1 + 1e-9))
    # Off counts come from the chosen ring: alpha = acceptance / acceptance_off per pixel.
    np.testing.assert_allclose(out["alpha"].values[0][found], 4.0 / out["acceptance_off"].values[0][found])
    kernels = adaptive_ring_kernels(0.3 / BINSZ, 0.2 / BINSZ, 1.5 / BINSZ, 0.05 / BINSZ, "fixed_width")
    assert index.max() < len(kernels)


@pytest.mark.parametrize("chunks", [(1, 6, 9), (1, 80, 7)])
@pytest.mark.parametrize("block_size", [None, 0], ids=["merged", "overlap"], indirect=True)
def test_adaptive_lazy_chunk_invariant(block_size, geometry, chunks):
    exclusion = make_exclusion_mask(geometry, "galactic; circle(0.3, 0.1, 0.5)")
    estimator = AdaptiveRingBackground(r_in="0.3 deg", width="0.2 deg", r_out_max="1 deg", stepsize="0.1 deg",
                                       threshold_alpha=0.3, theta="0.1 deg", exclusion=exclusion)
    reference = estimator.run(_dataset(geometry))
    with raise_if_dask_computes():
        lazy = estimator.run(_dataset(geometry, chunks=chunks))
    assert isinstance(lazy["alpha"].data, da.Array)
    computed = lazy.compute()
    np.testing.assert_array_equal(computed["ring_index"], reference["ring_index"])
    np.testing.assert_array_equal(computed["off"], reference["off"])
    np.testing.assert_allclose(computed["alpha"], reference["alpha"], rtol=1e-10, equal_nan=True)


@pytest.mark.parametrize("block_size", [0], ids=["overlap"], indirect=True)
def test_lazy_blocks_carry_the_rings_not_their_kernels(block_size, geometry):
    """A lazy adaptive ring's block tasks hold the rings' sizes (`AdaptiveRings`), made into kernels once
    per process where they run: read-only, those of `adaptive_ring_kernels` zero-padded to one size."""
    import pickle

    from xgamma.background.adaptive_ring import AdaptiveRings

    estimator = AdaptiveRingBackground(r_in="0.3 deg", width="0.2 deg", r_out_max="1.5 deg", stepsize="0.05 deg",
                                       theta="0.1 deg")
    lazy = estimator.run(_dataset(geometry, chunks=(1, 40, 50)))
    blocks = [task for key, task in dict(lazy["alpha"].data.__dask_graph__()).items()
              if str(key[0]).startswith("adaptive_ring_block")]
    rings = AdaptiveRings(0.3 / BINSZ, 0.2 / BINSZ, 1.5 / BINSZ, 0.05 / BINSZ, "fixed_width", theta=0.1 / BINSZ)
    kernels, tophat = rings.kernels()
    kernel_bytes = sum(kernel.nbytes for kernel in kernels) + tophat.nbytes
    assert len(blocks) > 1 and kernel_bytes > 300_000
    assert max(len(pickle.dumps(task)) for task in blocks) < kernel_bytes / 10
    assert rings.kernels()[0][0] is kernels[0] and not kernels[0].flags.writeable and not tophat.flags.writeable
    plain = adaptive_ring_kernels(0.3 / BINSZ, 0.2 / BINSZ, 1.5 / BINSZ, 0.05 / BINSZ, "fixed_width")
    assert len(kernels) == len(plain) and {kernel.shape for kernel in kernels} == {tophat.shape}
    for padded, kernel in zip(kernels, plain):
        pad = (padded.shape[0] - kernel.shape[0]) // 2
        np.testing.assert_array_equal(padded[pad:pad + kernel.shape[0], pad:pad + kernel.shape[1]], kernel)
        assert padded.sum() == kernel.sum()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"r_out_max": "0.4 deg"}, "r_out_max"), ({"stepsize": "0 deg"}, "stepsize"),
     ({"threshold_alpha": -1}, "threshold_alpha"), ({"method": "bogus"}, "method"),
     ({"min_area_fraction": 2}, "min_area_fraction"), ({"r_out_max": "3 deg"}, "wider than the map")],
)
def test_adaptive_bad_parameters(geometry, kwargs, match):
    params = dict(r_in="0.3 deg", width="0.2 deg", r_out_max="1 deg")
    params.update(kwargs)
    with pytest.raises(EstimatorError, match=match):
        AdaptiveRingBackground(**params).run(_dataset(geometry))


def test_default_block_memory_of_the_heaviest_block_functions():
    # The default block size (`xgamma.blocks.block_size`) is set by the heaviest block functions:
    # one default block of the survey's images (256-pixel chunks of a map 300 pixels tall, 0.02 deg),
    # extended by the overlap of the HGPS adaptive ring, costs the adaptive ring and then the on-off
    # significance maps below 80 MB of numpy allocations each, inputs and the kernel spectra a worker
    # caches on its first block included; so does a block of the stacked ring, which groups
    # `REDUCED_AXIS_FACTOR` times more values along the runs (~67, ~59 and ~62 MB here; 2**20: ~230 MB).
    import tracemalloc

    from xgamma.blocks import block_chunks
    from xgamma.convolution import kernel_radius, ring_kernel
    from xgamma.estimators import significance_maps

    binsz = 0.02
    survey_chunks = ((256, 44), (256,) * 34 + (46,))  # 300 x 8750 pixels

    def extended_geometry(blocks, depth):
        assert len(blocks[-2]) == 1 and len(blocks[-1]) > 1  # whole columns: overlap along lon only
        shape = (max(blocks[-2]), max(blocks[-1]) + 2 * depth)
        geometry = SkyGeometry.create((0, 0), width=[shape[1] * binsz * u.deg, shape[0] * binsz * u.deg],
                                      binsz=binsz * u.deg, energy_edges=[1, 10] * u.TeV)
        assert geometry.shape == shape
        return geometry

    def runs_dataset(geometry, n_runs):
        template = _dataset(geometry)
        dims = ("obs_id", *template["counts"].dims)
        return xr.Dataset({name: (dims, np.stack([template[name].values] * n_runs)) for name in template.data_vars},
                          coords=template.coords.assign(obs_id=np.arange(n_runs)))

    def peak_mb(run, maps):
        tracemalloc.start()
        try:
            out = run(maps)
            inputs = sum(v.nbytes for v in maps.data_vars.values())
            return out, (tracemalloc.get_traced_memory()[1] + inputs) / 1e6
        finally:
            tracemalloc.stop()

    adaptive = AdaptiveRingBackground(r_in="0.7 deg", width="0.44 deg", r_out_max="1.7 deg", stepsize="0.1 deg",
                                      theta="0.22 deg")
    depth = kernel_radius(adaptive_ring_kernels(0.7 / binsz, 0.44 / binsz, 1.7 / binsz, 0.1 / binsz, "fixed_width")[-1])
    maps = _dataset(extended_geometry(block_chunks(((1,), *survey_chunks), depth), depth))
    peaks = {}
    maps, peaks["adaptive ring"] = peak_mb(adaptive.run, maps)
    _, peaks["significance"] = peak_mb(significance_maps, maps)
    ring = RingBackground(r_in="0.7 deg", width="0.44 deg")
    depth = kernel_radius(ring_kernel(0.7 / binsz, 0.44 / binsz))
    blocks = block_chunks(((1,) * 8, *survey_chunks), depth, reduce_first=True)
    runs = runs_dataset(extended_geometry(blocks, depth), max(blocks[0]))
    _, peaks[f"ring, {max(blocks[0])} runs"] = peak_mb(ring.run, runs)
    assert max(blocks[0]) == 4
    assert max(peaks.values()) < 80, peaks


@pytest.mark.parametrize("where", ["nowhere", "excluded"])
def test_block_without_acceptance_outside_the_exclusion_needs_no_rings(where):
    """A block with no acceptance left outside the exclusion (one that no run reaches, or whose runs'
    acceptance is all excluded): the convolutions find that no ring qualifies anywhere (off and off
    acceptance NaN, ring index -1), and the block gives those channels without making them."""
    from xgamma.background.adaptive_ring import AdaptiveRings, _adaptive_sums, adaptive_ring_block

    rng = np.random.default_rng(3)
    counts = rng.poisson(2.0, (40, 40)).astype(float)
    acceptance = np.zeros((40, 40))
    exclusion = np.ones((40, 40))
    if where == "excluded":
        acceptance[10:20, 10:20] = 5.0
        exclusion[5:25, 5:25] = 0.0  # 1: usable, 0: excluded
    rings = AdaptiveRings(3.0, 2.0, 9.0, 1.0, "fixed_width", theta=2.0)
    kernels, tophat = rings.kernels()
    off, acc_off, index = _adaptive_sums(counts * exclusion, acceptance * exclusion, exclusion, acceptance, kernels,
                                         tophat, 0.1, 0.0)  # what the convolutions find
    assert np.isnan(off).all() and np.isnan(acc_off).all() and (index == -1).all()
    core = (slice(5, 35), slice(5, 35))
    out = adaptive_ring_block(counts, acceptance, exclusion, window=((0, 40), (0, 40)), core=core, rings=rings,
                              threshold=0.1, min_area_fraction=0.0, geometry=None, pointings=None,
                              limit=None, obs_axis=False, exclusion=None)
    np.testing.assert_array_equal(out[0], counts[core])
    np.testing.assert_array_equal(out[1], acceptance[core])
    assert (out[2] == 0).all() and (out[3] == 0).all()  # no off counts, no off acceptance
    assert np.isnan(out[4]).all() and np.isnan(out[5]).all() and (out[6] == -1).all()  # alpha, background, index
