"""Lookup of model classes by xgamma name or Gammapy YAML tag (the single place to resolve them).

Look-ups go through the plugin registry (:func:`xgamma.plugin.get_registry`), so models added by
installed plugins (``xgamma_spectral_models`` / ``xgamma_spatial_models`` hooks) resolve here too.
The built-ins are registered by :mod:`xgamma.plugin.builtins` through the same hooks.
"""

from __future__ import annotations

__all__ = ["model_class", "get_spectral_model_class", "get_spatial_model_class"]


def model_class(kind: str, name: str) -> type:
    """The model class of ``kind`` (``"spectral_model"`` or ``"spatial_model"``) registered as ``name``.

    ``name`` is an xgamma name (``"powerlaw2"``, ``"point"``) or a Gammapy tag
    (``"PowerLaw2SpectralModel"``), case-insensitive.

    Raises
    ------
    ModelError
        For an unknown name; the message lists the known ones.
    PluginError
        If the name is claimed by two plugins, or is unknown while a plugin failed to load.
    """
    from xgamma.plugin import get_registry  # lazy: the registry is built on first look-up

    return get_registry().get(kind, name)


def get_spectral_model_class(name: str) -> type:
    """Spectral model class for an xgamma name or Gammapy tag (see `model_class`)."""
    return model_class("spectral_model", name)


def get_spatial_model_class(name: str) -> type:
    """Spatial model class for an xgamma name or Gammapy tag (see `model_class`)."""
    return model_class("spatial_model", name)
