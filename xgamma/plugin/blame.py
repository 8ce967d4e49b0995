"""Which installed plugin a piece of code (or an exception) comes from.

A plugin component that fails while it is *used* (an estimator whose ``run`` raises, an IRF
reader returning garbage, a model class without parameters) must be reported like a plugin that
fails to load: naming the plugin and its distribution. `plugin_of` maps a class, function or
module to the third-party plugin whose package holds it; `blamed_plugin` finds the plugin whose
code raised an exception (the innermost frame of its traceback in a plugin's package). The
command line's one error path (`xgamma.cli.main`) uses it for every unexpected exception.
"""

from __future__ import annotations

import types
from typing import Any

from xgamma.plugin.types import PluginInfo

__all__ = ["plugin_of", "blamed_plugin", "describe_component"]


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _plugin_packages() -> dict[str, PluginInfo]:
    """Top-level package name -> third-party plugin, for every registered component."""
    from xgamma.plugin.session import get_registry

    registry = get_registry()
    packages: dict[str, PluginInfo] = {}
    for kind in ("spectral_model", "spatial_model", "background_estimator", "irf_reader"):
        for component in registry.components(kind).values():
            info = component.plugin
            if info.builtin:
                continue
            target = component.entry.target
            module = target.split(":", 1)[0] if isinstance(target, str) else getattr(target, "__module__", None)
            for name in (module, info.module):
                if name and _top(name) != "xgamma":
                    packages.setdefault(_top(name), info)
    return packages


def plugin_of(obj: Any) -> PluginInfo | None:
    """The third-party plugin providing ``obj`` (a class, instance, function or module name), or None.

    Built-in components (and anything inside the ``xgamma`` package) give None.
    """
    if isinstance(obj, str):
        module = obj
    elif isinstance(obj, types.ModuleType):
        module = obj.__name__
    else:
        module = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", "")
    if not module or _top(module) == "xgamma":
        return None
    try:
        return _plugin_packages().get(_top(module))
    except Exception:  # noqa: BLE001 - a broken registry must not hide the error being reported
        return None


def blamed_plugin(error: BaseException) -> PluginInfo | None:
    """The plugin whose code raised ``error``: the innermost traceback frame in a plugin's package."""
    try:
        packages = _plugin_packages()
    except Exception:  # noqa: BLE001 - as in plugin_of
        return None
    culprit = None
    seen: set[int] = set()
    while error is not None and id(error) not in seen:  # the exception and the ones it chains
        seen.add(id(error))
        traceback = error.__traceback__
        while traceback is not None:
            module = traceback.tb_frame.f_globals.get("__name__", "")
            if _top(module) in packages:
                culprit = packages[_top(module)]
            traceback = traceback.tb_next
        if culprit is not None:
            return culprit
        error = error.__cause__ or error.__context__
    return None


def describe_component(label: str, name: str, obj: Any) -> str:
    """``"background estimator 'fov' (plugin 'x' (dist x-ext 1.2))"``, or without the plugin part
    for built-ins: the phrase error messages use for a component."""
    info = plugin_of(obj)
    return f"{label} {name!r}" + (f" from {info.describe()}" if info is not None else "")
