"""xgamma.units: parsing quantities from strings, numbers and Quantities."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from xgamma.exceptions import UnitError
from xgamma.units import parse_angle, parse_quantity


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.02 deg", 0.02),
        ("1.2 arcmin", 0.02),
        (0.02, 0.02),  # bare number: default unit
        ("0.02", 0.02),  # bare number in a string: default unit
        (72 * u.arcsec, 0.02),
        (np.array([0.01, 0.02]) * u.deg, [0.01, 0.02]),
    ],
)
def test_parse_quantity_converts_to_target_unit(value, expected):
    q = parse_quantity(value, "deg", name="binsz")
    assert q.unit == u.deg
    np.testing.assert_allclose(q.value, expected, rtol=1e-12)


def test_parse_angle_default_deg():
    assert parse_angle("1 rad", name="r").unit == u.deg
    np.testing.assert_allclose(parse_angle("1 rad", name="r").value, 180 / np.pi)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("1 TeV", r"binsz: expected units of angle \(e.g. '1.5 deg'\), got '1 TeV' \(energy"),
        (3 * u.s, r"binsz: expected units of angle .* \(time\)"),
        ("two degrees", r"binsz: cannot read 'two degrees' as a quantity \(angle\)"),
        (object(), r"binsz: cannot read <object .* as a quantity in deg"),
    ],
)
def test_parse_quantity_errors_name_the_parameter(value, match):
    with pytest.raises(UnitError, match=match):
        parse_quantity(value, "deg", name="binsz")


def test_bad_target_unit():
    with pytest.raises(UnitError, match="offset_max: invalid target unit"):
        parse_quantity(1, "furlongs_per_fortnight", name="offset_max")



def test_config_keys_and_api_parse_quantities_alike():
    """One parser: a config key and an API argument accept the same input and word errors alike."""
    from xgamma.exceptions import ConfigError
    from xgamma.workflow.config import parse_angle as config_angle

    assert config_angle("3 arcmin", "maps.offset_max") == parse_quantity("3 arcmin", "deg", name="x")
    for call, error in ((lambda: config_angle("4 TeV", "maps.offset_max"), ConfigError),
                        (lambda: parse_quantity("4 TeV", "deg", name="maps.offset_max"), UnitError)):
        with pytest.raises(error, match=r"maps.offset_max: expected units of angle \(e.g. '1.5 deg'\), got '4 TeV'"):
            call()
