"""Gammapy 2.1 reference values of the validation matrix (`matrix_cells`), computed at test time.

Per (data, safe range, geometry, energy dispersion) one stacked ``MapDataset`` is made the usual
Gammapy way: per run ``MapDatasetMaker`` (counts, exposure, background, PSF, and the energy
dispersion when asked) on the cell's axes, ``SafeMaskMaker`` (the cell's method, plus
``offset-max`` at the map's offset cut, which is what xgamma's ``maps.offset_max`` is), stacked.
Without energy dispersion the true-energy axis is the reco axis and each run gets the identity
as its migration kernel (`_diagonal_kernel` says why not ``edisp = None``). Image cells fit
``stacked.to_image()``.

The fit starts from the cell's start values (`matrix_cells.start_position`) or a given start
and runs ``Fit().run``; TS is C(source amplitude 0, the rest refitted) - C(best).

For the known differences of `test_matrix`, `stacked_maps` can switch three Gammapy conventions
to xgamma's (the PSF maps' radius axis, the safe range in PSF stacking, the exposure applied before
the PSF), and `statistic_at_position` gives Gammapy's Cash at another code's position.

The significance reference is Gammapy's ring background on each run's image
(``RingBackgroundMaker``, the exclusion circle of the cell), stacked, then
``ExcessMapEstimator`` (correlated Li & Ma significance).
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np

from matrix_cells import (
    AEFF_PERCENT,
    BINSZ,
    CORRELATION_RADIUS,
    EXCLUSION_RADIUS,
    FLUX_BAND,
    RECO,
    RING,
    TRUE,
    Cell,
    lonlat,
    start_position,
)

PARAMETERS = ("lon_0", "lat_0", "amplitude", "index")


@contextmanager
def _quiet():
    """Gammapy warns about missing thresholds, deprecated defaults, etc.: not what is tested."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _axis(spec: dict, name: str):
    from gammapy.maps import MapAxis

    return MapAxis.from_energy_bounds(u.Quantity(spec["min"]), u.Quantity(spec["max"]), spec["nbins"], name=name)


def geometry(cell: Cell):
    """The Gammapy ``WcsGeom`` of a cell (same pixels as xgamma's `SkyGeometry.create`)."""
    from gammapy.maps import WcsGeom

    t = cell.target
    lon, lat = lonlat(t.center, cell.frame)
    return WcsGeom.create(skydir=(lon, lat), frame=cell.frame, binsz=BINSZ, width=t.width, proj=cell.projection,
                          axes=[_axis(RECO, "energy")])


def safe_maker(cell: Cell):
    from gammapy.makers import SafeMaskMaker

    methods = {"off": [], "aeff-default": ["aeff-default"], "aeff-max": ["aeff-max"]}[cell.safe]
    return SafeMaskMaker(methods=[*methods, "offset-max"], aeff_percent=AEFF_PERCENT,
                         offset_max=cell.target.offset_max * u.deg)


def _diagonal_kernel(dataset):
    """A run's migration kernel without energy dispersion: the identity, carrying the run's exposure.

    Stacked with the run's safe mask as weights (`MapDataset.stack`), it drops each run's
    prediction outside its own safe range. With ``edisp = None`` instead, Gammapy predicts
    counts in every true-energy bin: ``to_image`` then sums source counts from bins whose counts
    were masked (measured: the Crab flux with ``aeff-default`` comes out at half its value), and a
    stacked cube of runs with different safe ranges counts each run's exposure in bins where
    only the others are safe.
    """
    from gammapy.irf import EDispKernelMap

    kernel = EDispKernelMap.from_diagonal_response(dataset.counts.geom.axes["energy"],
                                                   dataset.exposure.geom.axes["energy_true"],
                                                   geom=dataset.psf.psf_map.geom.to_image())
    kernel.exposure_map.data[...] = dataset.psf.exposure_map.data
    return kernel


def _psf_in_safe_bins(dataset) -> None:
    """Weight a run's PSF map by its safe range per energy bin (true axis = reco axis).

    Gammapy stacks PSF maps with weights from ``mask_safe_image`` (the safe mask OR-ed over
    energy), so a run's PSF enters the mean PSF of bins where its counts are cut.
    """
    safe = dataset.mask_safe.data.any(axis=(1, 2))
    dataset.psf.exposure_map.data *= safe[:, None, None, None]


def _psf_after_exposure(stacked) -> None:
    """The stacked PSF as a PSF in reconstructed energy (true axis = reco axis), so that Gammapy
    multiplies the flux by the exposure before it convolves with the PSF.

    With a PSF in true energy Gammapy convolves the flux with the PSF first and multiplies the
    result by the exposure at each reconstructed position; with one in reconstructed energy it
    folds flux x exposure (at the true position) through the identity migration and convolves.
    """
    from gammapy.irf import RecoPSFMap
    from gammapy.maps import Map

    def renamed(m):
        return Map.from_geom(m.geom.rename_axes(["energy_true"], ["energy"]), data=m.data, unit=m.unit)

    stacked.psf = RecoPSFMap(renamed(stacked.psf.psf_map), renamed(stacked.psf.exposure_map))


