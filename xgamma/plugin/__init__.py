"""Plugins: how third-party packages add models, background estimators and IRF readers.

Writing a plugin
----------------
1. Write hook implementations in a module, decorated with :data:`hookimpl`, each returning
   (or yielding) typed entries::

       # mypkg/plugin.py
       from xgamma.plugin import SpectralModelEntry, hookimpl

       @hookimpl
       def xgamma_spectral_models():
           yield SpectralModelEntry(name="sbpl", cls="mypkg.spectral:SmoothBrokenPowerLaw")

2. Declare the module in the entry-point group ``xgamma`` of your ``pyproject.toml``::

       [project.entry-points.xgamma]
       mypkg = "mypkg.plugin"

3. ``pip install`` the package: nothing needs importing. ``xgamma plugins`` lists the
   components, and ``type: sbpl`` works in model YAML files and configs.

The hooks are specified (with complete examples) in :mod:`xgamma.plugin.spec`; the guide is
``docs/plugins.md``; ``plugins/xgamma-example`` is a package to copy. Test components with the
conformance suite in :mod:`xgamma.testing`.

Set ``XGAMMA_DISABLE_PLUGINS=name1,name2`` to block installed plugins by entry-point name.
"""

from __future__ import annotations

from xgamma.plugin.manager import DISABLE_ENV_VAR, ENTRY_POINT_GROUP, PluginManager, create_plugin_manager
from xgamma.plugin.registry import PluginRow, Registry
from xgamma.plugin.session import (
    format_plugin_table,
    get_plugin_manager,
    get_registry,
    list_plugins,
    refresh_plugins,
    register_plugin,
)
from xgamma.plugin.spec import hookimpl
from xgamma.plugin.types import (
    BackgroundEstimatorEntry,
    Component,
    EstimatorPluginError,
    IRFPluginError,
    IRFReaderEntry,
    ModelPluginError,
    PluginFailure,
    PluginInfo,
    PluginWarning,
    SpatialModelEntry,
    SpectralModelEntry,
)

__all__ = [
    "DISABLE_ENV_VAR",
    "ENTRY_POINT_GROUP",
    "BackgroundEstimatorEntry",
    "Component",
    "EstimatorPluginError",
    "IRFPluginError",
    "IRFReaderEntry",
    "ModelPluginError",
    "PluginFailure",
    "PluginInfo",
    "PluginManager",
    "PluginRow",
    "PluginWarning",
    "Registry",
    "SpatialModelEntry",
    "SpectralModelEntry",
    "create_plugin_manager",
    "format_plugin_table",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "list_plugins",
    "refresh_plugins",
    "register_plugin",
]
