"""The stages of the reference analysis: each reads earlier products from an `Analysis` and adds its own.

A stage knows its own configuration sections and the products it needs, never the stages
after it: a stage that needs something an earlier stage can make cheaply alongside its own
products says so in `Stage.needs` (the significance stage asks the maps stage for per-observation
images), and `run_analysis` passes the union of those requests on as `Analysis.requested`.

Adding a stage: write ``run(analysis)`` storing its products on the `Analysis` (add the attribute
there), ``write(analysis, output) -> {name: path}`` for the files of ``xgamma run``, and
``wanted(analysis)`` saying which configuration sections turn it on; then insert its `Stage`
record into `REFERENCE_STAGES`, or pass your own sequence to ``run_analysis(stages=...)`` without
touching xgamma. Source detection (`DETECT`, ``xgamma.workflow.detection``) was added this way,
after `SIGNIFICANCE`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xgamma.exceptions import ConfigError
from xgamma.workflow import detection, inputs, products

if TYPE_CHECKING:
    import xarray as xr

    from xgamma.workflow.analysis import Analysis

__all__ = ["Stage", "REFERENCE_STAGES", "MAPS", "FIT", "SIGNIFICANCE", "DETECT", "PLOTS", "OBSERVATION_IMAGES",
           "run_maps", "run_fit", "run_significance", "check_maps", "check_fit", "check_significance"]

#: Product name of the per-observation squashed counts and background (`Analysis.observation_images`).
OBSERVATION_IMAGES = "observation_images"


@dataclass(frozen=True)
class Stage:
    """One step of an analysis.

    Attributes
    ----------
    name : str
        Stage name (``"maps"``, ``"fit"``, ...), used in log messages.
    wanted : callable
        ``wanted(analysis) -> bool``: whether this analysis asks for the stage (its configuration
        sections are present, or the Python objects it reads were given).
    run : callable, optional
        ``run(analysis) -> None``: computes the stage's products and stores them on ``analysis``.
        None for stages that only write files (plots).
    write : callable, optional
        ``write(analysis, output) -> dict[str, Path]``: writes the products into the folder
        ``output`` atomically and returns the paths by product name.
    needs : frozenset of str
        Products the stage asks earlier stages to make (e.g. `OBSERVATION_IMAGES`).
    check : callable, optional
        ``check(analysis) -> None``: validates the stage's inputs (configuration sections, files,
        models, regions) cheaply, raising an `XgammaError` naming the key or file. Every selected
        stage is checked before any stage computes, so a bad fit section fails before the maps
        are made (and ``xgamma run --dry-run`` runs only the checks).
    """

    name: str
    wanted: Callable[[Analysis], bool]
    run: Callable[[Analysis], None] | None = None
    write: Callable[[Analysis, Path], dict[str, Path]] | None = None
    needs: frozenset[str] = frozenset()
    check: Callable[[Analysis], None] | None = None


def map_options(analysis: Analysis) -> dict[str, Any]:
    """Keyword arguments of the map makers from the ``maps`` and ``geometry`` sections."""
    section = analysis.config["maps"]
    return dict(offset_max=section["offset_max"], safe_energy=section.get("safe_energy"),
                energy_true=inputs.energy_true_edges(analysis.config, analysis.geometry), chunks=section.get("chunks"))


def squash_spectrum(config: Mapping[str, Any]) -> Any:
    """The ``maps.squash.spectrum`` weighting of the energy squash (None: the default)."""
    return config["maps"].get("squash", {}).get("spectrum")


def observation_maps(analysis: Analysis) -> xr.Dataset:
    """Lazy per-observation cube (``obs_id`` dim) with the options of the ``maps`` section."""
    from xgamma.makers import make_observation_maps

    return make_observation_maps(analysis.observations, analysis.geometry, **map_options(analysis))


def observation_images(analysis: Analysis) -> xr.Dataset:
    """Per-observation squashed counts and background along an ``obs_id`` dim, with pointings.

    The maps stage computes these together with the stacked cube when a later stage asks for
    them (`OBSERVATION_IMAGES`); otherwise they are built here, lazily (the squash is fused into
    the map-making tasks: no per-observation cube is made).
    """
    if analysis.observation_images is not None:
        return analysis.observation_images
    from xgamma.makers import make_map_products

    return make_map_products(analysis.observations, analysis.geometry, maps=False, observation_images=True,
                             **map_options(analysis)).observation_images


def check_maps(analysis: Analysis) -> None:
    """The map fits in memory; each observation's pointing and times are valid and its files exist."""
    from xgamma.exceptions import DataStoreError

    from xgamma.workflow.config import is_streamed

    geometry = analysis.geometry
    if geometry.energy_edges is None:
        raise ConfigError("geometry: map making needs an energy axis (geometry.energy)")
    inputs.check_map_size(geometry.shape, geometry.nbins, in_memory=not is_streamed(analysis.config))
    if not analysis.observations:
        raise DataStoreError("no observations to make maps from: the selection is empty")
    for observation in analysis.observations:
        observation.pointing_radec, observation.livetime  # noqa: B018 (read and checked; no SkyCoord per run)
        for hdu_type in ("events", "aeff", "bkg"):
            path = getattr(observation, "hdus", {}).get(hdu_type, (None,))[0]
            if path is not None and not Path(path).is_file():
                raise DataStoreError(f"obs {observation.obs_id}: {hdu_type} file not found: {path}")


