"""Model parameters: a value in a fixed unit with bounds, a frozen flag and an error.

A model class declares its parameters with :class:`ParameterSpec` descriptors (default value,
canonical unit, default bounds and frozen state); `Model.parameter_names` lists them in order.
Each model instance holds one :class:`Parameter` per name. Values are always stored in the
canonical unit of the spec, so the physics (``evaluate`` staticmethods) works on plain floats.
"""

from __future__ import annotations

import math
from typing import Any

import astropy.units as u

from xgamma.exceptions import ModelError, UnitError

__all__ = ["Parameter", "ParameterSpec", "ParamInput", "parse_parameter_value", "unit_string"]


def unit_string(unit: u.UnitBase) -> str:
    """Unit as a compact string that astropy and Gammapy parse back (``"cm-2 s-1"``, ``"deg"``)."""
    try:
        return unit.to_string("fits")
    except (ValueError, TypeError):
        return unit.to_string()

#: What a parameter can be set from: a number, a Quantity, a string such as ``"0.1 deg"``,
#: a mapping ``{value, unit, min, max, frozen, error}`` or another :class:`Parameter`.
ParamInput = Any


class Parameter:
    """One model parameter.

    Parameters
    ----------
    name : str
        Parameter name (e.g. ``"amplitude"``).
    value : float
        Value, in ``unit``.
    unit : str or astropy.units.Unit
        Canonical unit of the parameter (fixed for its lifetime).
    min, max : float
        Bounds in ``unit``; NaN means unbounded.
    frozen : bool
        Whether the parameter is held fixed in fits.
    error : float
        1-sigma error in ``unit`` (0 when unknown).

    Raises
    ------
    ModelError
        If the value is not finite or ``min > max``.
    """

    __slots__ = ("name", "_value", "unit", "min", "max", "frozen", "error")

    def __init__(
        self,
        name: str,
        value: float,
        unit: str | u.UnitBase = "",
        *,
        min: float = math.nan,  # noqa: A002 - the Gammapy/YAML field name
        max: float = math.nan,  # noqa: A002
        frozen: bool = False,
        error: float = 0.0,
    ) -> None:
        self.name = name
        self.unit = u.Unit(unit)
        self.min = float(min)
        self.max = float(max)
        if self.min > self.max:
            raise ModelError(f"parameter {name!r}: min={self.min} > max={self.max}")
        self.frozen = bool(frozen)
        self.error = float(error)
        self.value = value

    @property
    def value(self) -> float:
        """Value in :attr:`unit` (float)."""
        return self._value

    @value.setter
    def value(self, value: float) -> None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ModelError(f"parameter {self.name!r}: value {value!r} is not a number") from None
        if not math.isfinite(value):
            raise ModelError(f"parameter {self.name!r}: value {value} is not finite")
        self._value = value

    @property
    def quantity(self) -> u.Quantity:
        """Value as an astropy Quantity."""
        return u.Quantity(self._value, self.unit)

    def copy(self) -> Parameter:
        """Independent copy."""
        return Parameter(self.name, self._value, self.unit, min=self.min, max=self.max,
                         frozen=self.frozen, error=self.error)

    def to_dict(self) -> dict[str, Any]:
        """Gammapy-style mapping: name, value, unit, error, min, max, frozen."""
        out: dict[str, Any] = {"name": self.name, "value": self._value}
        out["unit"] = unit_string(self.unit)
        out["error"] = self.error
        out["min"] = self.min
        out["max"] = self.max
        out["frozen"] = self.frozen
        return out

    def _key(self) -> tuple:
        # NaN bounds compare equal to each other here (unbounded == unbounded).
        nan_eq = tuple("nan" if math.isnan(b) else b for b in (self.min, self.max))
        return (self.name, self._value, self.unit, nan_eq, self.frozen, self.error)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Parameter):
            return NotImplemented
        return self._key() == other._key()

    def __repr__(self) -> str:
        unit = f" {self.unit}" if self.unit != u.dimensionless_unscaled else ""
        flag = ", frozen" if self.frozen else ""
        return f"Parameter({self.name}={self._value:g}{unit}{flag})"


