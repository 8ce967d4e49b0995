"""Python objects from the sections of a validated configuration (`xgamma.workflow.config`).

Each function reads one section and calls the public API the section maps onto (see
``docs/config.md``); errors from the components are re-raised as `ConfigError` naming the key.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xgamma.exceptions import ConfigError, XgammaError
from xgamma.workflow.config import is_streamed

if TYPE_CHECKING:
    import xarray as xr

    from xgamma.geometry import SkyGeometry

__all__ = ["build_geometry", "energy_true_edges", "select_observations", "build_models", "build_exclusion",
           "psf_spectrum", "background_estimator_factory", "estimate_background", "check_map_size", "max_memory"]

#: Maps ``xgamma run`` holds in memory per voxel: counts, exposure, background (float64).
_CUBE_BYTES_PER_VOXEL = 3 * 8


def max_memory() -> int:
    """Bytes a run may hold in memory for its maps: the dask config key ``xgamma.max_memory``
    (bytes, or a string such as ``"8GB"``), else a quarter of the machine's physical memory."""
    import dask
    from dask.utils import parse_bytes

    value = dask.config.get("xgamma.max_memory", None)
    if value is not None:
        return int(parse_bytes(value)) if isinstance(value, str) else int(value)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 16 GB of memory
        return 4 * 1024**3


def check_map_size(shape: tuple[int, int], nbins: int, *, where: str = "geometry", in_memory: bool = True) -> None:
    """Refuse, before anything is allocated, an empty map or (``in_memory``) a map whose cube
    would not fit in memory (streamed outputs, ``output.format: zarr``, hold a few chunks).

    Raises
    ------
    ConfigError
        With the map size, the memory it needs, the limit (`max_memory`) and what to change.
    """
    from dask.utils import format_bytes

    n_lat, n_lon = (int(n) for n in shape)
    if min(n_lat, n_lon) < 1:
        raise ConfigError(f"{where}: the map has {n_lon} x {n_lat} pixels; the width must be at least one "
                          "pixel (binsz) in both directions")
    voxels = n_lat * n_lon * max(int(nbins), 1)
    needed, limit = voxels * _CUBE_BYTES_PER_VOXEL, max_memory()
    if in_memory and needed > limit:
        raise ConfigError(
            f"{where}: {n_lon} x {n_lat} pixels x {nbins} energy bins = {voxels:.3g} voxels; the cube of counts, "
            f"exposure and background needs {format_bytes(needed)} in memory, more than the "
            f"{format_bytes(limit)} allowed (a quarter of this machine's memory, dask config "
            "'xgamma.max_memory'): use a larger binsz, a smaller width or fewer energy bins, or stream the maps "
            "to disk chunk by chunk (output.format: zarr)"
        )


def _check_on_sky(geometry: SkyGeometry, where: str) -> None:
    """Warn when pixel centres fall outside the projection's domain (corners of an all-sky map)."""
    import warnings

    import numpy as np

    from xgamma.exceptions import XgammaWarning

    n_lat, n_lon = geometry.shape
    # The map is centred on the projection's reference point: off-sky pixels show on its border.
    x = np.concatenate([np.arange(n_lon), np.arange(n_lon), np.zeros(n_lat), np.full(n_lat, n_lon - 1)])
    y = np.concatenate([np.zeros(n_lon), np.full(n_lon, n_lat - 1), np.arange(n_lat), np.arange(n_lat)])
    with np.errstate(invalid="ignore"):
        lon, lat = geometry.pixel_to_world(x, y)
        off = ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90))
    if off.any():
        warnings.warn(f"{where}: pixels of the {geometry.projection} map fall outside the sky (e.g. its corners); "
                      "they stay 0 in every map", XgammaWarning, stacklevel=3)


def build_geometry(config: Mapping[str, Any]) -> SkyGeometry:
    """`SkyGeometry` of the ``geometry`` section."""
    from xgamma.geometry import SkyGeometry, energy_edges

    section = config["geometry"]
    energy = section["energy"]
    center = section["center"]
    binsz = section["binsz"].to_value("deg")
    shape = tuple(int(round(width.to_value("deg") / binsz)) for width in section["width"][::-1])
    check_map_size(shape, energy["nbins"], in_memory=not is_streamed(config))
    try:
        geometry = SkyGeometry.create(
            center,
            width=section["width"],
            binsz=section["binsz"],
            frame=center.frame.name,
            projection=section.get("projection", "CAR"),
            energy_edges=energy_edges(energy["min"], energy["max"], energy["nbins"]),
        )
    except XgammaError as error:
        raise ConfigError(f"geometry: {error}") from error
    _check_on_sky(geometry, "geometry")
    return geometry


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
        if "name" not in entry:  # parameters are labelled by model name
            raise ConfigError(f"models[{i}]: missing key 'name'")
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
        try:
            return estimator_cls(exclusion=exclusion, **ring)
        except XgammaError:
            raise
        except Exception as error:  # a plugin's constructor: named with its plugin
            _raise_estimator_failure(method, estimator_cls, "could not be created", error)
            raise

    return make


def _raise_estimator_failure(method: str, estimator: Any, what: str, error: BaseException) -> None:
    from xgamma.plugin.blame import plugin_of
    from xgamma.plugin.types import EstimatorPluginError

    plugin = plugin_of(estimator)
    if plugin is not None:
        raise EstimatorPluginError(f"background estimator {method!r} from {plugin.describe()} {what}: "
                                   f"{type(error).__name__}: {error}") from error


def estimate_background(estimator: Any, images: xr.Dataset, method: str) -> xr.Dataset:
    """``estimator.run(images)``, its result checked: a Dataset with ``counts`` and ``background`` maps.

    Raises
    ------
    EstimatorError
        The result is not such a Dataset, or (a plugin's estimator) ``run`` raised; the message
        names the estimator and the plugin and distribution providing it.
    """
    import xarray as xr

    from xgamma.exceptions import EstimatorError
    from xgamma.plugin.blame import describe_component

    try:
        result = estimator.run(images)
    except XgammaError:
        raise
    except Exception as error:
        _raise_estimator_failure(method, estimator, "failed", error)
        raise
    problem = None
    if not isinstance(result, xr.Dataset):
        problem = f"returned a {type(result).__name__}"
    else:
        missing = [name for name in ("counts", "background") if name not in result]
        wrong = [name for name in ("counts", "background") if name in result
                 and not {"lat", "lon"} <= set(result[name].dims)]
        if missing or wrong:
            problem = f"returned a Dataset without (lat, lon) maps {missing + wrong}"
    if problem is not None:
        from xgamma.plugin.blame import plugin_of
        from xgamma.plugin.types import EstimatorPluginError

        error_type = EstimatorPluginError if plugin_of(estimator) is not None else EstimatorError
        raise error_type(f"{describe_component('background estimator', method, estimator)} {problem}; "
                         "expected an xarray.Dataset with 'counts' and 'background' maps")
    return result
