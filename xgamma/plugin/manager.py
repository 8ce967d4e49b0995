"""The plugin manager: discovers plugins through entry points and calls their hooks safely.

Nothing here runs at ``import xgamma``: :func:`create_plugin_manager` builds a manager, and
`xgamma.plugin.session` keeps the session's one (cached, rebuilt by ``refresh_plugins``).
Hooks are called through pluggy (``pm.subset_hook_caller``, one plugin at a time), so hook
wrappers and ``pm.enable_tracing()`` apply.

Unlike ``pluggy.PluginManager.load_setuptools_entrypoints``, a plugin that fails to import,
declares a misspelled hook, raises in a hook or returns something that is not an entry does not
stop the others: the failure is recorded with the plugin's name, its distribution and version
and the cause, a :class:`~xgamma.plugin.types.PluginWarning` is emitted, and the registry raises
:class:`~xgamma.exceptions.PluginError` with that description when a component it might have
provided is requested.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from xgamma.plugin import spec
from xgamma.plugin.types import (BackgroundEstimatorEntry, ComponentKind, IRFReaderEntry, PluginFailure, PluginInfo,
                                 PluginWarning, SpatialModelEntry, SpectralModelEntry)

__all__ = [
    "BUILTIN_PLUGIN_NAME",
    "DISABLE_ENV_VAR",
    "ENTRY_POINT_GROUP",
    "HOOKS",
    "PluginManager",
    "create_plugin_manager",
    "disabled_plugins",
]

ENTRY_POINT_GROUP = "xgamma"
DISABLE_ENV_VAR = "XGAMMA_DISABLE_PLUGINS"
BUILTIN_PLUGIN_NAME = "builtins"

#: kind -> (hook name, entry type): the single table the manager and registry iterate.
HOOKS: dict[ComponentKind, tuple[str, type]] = {
    "spectral_model": ("xgamma_spectral_models", SpectralModelEntry),
    "spatial_model": ("xgamma_spatial_models", SpatialModelEntry),
    "background_estimator": ("xgamma_background_estimators", BackgroundEstimatorEntry),
    "irf_reader": ("xgamma_irf_readers", IRFReaderEntry),
}


def disabled_plugins(value: str | None = None) -> frozenset[str]:
    """Plugin names blocked by ``XGAMMA_DISABLE_PLUGINS`` (comma-separated, blanks ignored)."""
    raw = os.environ.get(DISABLE_ENV_VAR, "") if value is None else value
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginManager(pluggy.PluginManager):
    """A ``pluggy.PluginManager`` for project ``"xgamma"`` that records plugin provenance and failures.

    Attributes
    ----------
    infos : dict of str to PluginInfo
        Provenance of every registered plugin, by plugin name.
    failures : list of PluginFailure
        Plugins that could not be loaded or registered (hook-call failures are recorded by
        :meth:`collect`).
    """

    def __init__(self) -> None:
        super().__init__(spec.PROJECT_NAME)
        self.add_hookspecs(spec)
        self.infos: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []

    # -- registration ---------------------------------------------------------------------

    def _fail(self, failure: PluginFailure) -> None:
        self.failures.append(failure)
        warnings.warn(failure.message, PluginWarning, stacklevel=3)

    def register_plugin(self, plugin: Any, info: PluginInfo) -> bool:
        """Register ``plugin`` under ``info.name``; record a failure instead of raising.

        Returns ``True`` when registered. A plugin implementing a hook that xgamma does not
        specify (usually a typo such as ``xgamma_spectral_model``) is rejected.
        """
        if self.is_blocked(info.name):
            return False
        failure = self.try_register(plugin, info)
        if failure is not None:
            self._fail(failure)
        return failure is None

    def try_register(self, plugin: Any, info: PluginInfo) -> PluginFailure | None:
        """Register ``plugin`` under ``info.name``; return the failure (not recorded) or None."""
        try:
            self.register(plugin, name=info.name)
        except Exception as exc:  # pluggy.PluginValidationError, or a name clash
            return PluginFailure(info, "register", None,
                                 f"{info.describe()} cannot be registered: {_cause(exc)}", exc)
        unknown = sorted(
            caller.name for caller in (self.get_hookcallers(plugin) or []) if not caller.has_spec()
        )
        if unknown:
            self.unregister(plugin)
            known = ", ".join(hook for hook, _ in HOOKS.values())
            return PluginFailure(info, "register", None,
                                 f"{info.describe()} implements unknown hook(s) {', '.join(unknown)}; "
                                 f"xgamma hooks are: {known}")
        # `collect` calls one plugin at a time with pluggy's subset_hook_caller, which tells
        # plugins apart by attribute name: a hook implemented under another name (specname) is refused.
        callers = self.get_hookcallers(plugin) or []
        renamed = sorted(caller.name for caller in callers if not hasattr(plugin, caller.name))
        if renamed:
            self.unregister(plugin)
            return PluginFailure(info, "register", None,
                                 f"{info.describe()} implements {', '.join(renamed)} under another function name "
                                 f"(hookimpl specname); name the function after the hook")
        self.infos[info.name] = info
        return None

    def load_builtins(self) -> None:
        """Register xgamma's own components, through the same hooks as third-party plugins."""
        from xgamma.plugin import builtins
        from xgamma.version import __version__

        info = PluginInfo(BUILTIN_PLUGIN_NAME, builtins.__name__, "xgamma", __version__, builtin=True)
        self.register_plugin(builtins, info)

    def load_entrypoints(self, group: str = ENTRY_POINT_GROUP) -> int:
        """Import and register every entry point of ``group``; return how many were registered.

        Entry points are visited sorted by (distribution, name) so that conflicts are reported
        the same way on every run. Blocked plugins (``set_blocked``) are skipped unimported.
        """
        eps = metadata.entry_points(group=group)
        count = 0
        seen: dict[str, PluginInfo] = {}
        for ep in sorted(eps, key=lambda e: (_dist_name(e), e.name)):
            info = PluginInfo(ep.name, ep.value, _dist_name(ep), _dist_version(ep))
            if info.name in seen:
                if seen[info.name].distribution != info.distribution:
                    self._fail(
                        PluginFailure(info, "register", None,
                                      f"plugin name {info.name!r} is declared by two distributions: "
                                      f"{seen[info.name].describe()} and {info.describe()}; "
                                      f"uninstall one of them")
                    )
                continue  # the same distribution found twice on sys.path
            seen[info.name] = info
            if self.is_blocked(ep.name):
                continue
            if self.get_plugin(ep.name) is not None:
                self._fail(
                    PluginFailure(info, "register", None,
                                  f"{info.describe()} uses the reserved plugin name {ep.name!r}")
                )
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # noqa: BLE001 - SystemExit from a plugin must not kill us
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._fail(
                    PluginFailure(info, "load", None,
                                  f"{info.describe()} failed to load from {ep.value!r}: {_cause(exc)}",
                                  exc)
                )
                continue
            count += self.register_plugin(plugin, info)
        return count

    # -- hook calls -----------------------------------------------------------------------

    def info(self, plugin_name: str) -> PluginInfo:
        """Provenance of a registered plugin (plugins registered with plain ``register`` get one)."""
        if plugin_name not in self.infos:
            plugin = self.get_plugin(plugin_name)
            module = getattr(plugin, "__name__", type(plugin).__name__)
            self.infos[plugin_name] = PluginInfo(plugin_name, module)
        return self.infos[plugin_name]

    def collect(self, kind: ComponentKind) -> tuple[list[tuple[PluginInfo, Any]], list[PluginFailure]]:
        """Call the hook of ``kind`` on each plugin separately and validate what it returns.

        Returns
        -------
        entries : list of (PluginInfo, entry)
            Valid entries in registration order (built-ins first).
        failures : list of PluginFailure
            One per hook that raised or returned a non-iterable, and one per rejected item;
            each is also emitted as a :class:`PluginWarning`.
        """
        hook_name, entry_type = HOOKS[kind]
        caller = getattr(self.hook, hook_name)
        entries: list[tuple[PluginInfo, Any]] = []
        failures: list[PluginFailure] = []

        def fail(info: PluginInfo, message: str, exc: BaseException | None = None) -> None:
            failure = PluginFailure(info, hook_name, kind, message, exc)
            failures.append(failure)
            warnings.warn(message, PluginWarning, stacklevel=4)

        # Built-ins first whatever tryfirst/trylast say, so a plugin can never take their names.
        providers = [impl for impl in caller.get_hookimpls() if not _is_wrapper(impl)]  # wrappers only observe
        providers.sort(key=lambda impl: not self.info(impl.plugin_name).builtin)
        for impl in providers:
            info = self.info(impl.plugin_name)
            # Through pluggy (so wrappers and tracing apply), one plugin at a time: a plugin that
            # raises does not hide the others' entries, and each entry keeps its provenance.
            call = self.subset_hook_caller(hook_name, [other.plugin for other in providers if other is not impl])
            try:
                results = call()
                result = results[0] if results else None  # pluggy drops None results
                items = _as_list(result)
            except Exception as exc:
                fail(info, f"{info.describe()} raised in {hook_name}(): {_cause(exc)}", exc)
                continue
            if items is None:
                fail(info, f"{info.describe()}: {hook_name}() returned {type(result).__name__} "
                           f"{result!r:.80}, expected an iterable of {entry_type.__name__}")
                continue
            for item in items:
                if isinstance(item, entry_type):
                    entries.append((info, item))
                else:
                    fail(info, f"{info.describe()}: {hook_name}() returned {type(item).__name__} "
                               f"{item!r:.80}, expected {entry_type.__name__}")
        return entries, failures


