"""Typed records that plugin hooks return, and the provenance records the manager keeps.

A hook (see :mod:`xgamma.plugin.spec`) returns an iterable of *entries*: small frozen
dataclasses that name one component and point at the object implementing it. Names are
normalised in ``__post_init__`` (stripped, lower-cased) and validated, so ``"PowerLaw"`` and
``"powerlaw"`` are the same registry key.

The object may be given directly (``cls=MyModel``) or as an import reference string
``"package.module:MyModel"``. A string keeps plugin discovery and ``xgamma plugins`` cheap: the
module is imported only when the component is requested.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from xgamma.exceptions import EstimatorError, IRFError, ModelError, PluginError, XgammaWarning

__all__ = [
    "BackgroundEstimatorEntry",
    "Component",
    "ComponentKind",
    "EstimatorPluginError",
    "IRFPluginError",
    "ModelPluginError",
    "IRFReaderEntry",
    "PluginFailure",
    "PluginInfo",
    "PluginWarning",
    "SpatialModelEntry",
    "SpectralModelEntry",
    "load_reference",
]

ComponentKind = Literal["spectral_model", "spatial_model", "background_estimator", "irf_reader"]

# Registry keys: lowercase ASCII, starting with a letter; "." "_" "-" allowed inside so that
# Gammapy tags ("PowerLaw2SpectralModel") and dotted names ("hess.bkg_3d") fit.
_NAME_RE = re.compile(r"^[a-z][a-z0-9_.\-]*$")
# "package.module:attr.sub" (the entry-point object-reference syntax).
_REF_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class PluginWarning(XgammaWarning):
    """A plugin could not be loaded or one of its entries was rejected (the rest still load)."""


# A plugin problem met while resolving a component is both a PluginError and the error the
# caller of that look-up expects (``except ModelError`` in a model-file reader still works).
class ModelPluginError(PluginError, ModelError):
    """A model name cannot be resolved because of a plugin problem (conflict, failed plugin)."""


class EstimatorPluginError(PluginError, EstimatorError):
    """A background estimator cannot be resolved because of a plugin problem."""


class IRFPluginError(PluginError, IRFError):
    """An IRF reader cannot be resolved because of a plugin problem."""


def plugin_error_class(kind: str | None) -> type[PluginError]:
    """The PluginError subclass for a component kind (plain PluginError for None)."""
    return {
        "spectral_model": ModelPluginError,
        "spatial_model": ModelPluginError,
        "background_estimator": EstimatorPluginError,
        "irf_reader": IRFPluginError,
    }.get(kind or "", PluginError)


def _normalise_name(value: Any, *, field_name: str, record: str) -> str:
    if not isinstance(value, str):
        raise PluginError(
            f"{record}.{field_name} must be a str, got {type(value).__name__} {value!r}"
        )
    name = value.strip().lower()
    if not _NAME_RE.match(name):
        raise PluginError(
            f"{record}.{field_name}={value!r} is not a valid registry name: expected lowercase "
            "letters, digits, '_', '-' or '.', starting with a letter (e.g. 'powerlaw2')"
        )
    return name


def _check_target(value: Any, *, field_name: str, record: str, want_class: bool) -> None:
    if isinstance(value, str):
        if not _REF_RE.match(value):
            raise PluginError(
                f"{record}.{field_name}={value!r} is not an import reference of the form "
                "'package.module:Name'"
            )
        return
    if want_class and not isinstance(value, type):
        raise PluginError(
            f"{record}.{field_name} must be a class or a 'package.module:Name' string, "
            f"got {type(value).__name__} {value!r}"
        )
    if not want_class and not callable(value):
        raise PluginError(
            f"{record}.{field_name} must be callable or a 'package.module:name' string, "
            f"got {type(value).__name__} {value!r}"
        )


def load_reference(ref: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the object it names.

    Raises
    ------
    ImportError, AttributeError
        When the module or attribute does not exist (the registry wraps these in
        :class:`~xgamma.exceptions.PluginError` naming the providing plugin).
    """
    module_name, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class _ModelEntry:
    name: str
    cls: type | str
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        record = type(self).__name__
        object.__setattr__(self, "name", _normalise_name(self.name, field_name="name", record=record))
        _check_target(self.cls, field_name="cls", record=record, want_class=True)
        if isinstance(self.aliases, str):  # a bare string would be split into letters
            raise PluginError(f"{record}.aliases must be a tuple of str, got the str {self.aliases!r}")
        aliases = tuple(
            _normalise_name(a, field_name="aliases", record=record) for a in self.aliases
        )
        # Drop the name itself and repeats, keep order (the first alias is the preferred one).
        unique = tuple(dict.fromkeys(a for a in aliases if a != self.name))
        object.__setattr__(self, "aliases", unique)

    @property
    def target(self) -> type | str:
        """The class or its import reference."""
        return self.cls


@dataclass(frozen=True)
class SpectralModelEntry(_ModelEntry):
    """A spectral model class registered under ``name``.

    Parameters
    ----------
    name : str
        Registry name, used in model YAML files and configs (``type: powerlaw2``).
        Normalised to lowercase.
    cls : type or str
        The model class, or ``"package.module:Class"`` to import it only when requested.
    aliases : tuple of str, optional
        Other names resolving to the same class, e.g. Gammapy tags
        (``"PowerLaw2SpectralModel"``). Normalised to lowercase.
    """


