"""The session's plugin manager and component registry, built on first use and cached.

:func:`get_plugin_manager` discovers the built-ins and the installed plugins once;
:func:`get_registry` builds the name registry from it; :func:`register_plugin` adds a plugin for
this session (notebooks, tests) and :func:`refresh_plugins` forgets both so that the next call
rediscovers what is installed (e.g. after ``pip install`` in a running session).
:func:`list_plugins` and :func:`format_plugin_table` (``xgamma plugins``) show its registry.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from xgamma.exceptions import PluginError
from xgamma.plugin.manager import DISABLE_ENV_VAR, PluginManager, create_plugin_manager
from xgamma.plugin.registry import PluginRow, Registry
from xgamma.plugin.types import PluginInfo

__all__ = ["get_plugin_manager", "get_registry", "register_plugin", "refresh_plugins", "list_plugins",
           "format_plugin_table"]


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> PluginManager:
    """The session's plugin manager: built-ins plus installed plugins, built on first call.

    Raises nothing for broken plugins: they are reported as
    :class:`~xgamma.plugin.types.PluginWarning` and kept in ``.failures``.
    """
    return create_plugin_manager()


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The session's component registry (built on first call from :func:`get_plugin_manager`).

    Call :func:`refresh_plugins` to rebuild it after installing a plugin.
    """
    return Registry(get_plugin_manager())


def register_plugin(plugin: Any, *, name: str) -> PluginInfo:
    """Register a plugin in the session (a module or object with ``@hookimpl`` functions).

    For notebooks and tests: the components become available through :func:`get_registry` at
    once (until :func:`refresh_plugins`).

    Parameters
    ----------
    plugin : module or object
        Holds the hook implementations.
    name : str
        Plugin name (shown by ``xgamma plugins``; must not be taken).

    Raises
    ------
    PluginError
        If the name is taken or blocked, or the plugin implements an unknown hook.
    """
    pm = get_plugin_manager()
    if pm.is_blocked(name):
        raise PluginError(f"plugin name {name!r} is blocked ({DISABLE_ENV_VAR})")
    info = PluginInfo(name, getattr(plugin, "__name__", type(plugin).__name__))
    failure = pm.try_register(plugin, info)
    if failure is not None:
        raise failure.error()
    get_registry.cache_clear()
    return info


def refresh_plugins() -> None:
    """Forget the cached manager and registry; the next use rediscovers installed plugins."""
    get_plugin_manager.cache_clear()
    get_registry.cache_clear()
    # New distributions installed in this session must be visible to importlib.metadata.
    importlib.invalidate_caches()


def list_plugins(registry: Registry | None = None) -> list[PluginRow]:
    """Rows ``(kind, name, plugin, distribution, version)`` of every registered component.

    Cheap: entries holding import references are not imported.
    """
    return (registry or get_registry()).rows()


def format_plugin_table(registry: Registry | None = None) -> str:
    """The text printed by ``xgamma plugins``: a component table, then any plugin failures."""
    registry = registry or get_registry()
    header = PluginRow("KIND", "NAME", "PLUGIN", "DISTRIBUTION", "VERSION", "ALIASES")
    rows = [header, *registry.rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if registry.failures:
        lines += ["", f"{len(registry.failures)} problem(s):"]
        lines += [f"  - {failure.message}" for failure in registry.failures]
    return "\n".join(lines) + "\n"