def run_maps(analysis: Analysis) -> None:
    """Stacked cube (`Analysis.maps`, computed) and squashed images (`Analysis.images`)."""
    from xgamma.makers import make_map_products, squash_energy

    config = analysis.config
    spectrum = squash_spectrum(config)
    # With per-observation images asked for, they come from the same block tasks as the cube:
    # each observation is read and binned once.
    wanted = OBSERVATION_IMAGES in analysis.requested
    products = make_map_products(analysis.observations, analysis.geometry, observation_images=wanted,
                                 **map_options(analysis))
    if wanted:
        cube, analysis.observation_images = analysis.compute(products.maps, products.observation_images)
    else:
        (cube,) = analysis.compute(products.maps)
    analysis.maps = cube
    # The images derive from the computed cube without re-reading data.
    analysis.images = squash_energy(cube, spectrum=spectrum)
    analysis.summary["maps"] = {
        "obs_ids": [int(o.obs_id) for o in analysis.observations],
        "total_counts": float(cube.counts.sum()),
        "total_background": float(cube.background.sum()),
    }


def check_fit(analysis: Analysis) -> None:
    """Models build, have distinct names and a free parameter; MINOS names exist."""
    if analysis.models is None:
        analysis.models = inputs.build_models(analysis.config)
    models = analysis.models
    if not models:
        raise ConfigError("fit: no models to fit: add a 'models' section (or 'background_model')")
    seen: dict[str, int] = {}
    for i, model in enumerate(models):
        _check_model_parameters(model)
        name = getattr(model, "name", None)
        if name in seen:
            raise ConfigError(f"models: two models are named {name!r} (entries {seen[name]} and {i}); "
                              "parameters are labelled by model name, so names must differ")
        seen[name] = i
    labels = {f"{getattr(m, 'name', '')}.{p.name}": p for m in models for p in m.parameters}
    for label, parameter in labels.items():
        inside = ((np.isnan(parameter.min) or parameter.value >= parameter.min)
                  and (np.isnan(parameter.max) or parameter.value <= parameter.max))
        if not parameter.frozen and not inside:
            raise ConfigError(f"models: parameter {label} starts at {parameter.value:g}, outside its bounds "
                              f"[{parameter.min:g}, {parameter.max:g}]")
    if all(p.frozen for p in labels.values()):
        raise ConfigError("fit: every parameter of the models is frozen, there is nothing to fit; "
                          "set 'frozen: false' on at least one parameter")
    for label in analysis.config.get("fit", {}).get("minos", ()):
        if label not in labels or labels[label].frozen:
            free = sorted(k for k, p in labels.items() if not p.frozen)
            raise ConfigError(f"fit.minos: {label!r} is not a free parameter; free parameters: {free}")


def _check_model_parameters(model: Any) -> None:
    """A sky model's components declare parameters (a spatial model its centre lon_0, lat_0)."""
    from xgamma.exceptions import ModelError
    from xgamma.plugin.blame import describe_component, plugin_of
    from xgamma.plugin.types import ModelPluginError

    for part, needed in (("spatial", ("lon_0", "lat_0")), ("spectral", ())):
        component = getattr(model, part, None)
        if component is None:
            continue
        names = [p.name for p in getattr(component, "parameters", None) or []]
        missing = [n for n in needed if n not in names]
        if names and not missing:
            continue
        error = ModelPluginError if plugin_of(component) is not None else ModelError
        what = describe_component(f"{part} model", getattr(component, "tag", "") or type(component).__name__,
                                  component)
        raise error(f"models: {getattr(model, 'name', '?')!r}: {what} declares "
                    f"{'no parameters' if not names else 'no ' + ' / '.join(missing) + ' parameter'}")


