"""Lookup of model classes by xgamma name or Gammapy YAML tag (the single place to resolve them).

Look-ups go through the plugin registry (:func:`xgamma.plugin.get_registry`), so models added by
installed plugins (``xgamma_spectral_models`` / ``xgamma_spatial_models`` hooks) resolve here too.
The built-ins are registered by :mod:`xgamma.plugin.builtins` through the same hooks.
"""

from __future__ import annotations

__all__ = ["get_spectral_model_class", "get_spatial_model_class"]


def get_spectral_model_class(name: str) -> type:
    """Spectral model class for an xgamma name (``"powerlaw2"``) or Gammapy tag (``"PowerLaw2SpectralModel"``).

    Raises
    ------
    ModelError
        For an unknown name; the message lists the known ones.
    PluginError
        If the name is claimed by two plugins, or is unknown while a plugin failed to load.
    """
    from xgamma.plugin import get_registry  # lazy: the registry is built on first look-up

    return get_registry().get_spectral_model(name)


def get_spatial_model_class(name: str) -> type:
    """Spatial model class for an xgamma name (``"point"``) or Gammapy tag (``"PointSpatialModel"``).

    Raises
    ------
    ModelError
        For an unknown name; the message lists the known ones.
    PluginError
        If the name is claimed by two plugins, or is unknown while a plugin failed to load.
    """
    from xgamma.plugin import get_registry

    return get_registry().get_spatial_model(name)
