"""Base class of all parametric models (spectral, spatial, background)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from xgamma.exceptions import ModelError
from xgamma.models.parameter import Parameter, ParameterSpec

__all__ = ["Model"]


class Model:
    """A set of named parameters declared on the class.

    Subclasses declare :class:`~xgamma.models.parameter.ParameterSpec` attributes and list
    their names in ``_params`` (the order of the Gammapy YAML files). ``repr``, ``==``,
    ``copy`` and ``to_dict`` are generated from ``_params``.
    """

    tag: ClassVar[str] = ""
    gammapy_tags: ClassVar[tuple[str, ...]] = ()
    _params: ClassVar[tuple[str, ...]] = ()

    def _init_params(self, values: dict[str, Any]) -> None:
        """Set every declared parameter from ``values`` (None: the class default)."""
        self._parameters: dict[str, Parameter] = {}
        for name in self._params:
            spec: ParameterSpec = getattr(type(self), name)
            self._parameters[name] = spec.make(values.get(name))

    @property
    def parameters(self) -> list[Parameter]:
        """The parameters, in declaration order."""
        return [self._parameters[name] for name in self._params]

    @property
    def values(self) -> np.ndarray:
        """Parameter values in canonical units, declaration order (float array)."""
        return np.array([self._parameters[name].value for name in self._params])

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
        if len(values) != len(self._params):
            raise ModelError(f"{type(self).__name__}: expected {len(self._params)} values, got {len(values)}")
        for name, value in zip(self._params, values):
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
