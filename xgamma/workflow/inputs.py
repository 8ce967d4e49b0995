"""Python objects from the sections of a validated configuration (`xgamma.workflow.config`).

Each function reads one section and calls the public API the section maps onto (see
``docs/config.md``); errors from the components are re-raised as `ConfigError` naming the key.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xgamma.exceptions import ConfigError, XgammaError

if TYPE_CHECKING:
    import xarray as xr

    from xgamma.geometry import SkyGeometry

__all__ = ["build_geometry", "energy_true_edges", "select_observations", "build_models", "build_exclusion", "psf_spectrum",
           "background_estimator_factory"]


def build_geometry(config: Mapping[str, Any]) -> SkyGeometry:
    """`SkyGeometry` of the ``geometry`` section."""
    from xgamma.geometry import SkyGeometry, energy_edges

    section = config["geometry"]
    energy = section["energy"]
    center = section["center"]
    return SkyGeometry.create(
        center,
        width=section["width"],
        binsz=section["binsz"],
        frame=center.frame.name,
        projection=section.get("projection", "CAR"),
        energy_edges=energy_edges(energy["min"], energy["max"], energy["nbins"]),
    )


def energy_true_edges(config: Mapping[str, Any], geometry: SkyGeometry) -> Any:
    """True-energy edges of the exposure (``geometry.energy_true``; with ``fit.edisp`` and no such
    axis, the reconstructed-energy edges of ``geometry``), or None when the analysis needs none."""
    from xgamma.geometry import energy_edges

    axis = config.get("geometry", {}).get("energy_true")
    if axis is not None:
        return energy_edges(axis["min"], axis["max"], axis["nbins"])
    if config.get("fit", {}).get("edisp", False):
        return geometry.energy_edges
    return None


def select_observations(config: Mapping[str, Any]) -> list:
    """Observations of the ``data`` section (data store + selection)."""
    from xgamma.io.datastore import DataStore

    section = config["data"]
    store = DataStore(section["datastore"])
    cone = section.get("cone")
    store = store.select(
        obs_ids=section.get("obs_ids"),
        cone=(cone["center"], cone["radius"]) if cone else None,
        object_name=section.get("object"),
    )
    return store.observations()


def build_models(config: Mapping[str, Any]) -> list:
    """Sky models (``models``) and the background model (``background_model``) of the config.

    Entries of ``models`` are mappings (as in YAML) or model objects (`SkyModel`), which are kept.
    """
    from xgamma.models.io import background_model_from_dict, sky_model_from_dict

    models = []
    for i, entry in enumerate(config.get("models", [])):
        if not isinstance(entry, Mapping):
            if hasattr(entry, "parameters"):  # a model object given from Python
                models.append(entry)
                continue
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


def psf_spectrum(config: Mapping[str, Any]) -> Any:
    """The spectral model that weights the PSF over energy (``psf.spectrum``, default power law 2)."""
    from xgamma.models.io import spectral_model_from_dict

    section = config.get("psf", {})
    return spectral_model_from_dict(section.get("spectrum", {"type": "powerlaw", "index": 2.0}),
                                    where="psf.spectrum")


def build_exclusion(config: Mapping[str, Any], geometry: SkyGeometry) -> xr.DataArray:
    """Exclusion mask (True = usable for background) from ``exclusion.regions``."""
    from xgamma.background.exclusion import make_exclusion_mask

    regions = config.get("exclusion", {}).get("regions")
    try:
        return make_exclusion_mask(geometry.to_image(), regions)
    except XgammaError as error:
        raise ConfigError(f"exclusion.regions: {error}") from error


def background_estimator_factory(config: Mapping[str, Any]) -> Any:
    """``make(exclusion) -> estimator`` for the ``ring`` section (``ring.method`` names a registered estimator).

    The other keys of ``ring`` are the estimator's parameters; an unknown one is a `ConfigError`
    listing the accepted ones.
    """
    from xgamma.plugin.session import get_registry

    ring = dict(config.get("ring", {}))
    method = ring.pop("method", "ring")
    estimator_cls = get_registry().get_background_estimator(method)
    accepted = set(inspect.signature(estimator_cls).parameters)
    unknown = sorted(set(ring) - accepted)
    if unknown:
        raise ConfigError(f"ring.{unknown[0]}: not a parameter of background estimator {method!r} "
                          f"(accepts {sorted(accepted)})")

    def make(exclusion: Any) -> Any:
        return estimator_cls(exclusion=exclusion, **ring)

    return make
