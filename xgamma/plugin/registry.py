"""The component registry: every model, background estimator and IRF reader, by name.

:class:`Registry` merges the entries all plugins (built-ins included) return from their hooks.
Look-ups are case-insensitive and accept aliases (e.g. Gammapy tags). Model YAML files,
``xgamma run`` configs and the Python API resolve ``type:`` names through it.

Name conflicts
    A name or alias already taken by a built-in cannot be replaced: the later entry is rejected
    with a :class:`~xgamma.plugin.types.PluginWarning`, and the built-in stays. When two
    third-party plugins claim the same name, the name becomes ambiguous: requesting it raises
    :class:`~xgamma.exceptions.PluginError` naming both providers and how to disable one.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

from xgamma.exceptions import EstimatorError, IRFError, ModelError, PluginError, XgammaError
from xgamma.plugin.manager import DISABLE_ENV_VAR, HOOKS, PluginManager
from xgamma.plugin.types import (
    Component,
    ComponentKind,
    PluginFailure,
    PluginInfo,
    PluginWarning,
    plugin_error_class,
)

__all__ = [
    "PluginRow",
    "Registry",

]

_LABELS: dict[ComponentKind, str] = {
    "spectral_model": "spectral model",
    "spatial_model": "spatial model",
    "background_estimator": "background estimator",
    "irf_reader": "IRF reader",
}
_UNKNOWN_ERRORS: dict[ComponentKind, type[XgammaError]] = {
    "spectral_model": ModelError,
    "spatial_model": ModelError,
    "background_estimator": EstimatorError,
    "irf_reader": IRFError,
}


class PluginRow(NamedTuple):
    """One line of ``xgamma plugins``."""

    kind: str
    name: str
    plugin: str
    distribution: str
    version: str
    aliases: str = ""  # other names that resolve to the component (Gammapy tags...), comma-separated


class Registry:
    """All registered components, built from a plugin manager's hook results.

    Parameters
    ----------
    manager : PluginManager
        Usually :func:`~xgamma.plugin.get_plugin_manager`; tests pass a fresh one from
        :func:`~xgamma.plugin.create_plugin_manager`.

    Attributes
    ----------
    failures : list of PluginFailure
        Plugins that failed to load, hooks that raised or returned bad entries, and rejected
        duplicate names (each was also emitted as a warning).
    """

    def __init__(self, manager: PluginManager) -> None:
        if not isinstance(manager, PluginManager):
            raise PluginError(f"Registry needs an xgamma PluginManager, got {type(manager).__name__}")
        self.manager = manager
        self.failures: list[PluginFailure] = list(manager.failures)
        self._components: dict[ComponentKind, dict[str, Component]] = {}
        self._keys: dict[ComponentKind, dict[str, str]] = {}  # name or alias -> name
        self._ambiguous: dict[ComponentKind, dict[str, PluginFailure]] = {}
        for kind in HOOKS:
            self._build(kind)

    # -- building -------------------------------------------------------------------------

    def _build(self, kind: ComponentKind) -> None:
        entries, failures = self.manager.collect(kind)
        self.failures.extend(failures)
        components: dict[str, Component] = {}
        keys: dict[str, str] = {}
        ambiguous: dict[str, PluginFailure] = {}
        label = _LABELS[kind]
        for info, entry in entries:
            wanted = [entry.name, *entry.aliases]
            taken = [k for k in wanted if k in keys or k in ambiguous]
            if not taken:
                component = Component(kind, entry, info)
                components[entry.name] = component
                keys.update(dict.fromkeys(wanted, entry.name))
                continue
            key = taken[0]
            owner = (components[keys[key]].plugin if key in keys
                     else ambiguous[key].plugin)
            if owner.builtin or owner.name == info.name:
                message = (
                    f"{label} {entry.name!r} from {info.describe()} is rejected: the name "
                    f"{key!r} is already provided by {owner.describe()}"
                )
            else:
                message = (
                    f"{label} name {key!r} is provided by both {owner.describe()} and "
                    f"{info.describe()}; uninstall one, or disable it with "
                    f"{DISABLE_ENV_VAR}={info.name}"
                )
                # Neither provider may silently win: drop the first one's component too and
                # make the contested keys raise an error naming both.
                if key in keys:
                    dropped = components.pop(keys[key])
                    for k in [dropped.name, *dropped.aliases]:
                        keys.pop(k, None)
                for k in taken:
                    if k not in keys:  # keys still held by a built-in stay with it
                        ambiguous[k] = PluginFailure(owner, "conflict", kind, message)
            failure = PluginFailure(info, "conflict", kind, message)
            self.failures.append(failure)
            warnings.warn(message, PluginWarning, stacklevel=3)
        self._components[kind] = components
        self._keys[kind] = keys
        self._ambiguous[kind] = ambiguous

    # -- access ---------------------------------------------------------------------------

    def components(self, kind: ComponentKind) -> dict[str, Component]:
        """Registered components of ``kind`` by canonical name (a copy)."""
        return dict(self._components[kind])

    # Components of each kind by canonical name; ``component.load()`` returns the class (or reader).
    spectral_models = property(lambda self: self.components("spectral_model"), doc="Spectral models by name.")
    spatial_models = property(lambda self: self.components("spatial_model"), doc="Spatial models by name.")
    background_estimators = property(lambda self: self.components("background_estimator"),
                                     doc="Background estimators by name.")
    irf_readers = property(lambda self: self.components("irf_reader"), doc="IRF readers by HDU class.")

    def find(self, kind: ComponentKind, name: str) -> Component:
        """The component registered as ``name`` (or an alias of it), without importing it.

        Raises
        ------
        PluginError
            ``name`` is claimed by two plugins, or is unknown while some plugin failed to load
            (the message describes each failure: plugin, distribution, cause). The error also
            derives from ModelError/EstimatorError/IRFError according to ``kind``.
        ModelError, EstimatorError, IRFError
            ``name`` is unknown (the message lists the known names).
        """
        if kind not in HOOKS:
            raise PluginError(f"unknown component kind {kind!r}; expected one of {sorted(HOOKS)}")
        label = _LABELS[kind]
        if not isinstance(name, str):
            raise _UNKNOWN_ERRORS[kind](f"{label} name must be a str, got {type(name).__name__} {name!r}")
        key = name.strip().lower()
        if key in self._ambiguous[kind]:
            raise self._ambiguous[kind][key].error(kind)
        if key in self._keys[kind]:
            return self._components[kind][self._keys[kind][key]]
        known = ", ".join(sorted(self._components[kind])) or "(none)"
        message = f"unknown {label} {name!r}; known {label}s: {known}"
        broken = [f for f in self.failures
                  if f.stage != "conflict" and f.kind in (None, kind)]
        if broken:
            details = "; ".join(f.message for f in broken)
            err = plugin_error_class(kind)(f"{message}. It may come from a plugin that failed: {details}")
            raise err from broken[0].cause
        raise _UNKNOWN_ERRORS[kind](
            f"{message}. Run `xgamma plugins` to list what is installed, or install a plugin "
            f"providing {name!r}"
        )

    def get(self, kind: ComponentKind, name: str) -> Any:
        """The class (or reader) registered as ``name``; see :meth:`find` for errors."""
        return self.find(kind, name).load()

    def get_spectral_model(self, name: str) -> type:
        """Spectral model class for ``name`` or an alias (e.g. ``"PowerLaw2SpectralModel"``)."""
        return self.get("spectral_model", name)

    def get_spatial_model(self, name: str) -> type:
        """Spatial model class for ``name`` or an alias (e.g. ``"PointSpatialModel"``)."""
        return self.get("spatial_model", name)

    def get_background_estimator(self, name: str) -> type:
        """Background estimator class for ``name`` (e.g. ``"ring"``)."""
        return self.get("background_estimator", name)

    def get_irf_reader(self, hdu_class: str) -> Any:
        """Reader for an IRF HDU class (e.g. ``"aeff_2d"``); unknown ones raise IRFError."""
        return self.get("irf_reader", hdu_class)

    def raise_for_failures(self) -> None:
        """Raise every recorded plugin problem at once (strict mode, e.g. a plugin's CI).

        Raises
        ------
        ExceptionGroup
            Of :class:`~xgamma.exceptions.PluginError`, one per failure (load errors, hooks
            that raised or returned bad entries, rejected duplicate names), each chained to
            its cause. Nothing is raised when all plugins loaded cleanly.
        """
        if self.failures:
            raise ExceptionGroup(f"{len(self.failures)} xgamma plugin problem(s)",
                                 [failure.error() for failure in self.failures])

    def rows(self) -> list[PluginRow]:
        """One :class:`PluginRow` per registered component, sorted by kind then name."""
        rows = []
        for kind, components in self._components.items():
            for name in sorted(components):
                info: PluginInfo = components[name].plugin
                rows.append(PluginRow(kind, name, info.name, info.distribution or "-",
                                      info.version or "-", ", ".join(components[name].aliases)))
        return rows

    def __repr__(self) -> str:
        counts = ", ".join(f"{kind}s={len(c)}" for kind, c in self._components.items())
        return f"<Registry {counts}, failures={len(self.failures)}>"