def _is_wrapper(impl: Any) -> bool:
    return bool(impl.hookwrapper or getattr(impl, "wrapper", False))


def _as_list(result: Any) -> list[Any] | None:
    """Materialise a hook result (generators run here); ``None`` -> [], non-iterables -> None."""
    if result is None:
        return []
    if isinstance(result, (str, bytes, dict)) or not isinstance(result, Iterable):
        return None
    return list(result)


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "<unknown distribution>"


def _dist_version(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else None


def create_plugin_manager(
    *,
    builtins: bool = True,
    entrypoints: bool = True,
    disabled: Iterable[str] | None = None,
    plugins: Iterable[tuple[str, ModuleType | object]] = (),
) -> PluginManager:
    """Build a new, uncached plugin manager.

    Parameters
    ----------
    builtins : bool, optional
        Register xgamma's own components. Default is True.
    entrypoints : bool, optional
        Discover installed plugins in the entry-point group ``xgamma``. Default is True.
    disabled : iterable of str, optional
        Plugin names to block. Default is the ``XGAMMA_DISABLE_PLUGINS`` environment variable.
    plugins : iterable of (str, object), optional
        Extra ``(name, plugin)`` pairs to register (modules or objects with ``@hookimpl``
        methods), e.g. inline plugins in tests.

    Returns
    -------
    PluginManager
    """
    pm = PluginManager()
    for name in disabled_plugins() if disabled is None else disabled:
        pm.set_blocked(name)
    if builtins:
        pm.load_builtins()
    if entrypoints:
        pm.load_entrypoints()
    for name, plugin in plugins:
        pm.register_plugin(plugin, PluginInfo(name, getattr(plugin, "__name__", type(plugin).__name__)))
    pm.check_pending()  # every remaining impl has a spec (misspelled hooks were rejected above)
    return pm
