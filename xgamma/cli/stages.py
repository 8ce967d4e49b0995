"""The ``fit``, ``significance`` and ``plots`` stages of ``xgamma run`` (see `xgamma.cli.pipeline`)."""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from xgamma.exceptions import ConfigError

if TYPE_CHECKING:
    import xarray as xr

    from xgamma.cli.pipeline import AnalysisState

__all__ = ["stage_fit", "stage_significance", "stage_plots", "build_models", "build_exclusion",
           "observation_images"]


def _write_json(path, payload: dict) -> Any:
    from xgamma.io.fits_maps import atomic_path

    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=float))
    return path


def build_models(config: dict) -> list:
    """Sky models (``models``) and the background model (``background_model``) of the config."""
    from xgamma.exceptions import XgammaError
    from xgamma.models.io import background_model_from_dict, sky_model_from_dict

    models = []
    for i, entry in enumerate(config.get("models", [])):
        if not isinstance(entry, dict):
            raise ConfigError(f"models[{i}]: expected a mapping with name, spatial, spectral")
        try:
            models.append(sky_model_from_dict(entry))
        except XgammaError as error:
            raise ConfigError(f"models[{i}]: {error}") from error
    background = config.get("background_model")
    if background is not None:
        try:
            models.append(background_model_from_dict(dict(background), name="background"))
        except XgammaError as error:
            raise ConfigError(f"background_model: {error}") from error
    return models


def _psf_spectrum(section: dict):
    from xgamma.models.io import spectral_model_from_dict

    return spectral_model_from_dict(section.get("spectrum", {"type": "powerlaw", "index": 2.0}),
                                    where="psf.spectrum")


def stage_fit(state: AnalysisState) -> None:
    """PSF kernel, models, Cash fit with iminuit; writes fit.json, models.yaml, residuals.fits."""
    import xarray as xr

    from xgamma.fit.dataset import MapDataset
    from xgamma.fit.fitter import fit
    from xgamma.fit.psf_kernel import psf_kernel_for_geometry
    from xgamma.io.fits_maps import atomic_path, write_maps
    from xgamma.models.io import write_models

    config = state.config
    fit_section = config.get("fit", {})
    on = fit_section.get("on", "images")
    maps = state.images if on == "images" else state.maps
    psf_section = config.get("psf", {})
    position = psf_section.get("position", state.geometry.center)
    kernel = psf_kernel_for_geometry(
        state.observations, state.geometry, position, spectrum=_psf_spectrum(psf_section), image=on == "images",
        max_radius=psf_section.get("max_radius"), containment=psf_section.get("containment", 0.999),
    )
    models = build_models(config)
    if not models:
        raise ConfigError("fit: no models configured (add a 'models' section)")
    dataset = MapDataset.from_maps(maps, psf=kernel, models=models,
                                   point_method=fit_section.get("point_method", "exact"))
    result = fit(dataset, minos=fit_section.get("minos", ()))
    state.fit_result = result
    state.dataset = dataset

    _write_json(state.output / "fit.json", result.to_dict())
    with atomic_path(state.output / "models.yaml", overwrite=True) as tmp:
        write_models(models, tmp)
    state.products["models"] = state.output / "models.yaml"
    state.products["fit"] = state.output / "fit.json"
    residuals = dataset.residual_maps()
    state.residuals = xr.Dataset({"npred": dataset.npred(), **residuals.data_vars})
    state.products["residuals"] = write_maps(state.residuals, state.output / "residuals.fits", overwrite=True)
    state.summary["fit"] = {
        "success": bool(result.success), "statistic": float(result.statistic),
        "values": result.values, "errors": result.errors,
        "psf_r68_deg": np.atleast_1d(np.asarray(getattr(kernel.r68, "value", kernel.r68))).tolist(),
    }


def build_exclusion(config: dict, geometry) -> xr.DataArray:
    """Exclusion mask (True = usable for background) from ``exclusion.regions``."""
    from xgamma.background.exclusion import make_exclusion_mask
    from xgamma.exceptions import XgammaError

    regions = config.get("exclusion", {}).get("regions")
    try:
        return make_exclusion_mask(geometry.to_image(), regions)
    except XgammaError as error:
        raise ConfigError(f"exclusion.regions: {error}") from error


