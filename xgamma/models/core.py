"""Base class of all parametric models (spectral, spatial, background)."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np

from xgamma.exceptions import ModelError
from xgamma.models.parameter import Parameter, ParameterSpec, ParamInput

__all__ = ["Model"]


def _keyword_signature(cls: type) -> inspect.Signature:
    """The inherited ``__init__`` signature with ``**values`` spelled out as the parameter names."""
    inherited = [p for p in inspect.signature(cls.__init__).parameters.values()
                 if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    declared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation="ParamInput")
                for name in cls.parameter_names]
    return inspect.Signature(inherited + declared)


class Model:
    """A set of named parameters declared on the class.

    A model class declares its parameters as `~xgamma.models.ParameterSpec` class attributes;
    `parameter_names` lists them in declaration order, base-class parameters first (a spatial
    model starts with ``lon_0``, ``lat_0``): the order of the Gammapy YAML files and of the
    arguments of ``evaluate``. A class attribute set to None removes an inherited parameter.
    ``Model.__init__(**values)`` sets every parameter (a class needs no ``__init__`` of its own:
    its signature lists the parameters as keywords); ``repr``, ``==``, ``copy`` and ``to_dict``
    follow `parameter_names`.
    """

    tag: ClassVar[str] = ""
    gammapy_tags: ClassVar[tuple[str, ...]] = ()
    parameter_names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            names += [name for name, value in vars(klass).items()
                      if isinstance(value, ParameterSpec) and name not in names]
        cls.parameter_names = tuple(name for name in names if isinstance(getattr(cls, name), ParameterSpec))
        # A class without its own __init__ shows its parameters as keywords (help(), inspect).
        cls.__signature__ = None if "__init__" in vars(cls) else _keyword_signature(cls)

    def __init__(self, **values: ParamInput) -> None:
        """Set every declared parameter from ``values`` (a missing or None value: the declared default).

        Raises
        ------
        ModelError
            For a name that is not a parameter of the model, or a bad value.
        """
        unknown = sorted(set(values) - set(self.parameter_names))
        if unknown:
            raise ModelError(f"{type(self).__name__}: unknown parameter(s) {unknown}; "
                             f"parameters are {list(self.parameter_names)}")
        self._parameters: dict[str, Parameter] = {
            name: getattr(type(self), name).make(values.get(name)) for name in self.parameter_names}

    @property
    def parameters(self) -> list[Parameter]:
        """The parameters, in declaration order."""
        return [self._parameters[name] for name in self.parameter_names]

    @property
    def values(self) -> np.ndarray:
        """Parameter values in canonical units, declaration order (float array)."""
        return np.array([self._parameters[name].value for name in self.parameter_names])

    def _extra_dict(self) -> dict[str, Any]:
        """Non-parameter fields written next to ``parameters`` (e.g. ``frame``)."""
        return {}

    def _extra_key(self) -> tuple:
        return ()

    def to_dict(self) -> dict[str, Any]:
        """Gammapy-style mapping ``{"type": tag, ..., "parameters": [...]}``."""
        out: dict[str, Any] = {"type": self.gammapy_tags[0] if self.gammapy_tags else self.tag}
        out.update(self._extra_dict())
        out["parameters"] = [p.to_dict() for p in self.parameters]
        return out

    def copy(self) -> Model:
        """Deep copy (parameters are copied)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._parameters = {k: p.copy() for k, p in self._parameters.items()}
        return new

    def set_values(self, values: np.ndarray) -> None:
        """Set all parameter values (canonical units, declaration order)."""
        if len(values) != len(self.parameter_names):
            raise ModelError(f"{type(self).__name__}: expected {len(self.parameter_names)} values, got {len(values)}")
        for name, value in zip(self.parameter_names, values):
            self._parameters[name].value = value

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.parameters == other.parameters and self._extra_key() == other._extra_key()

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        items = []
        for p in self.parameters:
            unit = "" if p.unit.to_string() == "" else f" {p.unit}"
            items.append(f"{p.name}={p.value:.6g}{unit}{' (frozen)' if p.frozen else ''}")
        items += [f"{k}={v!r}" for k, v in self._extra_dict().items()]
        return f"{type(self).__name__}({', '.join(items)})"