@dataclass
class StackedMaps:
    """The stacked dataset of a maps key and, for the significance, the stacked ring dataset."""

    stacked: object
    ring: object | None
    seconds: float
    safe_ranges: dict = field(default_factory=dict)  # obs_id -> (emin, emax) TeV of the safe bins


def stacked_maps(cell: Cell, data_dir: Path, *, ring: bool = False, rad_max: float | None = None,
                 psf_safe_bins: bool = False, psf_after_exposure: bool = False) -> StackedMaps:
    """Gammapy's stacked dataset of the cell's maps key (and the ring on-off dataset if asked).

    Three options change Gammapy's conventions where they differ from xgamma's (the known
    differences of `test_matrix`; all default to Gammapy as users run it):

    ``rad_max`` (deg): the PSF maps' radius axis ends there (0.01 deg bins) instead of at
    Gammapy's default 0.66 deg. Gammapy cuts each energy's PSF kernel as a square of half-width
    the 99.9 % containment radius and interpolates the PSF map linearly in radius, extrapolating
    past the axis's end: the square's corners (up to sqrt(2) x 0.65 deg) get the extrapolated
    last two nodes of the table. With an axis to 1 deg they get the IRF's value there (0).

    ``psf_safe_bins``: each run's PSF counts in the stacked PSF only in the energy bins of its
    safe range (`_psf_in_safe_bins`; cells without energy dispersion).

    ``psf_after_exposure``: the stacked PSF as a PSF in reconstructed energy
    (`_psf_after_exposure`; cube cells without energy dispersion).
    """
    if (psf_safe_bins or psf_after_exposure) and cell.edisp:
        raise ValueError(f"{cell.id}: psf_safe_bins / psf_after_exposure need true axis = reco axis (no edisp)")
    if psf_after_exposure and cell.fit == "images":
        # Measured: Gammapy's to_image() of a dataset with a PSF in reconstructed energy fits nonsense.
        raise ValueError(f"{cell.id}: psf_after_exposure is for cube fits")
    with _quiet():
        from gammapy.data import DataStore
        from gammapy.datasets import MapDataset
        from gammapy.makers import MapDatasetMaker, RingBackgroundMaker
        from gammapy.maps import MapAxis
        from regions import CircleSkyRegion

        start = time.perf_counter()
        t = cell.target
        observations = DataStore.from_dir(data_dir / t.store).get_observations(list(t.obs_ids))
        geom = geometry(cell)
        true = _axis(TRUE, "energy_true") if cell.edisp else geom.axes["energy"].copy(name="energy_true")
        selection = ["counts", "exposure", "background", "psf"] + (["edisp"] if cell.edisp else [])
        maker = MapDatasetMaker(selection=selection)
        safe = safe_maker(cell)
        rad_axis = None if rad_max is None else MapAxis.from_bounds(0, rad_max, nbin=int(round(rad_max / 0.01)),
                                                                   node_type="edges", name="rad", unit="deg")
        stacked = MapDataset.create(geom, energy_axis_true=true, rad_axis=rad_axis, name="stacked")
        ring_maker = ring_stacked = None
        if ring:
            region = CircleSkyRegion(t.source.transform_to(cell.frame), EXCLUSION_RADIUS * u.deg)
            exclusion = ~geom.to_image().region_mask([region])
            ring_maker = RingBackgroundMaker(r_in=RING["r_in"] * u.deg, width=RING["width"] * u.deg,
                                             exclusion_mask=exclusion)
        ranges = {}
        for observation in observations:
            dataset = safe.run(maker.run(stacked.copy(name=f"run-{observation.obs_id}"), observation), observation)
            if not cell.edisp:
                dataset.edisp = _diagonal_kernel(dataset)
                if psf_safe_bins:
                    _psf_in_safe_bins(dataset)
            safe_bins = dataset.mask_safe.data.any(axis=(1, 2))
            edges = geom.axes["energy"].edges.to_value("TeV")
            ranges[observation.obs_id] = ((edges[:-1][safe_bins].min(), edges[1:][safe_bins].max())
                                          if safe_bins.any() else None)
            stacked.stack(dataset)
            if ring_maker is not None:
                on_off = ring_maker.run(dataset.to_image())
                # Masked first, so that every run's counts are cut alike (Gammapy's stack() masks
                # only the datasets added to the first one).
                if ring_stacked is None:
                    ring_stacked = on_off.to_masked(name="ring")
                else:
                    ring_stacked.stack(on_off)
        if psf_after_exposure:
            _psf_after_exposure(stacked)
        return StackedMaps(stacked, ring_stacked, time.perf_counter() - start, ranges)


@dataclass
class FitReference:
    """Gammapy's best fit of a cell."""

    values: dict
    errors: dict
    statistic: float
    ts: float
    success: bool
    seconds: float
    start: dict  # the start values