@dataclass(frozen=True)
class SpatialModelEntry(_ModelEntry):
    """A spatial model class registered under ``name`` (fields as :class:`SpectralModelEntry`)."""


@dataclass(frozen=True)
class BackgroundEstimatorEntry:
    """A background estimator class registered under ``name``.

    Parameters
    ----------
    name : str
        Registry name (``ring: {method: ring}`` in a config). Normalised to lowercase.
    cls : type or str
        The estimator class (constructed with keyword parameters, with a method
        ``run(dataset) -> dataset``), or ``"package.module:Class"``.
    """

    name: str
    cls: type | str

    def __post_init__(self) -> None:
        record = type(self).__name__
        object.__setattr__(self, "name", _normalise_name(self.name, field_name="name", record=record))
        _check_target(self.cls, field_name="cls", record=record, want_class=True)

    aliases: ClassVar[tuple[str, ...]] = ()

    @property
    def target(self) -> type | str:
        """The class or its import reference."""
        return self.cls


@dataclass(frozen=True)
class IRFReaderEntry:
    """A reader for one IRF HDU class (the GADF ``HDUCLAS4`` value, e.g. ``"bkg_3d"``).

    Parameters
    ----------
    hdu_class : str
        HDU class handled by ``reader``; normalised to lowercase. It is the registry name.
    reader : callable or str
        ``reader(path, hdu) -> IRF object`` (FITS file path, HDU name or index), or
        ``"package.module:function"``.
    """

    hdu_class: str
    reader: Any

    def __post_init__(self) -> None:
        record = type(self).__name__
        object.__setattr__(
            self, "hdu_class", _normalise_name(self.hdu_class, field_name="hdu_class", record=record)
        )
        _check_target(self.reader, field_name="reader", record=record, want_class=False)

    aliases: ClassVar[tuple[str, ...]] = ()

    @property
    def name(self) -> str:
        """Registry name (the HDU class)."""
        return self.hdu_class

    @property
    def target(self) -> Any:
        """The reader or its import reference."""
        return self.reader


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin comes from.

    ``distribution``/``version`` are those of the installed package that declares the entry
    point (``"xgamma"`` and its version for the built-ins); ``None`` for plugins registered
    by hand (tests, notebooks).
    """

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False

    def describe(self) -> str:
        """``plugin 'foo' (dist foo-ext 1.2)``: the phrase used in every plugin error message."""
        if self.distribution is None:
            return f"plugin {self.name!r} (registered at runtime)"
        return f"plugin {self.name!r} (dist {self.distribution} {self.version})"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin, or one of its hook calls or entries, that failed.

    ``stage`` is ``"load"`` (importing the entry point), a hook name (the hook raised or returned
    something that is not an iterable of entries), or ``"conflict"`` (a duplicate name).
    ``kind`` is the component kind concerned, ``None`` when the whole plugin is lost.
    """

    plugin: PluginInfo
    stage: str
    kind: ComponentKind | None
    message: str
    cause: BaseException | None = field(default=None, compare=False)

    def error(self, kind: ComponentKind | None = None) -> PluginError:
        """A :class:`~xgamma.exceptions.PluginError` for this failure, chained to its cause.

        With ``kind`` (the component being looked up) the error also derives from the error
        of that look-up (:class:`ModelPluginError`...).
        """
        err = plugin_error_class(kind or self.kind)(self.message)
        err.__cause__ = self.cause
        return err


@dataclass(frozen=True)
class Component:
    """One registered component: the entry, its kind and the plugin providing it.

    ``load()`` returns the class (or reader function), importing it on first use when the entry
    holds an import reference.
    """

    kind: ComponentKind
    entry: Any
    plugin: PluginInfo
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(self.entry.aliases)

    def load(self) -> Any:
        """Return the implementing object; import errors raise ``PluginError`` naming the plugin."""
        if "obj" not in self._cache:
            target = self.entry.target
            if isinstance(target, str):
                try:
                    obj = load_reference(target)
                except Exception as exc:  # any import-time failure of third-party code
                    raise plugin_error_class(self.kind)(
                        f"{self.kind.replace('_', ' ')} {self.name!r} from {self.plugin.describe()} "
                        f"cannot be imported from {target!r}: {type(exc).__name__}: {exc}"
                    ) from exc
                if self.kind != "irf_reader" and not isinstance(obj, type):
                    raise plugin_error_class(self.kind)(
                        f"{self.kind.replace('_', ' ')} {self.name!r} from {self.plugin.describe()}: "
                        f"{target!r} is a {type(obj).__name__}, expected a class"
                    )
                if self.kind == "irf_reader" and not callable(obj):
                    raise IRFPluginError(
                        f"IRF reader {self.name!r} from {self.plugin.describe()}: "
                        f"{target!r} is not callable"
                    )
            else:
                obj = target
            self._cache["obj"] = obj
        return self._cache["obj"]
