"""Unit helpers: turn user input ("0.02 deg", 0.02, Quantity) into astropy Quantities.

Errors name the parameter at fault, so a config key or keyword argument can be traced.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u

from xgamma.exceptions import UnitError

__all__ = ["parse_quantity", "parse_angle"]


def parse_quantity(value: Any, unit_like: str | u.UnitBase, *, name: str) -> u.Quantity:
    """Convert ``value`` to a Quantity in ``unit_like``.

    Parameters
    ----------
    value : str, float, int, array-like or `~astropy.units.Quantity`
        ``"0.02 deg"`` strings, plain numbers (taken to be in ``unit_like``) or Quantities
        (converted to ``unit_like``).
    unit_like : str or `~astropy.units.UnitBase`
        Target unit; also the default unit of bare numbers.
    name : str
        Name of the parameter or config key, used in error messages.

    Returns
    -------
    quantity : `~astropy.units.Quantity`
        ``value`` expressed in ``unit_like``.

    Raises
    ------
    UnitError
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
    if isinstance(value, str):
        try:
            quantity = u.Quantity(value)
        except (ValueError, TypeError):
            raise UnitError(
                f"{name}: cannot parse {value!r} as a quantity; expected e.g. '1.5 {unit}'"
            ) from None
        # A bare number in a string ("0.02") takes the default unit.
        if quantity.unit == u.dimensionless_unscaled and unit != u.dimensionless_unscaled:
            quantity = quantity.value * unit
    elif isinstance(value, u.Quantity):
        quantity = value
    else:
        try:
            quantity = u.Quantity(value, unit)
        except (ValueError, TypeError):
            raise UnitError(f"{name}: cannot interpret {value!r} as a quantity in {unit}") from None
    try:
        return quantity.to(unit)
    except u.UnitConversionError:
        raise UnitError(
            f"{name}: unit {quantity.unit.to_string() or 'dimensionless'!r} of {value!r} is not "
            f"convertible to {unit.to_string() or 'dimensionless'!r}"
        ) from None


def parse_angle(value: Any, *, name: str, unit: str = "deg") -> u.Quantity:
    """Convert ``value`` to an angle Quantity (default unit deg); see `parse_quantity`."""
    return parse_quantity(value, unit, name=name)