def _to_canonical(name: str, value: Any, unit: u.UnitBase) -> float:
    """Convert a number/Quantity/string to a float in ``unit`` (UnitError on mismatch)."""
    if isinstance(value, str):
        try:
            value = u.Quantity(value)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"parameter {name!r}: cannot parse {value!r} ({exc})") from None
    if isinstance(value, u.Quantity):
        try:
            return float(value.to_value(unit))
        except u.UnitConversionError:
            raise UnitError(
                f"parameter {name!r}: unit {value.unit} is not compatible with {unit or '(dimensionless)'}"
            ) from None
    return value  # plain number, already in the canonical unit


def parse_parameter_value(spec: ParameterSpec, value: ParamInput) -> Parameter:
    """Build a :class:`Parameter` for ``spec`` from any accepted input.

    Parameters
    ----------
    spec : ParameterSpec
        The declaring spec (gives name, canonical unit and defaults).
    value : number, Quantity, str, mapping or Parameter
        A mapping may hold ``value``, ``unit``, ``min``, ``max``, ``frozen``, ``error``
        (the Gammapy YAML fields); missing fields take the spec's defaults.

    Raises
    ------
    UnitError
        If the unit is not convertible to the spec's unit.
    ModelError
        For an unparsable value or ``min > max``.
    """
    name, unit = spec.name, spec.unit
    fields: dict[str, Any] = {"min": spec.min, "max": spec.max, "frozen": spec.frozen, "error": 0.0}
    if isinstance(value, Parameter):
        fields.update(min=value.min, max=value.max, frozen=value.frozen, error=value.error)
        value = value.quantity
    if isinstance(value, dict):
        extra = set(value) - {"name", "value", "unit", "min", "max", "frozen", "error", "is_norm",
                              "scale", "interp", "scale_method", "prior", "link"}
        if extra:
            raise ModelError(f"parameter {name!r}: unknown fields {sorted(extra)}")
        entry = dict(value)
        if "value" not in entry:
            raise ModelError(f"parameter {name!r}: mapping has no 'value'")
        given_unit = u.Unit(entry.get("unit", "") or "") if "unit" in entry else None
        raw = entry["value"]
        if given_unit is not None and not isinstance(raw, (str, u.Quantity)):
            raw = u.Quantity(float(raw), given_unit)
        factor = _to_canonical(name, u.Quantity(1.0, given_unit), unit) if given_unit is not None else 1.0
        for key in ("min", "max", "error"):
            if key in entry and entry[key] is not None:
                fields[key] = float(entry[key]) * factor
        if "frozen" in entry:
            fields["frozen"] = bool(entry["frozen"])
        value = raw
    number = _to_canonical(name, value, unit)
    return Parameter(name, number, unit, **fields)


class ParameterSpec:
    """Class-level declaration of a model parameter (a descriptor).

    ``model.<name>`` returns the instance's :class:`Parameter`; assigning a number, Quantity,
    string, mapping or Parameter replaces it (validated and converted to the canonical unit).

    Parameters
    ----------
    default : float
        Default value in ``unit``.
    unit : str
        Canonical unit.
    min, max : float
        Default bounds (NaN: none).
    frozen : bool
        Default frozen state (Gammapy's defaults, e.g. ``reference`` is frozen).
    """

    def __init__(self, default: float, unit: str = "", *, min: float = math.nan,  # noqa: A002
                 max: float = math.nan, frozen: bool = False) -> None:  # noqa: A002
        self.default = float(default)
        self.unit = u.Unit(unit)
        self.min = float(min)
        self.max = float(max)
        self.frozen = frozen
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def make(self, value: ParamInput = None) -> Parameter:
        """A new Parameter from ``value`` (None: the default)."""
        if value is None:
            return Parameter(self.name, self.default, self.unit, min=self.min, max=self.max,
                             frozen=self.frozen)
        return parse_parameter_value(self, value)

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._parameters[self.name]

    def __set__(self, obj: Any, value: ParamInput) -> None:
        obj._parameters[self.name] = self.make(value)
