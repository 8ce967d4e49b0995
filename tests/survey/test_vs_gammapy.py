"""A 3-field sub-mosaic of the simulated survey against Gammapy 2.1: DatasetsMaker + ring /
adaptive ring + ExcessMapEstimator, with the tolerances of the reference workflow.

* counts: identical per pixel up to events within float precision of a pixel border, bound
  0.1 % of the events (as tests/makers/test_maps_vs_gammapy.py);
* exposure: 0.1 % per pixel where above 1 % of its maximum (Gammapy's stacked cube keeps the
  exposure of unsafe energy bins: the reference is its per-run exposure x safe mask);
* background: total within 1 %, per pixel within 2 % where above 1 % of the maximum;
* ring: off counts identical; significance within 0.05 sigma (reference workflow tolerance).

The ring runs on the stacked images in both codes (xgamma's streamed survey path, Gammapy's
ring tutorial). For the adaptive ring, Gammapy stores the theta-correlated acceptance as its on
acceptance; xgamma keeps per-pixel acceptances and correlates at the significance step
(``correlate_off: false``, the H.E.S.S. survey convention): with ``theta`` equal to the
correlation radius both give the same Li & Ma inputs.
"""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from mosaic_cases import mosaic_config

from xgamma.io.zarr_maps import read_zarr
from xgamma.workflow import run_analysis

pytestmark = [pytest.mark.gammapy, pytest.mark.slow]

OBS_IDS = [15, 16, 25]  # (l, b) = (0, -0.35), (0, 0.35), (0.7, -0.35): three overlapping fields
EXCLUSION = "galactic; circle(0.5, 0.2, 0.3)"
RING = {"r_in": "0.5 deg", "width": "0.3 deg"}
ADAPTIVE = {"r_in": "0.5 deg", "width": "0.3 deg", "r_out_max": "1.1 deg", "stepsize": "0.04 deg",
            "theta": "0.1 deg", "threshold_alpha": 0.1}


def _config(store, ring: dict, correlate_off: bool) -> dict:
    config = mosaic_config(store, chunks=64)
    config["data"]["obs_ids"] = OBS_IDS
    config["geometry"] = {"center": {"lon": "0.35 deg", "lat": "0 deg"}, "width": ["4 deg", "3 deg"],
                          "binsz": "0.02 deg", "energy": {"min": "0.3 TeV", "max": "30 TeV", "nbins": 6}}
    config["maps"]["offset_max"] = "2 deg"
    config["exclusion"] = {"regions": [EXCLUSION]}
    config["ring"] = ring
    config["significance"] = {"correlation_radius": ["0.1 deg"], "correlate_off": correlate_off}
    return config


@pytest.fixture(scope="module")
def gammapy_stack(survey_store):
    """Stacked cube, safe-masked exposure and the stacked image dataset from Gammapy's DatasetsMaker."""
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import DatasetsMaker, MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import Map, MapAxis, WcsGeom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        observations = DataStore.from_dir(survey_store).get_observations(OBS_IDS)
        axis = MapAxis.from_energy_bounds(0.3, 30, 6, "TeV")
        geom = WcsGeom.create(skydir=(0.35, 0), frame="galactic", binsz=0.02, width=(4, 3), proj="CAR", axes=[axis])
        makers = [MapDatasetMaker(selection=["counts", "exposure", "background"]),
                  SafeMaskMaker(methods=["offset-max", "aeff-default"], offset_max=2 * u.deg)]
        datasets = DatasetsMaker(makers, stack_datasets=False, n_jobs=1, cutout_mode="trim").run(
            MapDataset.create(geom, name="stacked"), observations)
        stacked = MapDataset.create(geom, name="stacked")
        masked_exposure = Map.from_geom(stacked.exposure.geom, unit="m2 s")
        for dataset in datasets:
            stacked.stack(dataset)
            exposure = dataset.exposure.to_unit("m2 s")
            masked_exposure.stack(exposure.copy(data=exposure.data * dataset.mask_safe.data))
    return geom, stacked, masked_exposure


def _gammapy_significance(stacked, geom, maker, correlate_off: bool):
    from astropy.coordinates import SkyCoord
    from gammapy.estimators import ExcessMapEstimator
    from regions import CircleSkyRegion

    region = CircleSkyRegion(SkyCoord(0.5, 0.2, unit="deg", frame="galactic"), 0.3 * u.deg)
    exclusion = ~geom.to_image().region_mask([region])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_off = maker(exclusion_mask=exclusion).run(stacked.to_image())
        maps = ExcessMapEstimator(correlation_radius="0.1 deg", correlate_off=correlate_off).run(on_off)
    return on_off, maps["sqrt_ts"].data[0]