def default_minos(models: Sequence[Any]) -> list[str]:
    """Parameters that get MINOS errors when ``fit.minos`` is not given: the free radii of disks.

    A sharp disk's likelihood in its radius is not parabolic: in the pull studies
    (docs/validation.md, N = 380 each) the HESSE pulls of r_0 have widths 1.06-1.11, the
    likelihood-ratio (profile) pulls, which MINOS intervals follow, 1.01-1.06.
    """
    from xgamma.models.spatial import Disk
    from xgamma.models.sky_model import SkyModel

    return [f"{m.name}.r_0" for m in models
            if isinstance(m, SkyModel) and isinstance(m.spatial, Disk) and not m.spatial.r_0.frozen]


def run_fit(analysis: Analysis) -> None:
    """PSF (and migration) kernels of each source, models and the Cash fit with iminuit; residual maps.

    ``fit.on: cube`` fits the cube; ``fit.on: images`` fits the counts summed over energy, each
    source still predicted per energy bin with its own spectrum, exposure and PSF
    (`MapDataset.to_image`), so no weighting spectrum is assumed. The kernels are each source's
    own, at its position, unless ``psf.position`` sets one position for all.
    """
    import xarray as xr

    from xgamma.fit.dataset import MapDataset
    from xgamma.fit.fitter import fit
    from xgamma.fit.source_irfs import source_kernels

    config = analysis.config
    fit_section = config.get("fit", {})
    psf_section = config.get("psf", {})
    if analysis.models is None:
        check_fit(analysis)
    edisp = fit_section.get("edisp", False)
    options = map_options(analysis)
    psf, migration = source_kernels(
        analysis.observations, analysis.geometry, analysis.models, offset_max=options["offset_max"],
        safe_energy=options["safe_energy"], energy_true=options["energy_true"], edisp=edisp,
        position=psf_section.get("position"),
        spectrum=inputs.psf_spectrum(config) if "spectrum" in psf_section else None,
        max_radius=psf_section.get("max_radius"), containment=psf_section.get("containment", 0.999),
        spectral_exposure=fit_section.get("spectral_exposure", False),
    )
    dataset = MapDataset.from_maps(analysis.maps, psf=psf, edisp=migration, models=analysis.models,
                                   point_method=fit_section.get("point_method", "exact"))
    if fit_section.get("on", "images") == "images":
        dataset = dataset.to_image(name="stacked")
    result = fit(dataset, minos=fit_section.get("minos", default_minos(analysis.models)))
    if not result.success:  # fit.json says why too; the run goes on (the maps are still valid)
        logging.getLogger("xgamma").warning("fit %s", result.message)
    analysis.psf_kernel, analysis.dataset, analysis.fit_result = psf, dataset, result
    analysis.residuals = _correlated_residuals(dataset.residual_maps(), dataset.counts,
                                               config.get("significance", {}).get("correlation_radius", "0.1 deg"))
    analysis.summary["fit"] = {
        "success": bool(result.success), "message": result.message, "statistic": float(result.statistic),
        "values": result.values, "errors": result.errors, "ts": result.ts, "edisp": bool(edisp),
        "bin_centre_exposure": result.to_dict()["bin_centre_exposure"],
        "psf_r68_deg": {name: np.atleast_1d(kernel.r68.to_value("deg")).tolist() for name, kernel in psf.items()},
    }


def _correlated_residuals(residuals: xr.Dataset, counts: xr.DataArray, radius: Any) -> xr.Dataset:
    """Residual maps whose significance is correlated like the significance map's.

    At a fraction of a count per pixel a per-pixel significance is noise; the Cash significance
    of the counts and the prediction summed over the top-hat of ``radius`` is comparable with
    `significance.fits`.
    """
    import xarray as xr

    from xgamma.estimators.significance import significance_maps

    correlated = significance_maps(xr.Dataset({"counts": counts, "background": residuals["npred"]}),
                                   correlation_radius=radius)
    significance = residuals["residual_significance"].copy(data=np.asarray(correlated["significance"].values))
    radius_text = correlated.attrs.get("correlation_radius", str(radius))
    significance.attrs.update(correlation_radius=radius_text,
                              description=f"Cash significance of counts vs npred correlated within {radius_text}")
    return residuals.assign(residual_significance=significance)


