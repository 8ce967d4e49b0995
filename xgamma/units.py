"""Unit helpers: turn user input ("0.02 deg", 0.02, Quantity) into astropy Quantities.

Errors name the parameter at fault, so a config key or keyword argument can be traced.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u

from xgamma.exceptions import UnitError, XgammaError

__all__ = ["parse_quantity", "parse_angle"]


def _kind(unit: u.UnitBase) -> str:
    """Physical type of a unit for messages ("angle", "energy", ...)."""
    return str(unit.physical_type).split("/")[0]  # "energy", not "energy/torque/work"


def parse_quantity(
    value: Any, unit_like: str | u.UnitBase, *, name: str, error: type[XgammaError] = UnitError
) -> u.Quantity:
    """Convert ``value`` to a Quantity in ``unit_like``: the one parser of user quantities.

    Configuration keys, keyword arguments of the API and the simulator all read quantities
    through it, so they accept the same input and fail with the same messages.

    Parameters
    ----------
    value : str, float, int, array-like or `~astropy.units.Quantity`
        ``"0.02 deg"`` strings, plain numbers (taken to be in ``unit_like``) or Quantities
        (converted to ``unit_like``).
    unit_like : str or `~astropy.units.UnitBase`
        Target unit; also the default unit of bare numbers.
    name : str
        Name of the parameter or config key, used in error messages.
    error : type of `~xgamma.exceptions.XgammaError`
        Exception raised for bad values (`ConfigError` for config keys, ...). Default: `UnitError`.

    Returns
    -------
    quantity : `~astropy.units.Quantity`
        ``value`` expressed in ``unit_like``.

    Raises
    ------
    UnitError (or ``error``)
        When ``value`` cannot be parsed or its unit is not convertible to ``unit_like``.

    Examples
    --------
    >>> parse_quantity("2 arcmin", "deg", name="binsz")
    <Quantity 0.03333333 deg>
    >>> parse_quantity(4, "deg", name="offset_max")
    <Quantity 4. deg>
    """
    try:
        unit = u.Unit(unit_like)
    except (ValueError, TypeError) as exc:
        raise UnitError(f"{name}: invalid target unit {unit_like!r} ({exc})") from None
    example = f"e.g. '1.5 {unit.to_string()}'" if unit != u.dimensionless_unscaled else "e.g. '1.5'"
    if isinstance(value, str):
        try:
            quantity = u.Quantity(value)
        except (ValueError, TypeError):
            raise error(f"{name}: cannot read {value!r} as a quantity ({_kind(unit)}), {example}") from None
        # A bare number in a string ("0.02") takes the default unit.
        if quantity.unit == u.dimensionless_unscaled and unit != u.dimensionless_unscaled:
            quantity = quantity.value * unit
    elif isinstance(value, u.Quantity):
        quantity = value
    else:
        try:
            quantity = u.Quantity(value, unit)
        except (ValueError, TypeError):
            raise error(f"{name}: cannot read {value!r} as a quantity in {unit.to_string() or 'dimensionless'}, "
                        f"{example}") from None
    try:
        return quantity.to(unit)
    except u.UnitConversionError:
        raise error(f"{name}: expected units of {_kind(unit)} ({example}), got {value!r} "
                    f"({_kind(quantity.unit)})") from None


def parse_angle(value: Any, *, name: str, unit: str = "deg") -> u.Quantity:
    """Convert ``value`` to an angle Quantity (default unit deg); see `parse_quantity`."""
    return parse_quantity(value, unit, name=name)