def _xgamma(survey_store, tmp_path, ring: dict, correlate_off: bool):
    output = tmp_path / "out"
    run_analysis(_config(survey_store, ring, correlate_off), output=output)
    return read_zarr(output / "maps.zarr").compute(), read_zarr(output / "images.zarr").compute()


def _distance_to_fov_edge(cube, store) -> np.ndarray:
    """Angular distance (deg) of each pixel centre from the nearest offset_max circle of the runs."""
    from astropy.table import Table

    from xgamma.geometry.spherical import angular_distance
    from xgamma.maps import map_geometry

    runs = Table.read(store / "obs-index.fits.gz")
    lon, lat = map_geometry(cube).lonlat()
    return np.min([np.abs(angular_distance(lon, lat, row["GLON_PNT"], row["GLAT_PNT"]) - 2.0)
                   for row in runs if row["OBS_ID"] in OBS_IDS], axis=0)


def _compare_significance(ours, reference):
    both = np.isfinite(ours) & np.isfinite(reference)
    assert both.sum() > 0.5 * ours.size
    assert np.max(np.abs(ours[both] - reference[both])) < 0.05
    assert np.nanargmax(np.where(both, ours, np.nan)) == np.nanargmax(np.where(both, reference, np.nan))


def test_sub_mosaic_maps_and_ring_significance_match_gammapy(survey_store, gammapy_stack, tmp_path):
    from gammapy.makers import RingBackgroundMaker

    geom, stacked, masked_exposure = gammapy_stack
    cube, images = _xgamma(survey_store, tmp_path, {"method": "ring", **RING}, correlate_off=True)
    counts = stacked.counts.data
    moved = np.abs(cube["counts"].values - counts).sum() / 2
    assert counts.sum() > 2000 and moved <= 1e-3 * counts.sum()
    # Pixel centres on the offset_max circle of a run to float32 precision (Gammapy's pixel
    # coordinates: ~3e-5 deg at l ~ 360 deg) are in for one code and out for the other: they are
    # left out of the per-pixel comparisons (a handful of pixels).
    edge = np.broadcast_to(_distance_to_fov_edge(cube, survey_store) < 1e-4, counts.shape)
    assert edge.sum() < 2e-3 * edge.size  # the survey grid puts many pixel centres on those circles
    exposure = masked_exposure.data
    bright = (exposure > 0.01 * exposure.max()) & ~edge
    np.testing.assert_allclose(cube["exposure"].values[bright], exposure[bright], rtol=1e-3)
    background = stacked.background.data
    np.testing.assert_allclose(cube["background"].values.sum(), background.sum(), rtol=1e-2)
    bright = (background > 0.01 * background.max()) & ~edge
    np.testing.assert_allclose(cube["background"].values[bright], background[bright], rtol=2e-2)

    def maker(exclusion_mask):
        return RingBackgroundMaker(exclusion_mask=exclusion_mask, **RING)

    on_off, reference = _gammapy_significance(stacked, geom, maker, correlate_off=True)
    np.testing.assert_array_equal(images["off"].values[0], on_off.counts_off.data[0])
    _compare_significance(images["significance"].sel(correlation_radius=0.1).values[0], reference)


def test_sub_mosaic_adaptive_ring_matches_gammapy(survey_store, gammapy_stack, tmp_path):
    from gammapy.makers import AdaptiveRingBackgroundMaker

    geom, stacked, _ = gammapy_stack
    _, images = _xgamma(survey_store, tmp_path, {"method": "adaptive_ring", **ADAPTIVE}, correlate_off=False)

    def maker(exclusion_mask):
        return AdaptiveRingBackgroundMaker(exclusion_mask=exclusion_mask, **ADAPTIVE)

    on_off, reference = _gammapy_significance(stacked, geom, maker, correlate_off=False)
    # The same ring is chosen per pixel: same off counts and off acceptance.
    off = on_off.counts_off.data[0]
    found = np.isfinite(off) & (on_off.acceptance_off.data[0] > 0)
    assert found.sum() > 0.5 * off.size
    # Gammapy's off counts are float FFT sums (49.000004); xgamma rounds them to integers.
    np.testing.assert_allclose(images["off"].values[0][found], off[found], rtol=0, atol=1e-3)
    np.testing.assert_allclose(images["acceptance_off"].values[0][found], on_off.acceptance_off.data[0][found],
                               rtol=1e-3)
    _compare_significance(images["significance"].sel(correlation_radius=0.1).values[0], reference)