def check_significance(analysis: Analysis) -> None:
    """The background estimator exists and takes the ``ring`` keys; the exclusion leaves pixels."""
    inputs.background_estimator_factory(analysis.config)
    if analysis.exclusion is None:
        analysis.exclusion = inputs.build_exclusion(analysis.config, analysis.geometry)
    if not bool(np.asarray(analysis.exclusion).any()):
        raise ConfigError("exclusion.regions exclude every pixel of the map: no pixel is left to estimate the "
                          "background from; shrink the regions or enlarge the map")


def run_significance(analysis: Analysis) -> None:
    """Ring background (iterating the exclusion when ``exclusion.threshold`` is set), correlated
    Li & Ma significance and excess, and the significance distribution of the off pixels."""
    import xarray as xr

    from xgamma.estimators.distribution import significance_distribution, significance_summary
    from xgamma.estimators.significance import significance_maps
    from xgamma.maps import with_units

    config = analysis.config
    make_estimator = inputs.background_estimator_factory(config)
    exclusion = analysis.exclusion
    if exclusion is None:
        exclusion = inputs.build_exclusion(config, analysis.geometry)
    images = observation_images(analysis)
    radius = config.get("significance", {}).get("correlation_radius", "0.1 deg")
    section = config.get("exclusion", {})
    if "threshold" in section:
        # Grow the exclusion around significant pixels, iterating background -> significance -> mask.
        from xgamma.workflow.exclusion import iterate_exclusion_mask

        exclusion, iterations = iterate_exclusion_mask(
            images, background_estimator=make_estimator(exclusion), correlation_radius=radius,
            threshold=section["threshold"], dilation=section.get("dilation", "0.2 deg"), exclusion=exclusion,
            max_iterations=section.get("max_iterations", 5),
        )
        analysis.summary["exclusion_iterations"] = iterations
    method = config.get("ring", {}).get("method", "ring")
    result = inputs.estimate_background(make_estimator(exclusion), images, method)
    if "obs_id" in result.dims:  # an estimator that leaves observations unstacked: sum them
        result = result.sum("obs_id", keep_attrs=True)
    maps = significance_maps(result, correlation_radius=radius,
                             correlate_off=config.get("significance", {}).get("correlate_off", True))
    result, maps = analysis.compute(result, maps)
    layers = {name: result[name] for name in ("counts", "off", "alpha", "background") if name in result}
    layers.update(excess=maps["excess"], significance=maps["significance"], exclusion=exclusion.astype(bool))
    dataset = xr.Dataset({name: with_units(_as_image(da), da.attrs.get("units", ""), name=name)
                          for name, da in layers.items()})
    analysis.exclusion = exclusion
    analysis.significance = dataset
    exclusion_mask = dataset["exclusion"].astype(bool)
    analysis.distribution = significance_distribution(dataset["significance"], exclusion=exclusion_mask)
    analysis.summary["significance"] = significance_summary(dataset.assign(exclusion=exclusion_mask))


def _as_image(da: xr.DataArray) -> xr.DataArray:
    """Ensure a length-1 energy dim (FITS layout of images)."""
    if "energy" in da.dims:
        return da.transpose("energy", "lat", "lon")
    return da.expand_dims("energy", 0) if "energy" in da.coords else da


def _has_section(*names: str) -> Callable[[Analysis], bool]:
    return lambda analysis: any(name in analysis.config for name in names)


MAPS = Stage("maps", wanted=lambda analysis: True, run=run_maps, write=products.write_maps_products,
             check=check_maps)
FIT = Stage("fit", wanted=lambda analysis: analysis.models is not None or _has_section("models", "fit")(analysis),
            run=run_fit, write=products.write_fit_products, check=check_fit)
SIGNIFICANCE = Stage(
    "significance",
    wanted=lambda analysis: analysis.exclusion is not None
    or _has_section("ring", "significance", "exclusion")(analysis),
    run=run_significance, write=products.write_significance_products, needs=frozenset({OBSERVATION_IMAGES}),
    check=check_significance,
)
DETECT = Stage("detect", wanted=detection.wanted, run=detection.run_detection, write=detection.write_detection,
               check=detection.check_detection)
PLOTS = Stage("plots", wanted=lambda analysis: bool(analysis.config.get("plots")), write=products.write_plots)

#: The stages of ``xgamma run`` in order.
REFERENCE_STAGES: tuple[Stage, ...] = (MAPS, FIT, SIGNIFICANCE, DETECT, PLOTS)
