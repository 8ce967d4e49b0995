"""Parameters: units, bounds, validation, mapping input, repr/eq generated from ``Model.parameter_names``."""

from __future__ import annotations

import math

import astropy.units as u
import pytest

from xgamma.exceptions import ModelError, UnitError
from xgamma.models import Gaussian, Parameter, PowerLaw, PowerLaw2


def test_quantity_and_string_inputs_convert_to_canonical_units():
    m = PowerLaw(amplitude=1e-11 * u.Unit("MeV-1 cm-2 s-1"), reference="100 GeV")
    # 1e-11 MeV-1 = 1e-5 TeV-1; 100 GeV = 0.1 TeV
    assert m.amplitude.value == pytest.approx(1e-5, rel=1e-12)
    assert m.amplitude.unit == u.Unit("TeV-1 cm-2 s-1")
    assert m.reference.value == pytest.approx(0.1, rel=1e-12)
    assert m.reference.frozen  # class default kept when only the value is given


def test_mapping_input_sets_flags_and_converts_bounds():
    g = Gaussian(sigma={"value": 6.0, "unit": "arcmin", "min": 1.2, "max": 30, "frozen": True, "error": 0.6})
    assert g.sigma.value == pytest.approx(0.1)
    assert (g.sigma.min, g.sigma.max, g.sigma.error) == pytest.approx((0.02, 0.5, 0.01))
    assert g.sigma.frozen


def test_incompatible_units_raise_unit_error_naming_parameter():
    with pytest.raises(UnitError, match=r"'amplitude'.*not compatible"):
        PowerLaw2(amplitude="3e-12 TeV-1 cm-2 s-1")
    with pytest.raises(UnitError, match=r"'lon_0'"):
        Gaussian(lon_0="1 TeV")


def test_min_greater_than_max_raises_model_error_naming_parameter():
    with pytest.raises(ModelError, match=r"'sigma'.*min=2.0 > max=1.0"):
        Gaussian(sigma={"value": 1.5, "min": 2.0, "max": 1.0})
    with pytest.raises(ModelError, match="'x'"):
        Parameter("x", 1.0, min=3, max=2)


def test_non_finite_or_unparsable_values_raise():
    with pytest.raises(ModelError, match="not finite"):
        PowerLaw(index=math.nan)
    with pytest.raises(ModelError, match="cannot parse"):
        PowerLaw(index="two")
    with pytest.raises(ModelError, match="unknown fields"):
        PowerLaw(index={"value": 2, "fixed": True})


def test_repr_eq_copy_follow_declared_parameters():
    a = PowerLaw(index=2.3)
    b = a.copy()
    assert a == b and a is not b
    b.index.value = 2.4
    assert a != b and a.index.value == 2.3  # the copy owns its parameters
    assert repr(a) == "PowerLaw(index=2.3, amplitude=1e-12 1 / (TeV s cm2), reference=1 TeV (frozen))"
    assert [p.name for p in a.parameters] == ["index", "amplitude", "reference"]


def test_parameter_to_dict_roundtrip():
    p = Parameter("amplitude", 3e-12, "cm-2 s-1", min=0, frozen=True, error=1e-13)
    d = p.to_dict()
    assert d["unit"] == "s-1 cm-2"  # FITS-style string: astropy and Gammapy parse it back
    back = PowerLaw2(amplitude={k: v for k, v in d.items() if k != "name"}).amplitude
    assert back == p