def observation_images(state: AnalysisState) -> xr.Dataset:
    """Per-observation squashed counts and background along an ``obs_id`` dim, with pointings.

    The ring background is estimated per observation and then stacked, so that the correlation of
    overlapping runs is not counted twice. The maps stage computes these with the stacked cube.
    """
    precomputed = getattr(state, "observation_images", None)
    if precomputed is not None:
        return precomputed
    from xgamma.makers import make_observation_maps, squash_energy

    section = state.config["maps"]
    per_obs = make_observation_maps(
        state.observations, state.geometry, offset_max=section["offset_max"],
        safe_energy=section.get("safe_energy"), chunks=section.get("chunks"),
    )
    return squash_energy(per_obs[["counts", "background"]], spectrum=section.get("squash", {}).get("spectrum"))


def stage_significance(state: AnalysisState) -> None:
    """Ring background, correlated Li & Ma significance and excess; significance.fits and .json."""
    from xgamma.estimators.distribution import significance_distribution, significance_summary
    from xgamma.estimators.significance import significance_maps
    from xgamma.io.fits_maps import write_maps
    from xgamma.plugin.registry import get_registry

    config = state.config
    ring = dict(config.get("ring", {}))
    method = ring.pop("method", "ring")
    estimator_cls = get_registry().get_background_estimator(method)
    accepted = set(inspect.signature(estimator_cls).parameters)
    unknown = sorted(set(ring) - accepted)
    if unknown:
        raise ConfigError(f"ring.{unknown[0]}: not a parameter of background estimator {method!r} "
                          f"(accepts {sorted(accepted)})")
    exclusion = build_exclusion(config, state.geometry)
    images = observation_images(state)
    radius = config.get("significance", {}).get("correlation_radius", "0.1 deg")
    section = config.get("exclusion", {})
    if "threshold" in section:
        # Grow the exclusion around significant pixels, iterating background -> significance -> mask.
        from xgamma.background.exclusion import iterate_exclusion_mask

        exclusion, iterations = iterate_exclusion_mask(
            images, background_estimator=estimator_cls(exclusion=exclusion, **ring), correlation_radius=radius,
            threshold=section["threshold"], dilation=section.get("dilation", "0.2 deg"), exclusion=exclusion,
            max_iterations=section.get("max_iterations", 5),
        )
        state.summary["exclusion_iterations"] = iterations
    estimator = estimator_cls(exclusion=exclusion, **ring)
    result = estimator.run(images)
    if "obs_id" in result.dims:  # an estimator that leaves observations unstacked: sum them
        result = result.sum("obs_id", keep_attrs=True)
    maps = significance_maps(result, correlation_radius=radius)
    from xgamma.workflow.progress import compute

    (result, maps) = compute(result, maps, progress=state.progress)
    products = {name: result[name] for name in ("counts", "off", "alpha", "background") if name in result}
    products.update(excess=maps["excess"], significance=maps["significance"], exclusion=exclusion.astype(np.int16))
    import xarray as xr

    from xgamma.maps import with_units

    dataset = xr.Dataset({name: with_units(_as_image(da), da.attrs.get("units", ""), name=name)
                          for name, da in products.items()})
    state.significance = dataset
    state.products["significance"] = write_maps(dataset, state.output / "significance.fits", overwrite=True)

    exclusion_mask = dataset["exclusion"].astype(bool)
    payload = significance_summary(dataset.assign(exclusion=exclusion_mask))
    state.distribution = significance_distribution(dataset["significance"], exclusion=exclusion_mask)
    state.products["significance_json"] = _write_json(state.output / "significance.json", payload)
    state.summary["significance"] = payload


def _as_image(da: xr.DataArray) -> xr.DataArray:
    """Ensure a length-1 energy dim (FITS layout of images)."""
    if "energy" in da.dims:
        return da.transpose("energy", "lat", "lon")
    return da.expand_dims("energy", 0) if "energy" in da.coords else da


def stage_plots(state: AnalysisState) -> None:
    """PNG plots of every product made so far (``plots: true``)."""
    from xgamma.plotting import save_analysis_plots

    products: dict[str, Any] = {}
    if state.images is not None:
        products.update(counts=state.images["counts"], background_model=state.images["background"])
    if state.significance is not None:
        products.update(excess=state.significance["excess"], significance=state.significance["significance"],
                        exclusion=state.significance["exclusion"], distribution=state.distribution)
    if state.residuals is not None:
        products.update(residuals=state.residuals)
    if state.fit_result is not None:
        products.update(fit_result=state.fit_result)
    paths = save_analysis_plots(products, state.output / "plots")
    for path in paths:
        state.products[f"plot {path.stem}"] = path
