"""Spectral models: analytic forms, integrals against scipy quadrature, units."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from scipy.integrate import quad

from xgamma.models import ExpCutoffPowerLaw, LogParabola, PowerLaw, PowerLaw2

MODELS = [
    PowerLaw(index=2.3, amplitude="2e-12 TeV-1 cm-2 s-1"),
    PowerLaw(index=1.0),  # the logarithmic special case of the analytic integral
    PowerLaw2(amplitude="3e-12 cm-2 s-1", index=2.0, emin="0.1 TeV", emax="10 TeV"),
    PowerLaw2(amplitude="3e-12 cm-2 s-1", index=1.0, emin="0.1 TeV", emax="10 TeV"),
    ExpCutoffPowerLaw(index=1.8, lambda_="0.2 TeV-1", alpha=1.5),
    LogParabola(alpha=2.2, beta=0.3, reference="1 TeV"),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{m.tag}-{m.values[:2]}")
def test_integral_matches_quadrature(model):
    edges = np.geomspace(0.1, 10, 6)
    got = model.integral(edges[:-1] * u.TeV, edges[1:] * u.TeV).to_value("cm-2 s-1")

    def dnde(e):
        return model(e * u.TeV).to_value("TeV-1 cm-2 s-1")

    expected = [quad(dnde, lo, hi, epsrel=1e-12)[0] for lo, hi in zip(edges[:-1], edges[1:])]
    # Analytic or 32-point Gauss-Legendre per bin: agreement to 1e-9 relative.
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_powerlaw2_amplitude_is_the_integral_flux_between_emin_and_emax():
    m = PowerLaw2(amplitude="4e-11 cm-2 s-1", index=2.7, emin="0.2 TeV", emax="50 TeV")
    assert m.integral(0.2 * u.TeV, 50 * u.TeV).to_value("cm-2 s-1") == pytest.approx(4e-11, rel=1e-12)


def test_powerlaw_evaluate_units_and_value():
    m = PowerLaw(index=2.0, amplitude="1e-12 TeV-1 cm-2 s-1")
    val = m(2 * u.TeV)
    assert val.unit == u.Unit("TeV-1 cm-2 s-1")
    assert val.value == pytest.approx(0.25e-12)  # (2 / 1)^-2
    assert m(2000 * u.GeV).value == pytest.approx(val.value)


def test_logparabola_uses_natural_log():
    m = LogParabola(amplitude="1e-12 TeV-1 cm-2 s-1", reference="1 TeV", alpha=2.0, beta=0.5)
    e = 10.0
    assert m(e * u.TeV).value == pytest.approx(1e-12 * e ** (-2.0 - 0.5 * np.log(e)))