def _models(cell: Cell, dataset_name: str, lon_0: float, lat_0: float, amplitude: float, index: float):
    from gammapy.modeling.models import FoVBackgroundModel, Models, PointSpatialModel, PowerLaw2SpectralModel
    from gammapy.modeling.models import SkyModel as GammapySkyModel

    spectral = PowerLaw2SpectralModel(emin=FLUX_BAND[0] * u.TeV, emax=FLUX_BAND[1] * u.TeV, index=index,
                                      amplitude=amplitude * u.Unit("cm-2 s-1"))
    spectral.index.frozen = cell.fit == "images"
    spectral.index.min, spectral.index.max = 1, 6  # unbounded, MIGRAD tried index 73 on PKS 2155-304
    spatial = PointSpatialModel(lon_0=lon_0 * u.deg, lat_0=lat_0 * u.deg, frame=cell.frame)
    # Positions bounded to the map, as xgamma does by default: without bounds MIGRAD's first
    # steps leave the map (the Crab in Galactic coordinates: l = 193 deg) and the fit fails.
    centre_lon, centre_lat = lonlat(cell.target.center, cell.frame)
    half = cell.target.width / 2
    spatial.lat_0.min, spatial.lat_0.max = centre_lat - half, centre_lat + half
    half_lon = half / np.cos(np.radians(max(abs(centre_lat) + half, 0)))
    spatial.lon_0.min, spatial.lon_0.max = centre_lon - half_lon, centre_lon + half_lon
    background = FoVBackgroundModel(dataset_name=dataset_name)
    background.spectral_model.norm.frozen = cell.norm == "frozen"
    background.spectral_model.tilt.frozen = True
    return Models([GammapySkyModel(spatial_model=spatial, spectral_model=spectral, name="source"), background])


def fit_reference(cell: Cell, stacked: StackedMaps, start: dict | None = None) -> FitReference:
    """Gammapy's fit of the cell from ``start`` (default: the cell's start values), with TS.

    ``start`` maps ``lon_0``, ``lat_0``, ``amplitude`` and ``index`` to start values.
    """
    with _quiet():
        from gammapy.modeling import Fit

        begin = time.perf_counter()
        dataset = stacked.stacked.to_image(name="image") if cell.fit == "images" else stacked.stacked.copy(
            name="cube")
        lon, lat = start_position(cell)
        start = {"lon_0": lon, "lat_0": lat, "amplitude": cell.target.amplitude, "index": cell.target.index,
                 **(start or {})}
        dataset.models = _models(cell, dataset.name, **start)
        result = Fit().run(dataset)
        models = dataset.models.copy()
        source = models["source"]
        values = {name: float(source.parameters[name].value) for name in PARAMETERS}
        errors = {name: float(source.parameters[name].error) for name in PARAMETERS}
        # TS: the source removed (amplitude 0, frozen), the other free parameters refitted.
        null = models.copy()
        null["source"].spectral_model.amplitude.value = 0.0
        null["source"].parameters.freeze_all()
        dataset.models = null
        stat_null = Fit().run(dataset).total_stat if cell.norm == "free" else float(dataset.stat_sum())
        return FitReference(values, errors, float(result.total_stat), float(stat_null - result.total_stat),
                            bool(result.success), time.perf_counter() - begin, start)


def statistic_at_position(cell: Cell, stacked: StackedMaps, values: dict) -> float:
    """Gammapy's Cash with the source's position fixed at ``values`` (``lon_0``, ``lat_0``), the
    other free parameters fitted from ``values``: Gammapy's own likelihood at another code's position."""
    with _quiet():
        from gammapy.modeling import Fit

        dataset = stacked.stacked.to_image(name="image") if cell.fit == "images" else stacked.stacked.copy(
            name="cube")
        dataset.models = _models(cell, dataset.name, **{name: values[name] for name in PARAMETERS})
        spatial = dataset.models["source"].spatial_model
        spatial.lon_0.frozen = spatial.lat_0.frozen = True
        return float(Fit().run(dataset).total_stat)


@dataclass
class SignificanceReference:
    peak: float
    peak_lonlat: tuple[float, float]
    seconds: float


def significance_reference(cell: Cell, stacked: StackedMaps) -> SignificanceReference:
    with _quiet():
        from gammapy.estimators import ExcessMapEstimator

        start = time.perf_counter()
        maps = ExcessMapEstimator(correlation_radius=CORRELATION_RADIUS * u.deg, correlate_off=True).run(stacked.ring)
        significance = maps["sqrt_ts"].data[0]
        iy, ix = np.unravel_index(np.nanargmax(significance), significance.shape)
        world = maps["sqrt_ts"].geom.to_image().pix_to_coord((ix, iy))
        return SignificanceReference(float(significance[iy, ix]), (float(world[0].to_value("deg")), float(world[1].to_value("deg"))),
                                     stacked.seconds + time.perf_counter() - start)
