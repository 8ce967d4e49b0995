"""Spectral models: dN/dE as a function of true energy.

Physics lives in pure ``evaluate(energy, *values)`` staticmethods working on floats: energy in
TeV and parameters in their canonical units (amplitude ``TeV-1 cm-2 s-1``, or ``cm-2 s-1`` for
:class:`PowerLaw2`). Conventions (parameter names, defaults, natural log in the log parabola)
follow the Gammapy model files so that YAML files move between the two tools.
"""

from __future__ import annotations

from typing import ClassVar

import astropy.units as u
import numpy as np

from xgamma.models.core import Model
from xgamma.models.parameter import ParameterSpec

__all__ = ["SpectralModel", "PowerLaw", "PowerLaw2", "ExpCutoffPowerLaw", "LogParabola", "PowerLawNorm",
           "powerlaw_integral"]

_ENERGY_UNIT = u.TeV
# Gauss-Legendre nodes on [-1, 1] for the numerical energy integral (in ln E). 32 nodes
# integrate smooth spectra over two decades to ~1e-12 relative (tested against scipy.quad).
_GL_X, _GL_W = np.polynomial.legendre.leggauss(32)


def powerlaw_integral(emin: np.ndarray, emax: np.ndarray, index: float, reference: float = 1.0) -> np.ndarray:
    """Integral of ``(E / reference) ** -index`` over E from ``emin`` to ``emax`` (all in TeV).

    The one closed form of power-law integrals (spectral models, energy squashing weights, the
    simulator): ``reference (r2**g - r1**g) / g`` with ``g = 1 - index`` and ``r = E / reference``,
    or ``reference ln(emax / emin)`` for an index within 1e-10 of 1. Broadcasts over the energies.
    """
    emin = np.asarray(emin, dtype=float)
    emax = np.asarray(emax, dtype=float)
    if abs(index - 1.0) < 1e-10:
        return reference * np.log(emax / emin)
    g = 1.0 - index
    return reference * ((emax / reference) ** g - (emin / reference) ** g) / g


def reference_power_law_parameters(index: float) -> tuple[ParameterSpec, ParameterSpec, ParameterSpec]:
    """``index``, ``amplitude`` (TeV-1 cm-2 s-1 at ``reference``) and ``reference`` (TeV, frozen):
    the parameters of spectra normalised at a reference energy, in Gammapy's order."""
    return ParameterSpec(index, ""), ParameterSpec(1e-12, "TeV-1 cm-2 s-1"), ParameterSpec(1.0, "TeV", frozen=True)


class SpectralModel(Model):
    """Base class: ``evaluate`` gives dN/dE; ``integral`` integrates it over energy bins."""

    #: Unit of ``evaluate``'s output (dN/dE).
    flux_unit: ClassVar[str] = "TeV-1 cm-2 s-1"

    @staticmethod
    def evaluate(energy: np.ndarray, *values: float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def integral_values(cls, emin: np.ndarray, emax: np.ndarray, *values: float) -> np.ndarray:
        """Integral of dN/dE between ``emin`` and ``emax`` (TeV), in ``flux_unit * TeV``.

        Default: 32-point Gauss-Legendre quadrature in ln E on each bin (the integrand
        E dN/dE is smooth in ln E for all built-in spectra).
        """
        emin = np.asarray(emin, dtype=float)
        emax = np.asarray(emax, dtype=float)
        lo, hi = np.log(emin)[..., None], np.log(emax)[..., None]
        half = 0.5 * (hi - lo)
        ln_e = lo + half * (_GL_X + 1.0)
        energy = np.exp(ln_e)
        return np.sum(_GL_W * energy * cls.evaluate(energy, *values), axis=-1) * half[..., 0]

    def __call__(self, energy: u.Quantity) -> u.Quantity:
        """dN/dE at ``energy`` (Quantity), in :attr:`flux_unit`."""
        e = u.Quantity(energy).to_value(_ENERGY_UNIT)
        return u.Quantity(self.evaluate(e, *self.values), self.flux_unit)

    def integral(self, emin: u.Quantity, emax: u.Quantity) -> u.Quantity:
        """Integral flux between ``emin`` and ``emax`` (Quantity energies), in ``cm-2 s-1``."""
        lo = u.Quantity(emin).to_value(_ENERGY_UNIT)
        hi = u.Quantity(emax).to_value(_ENERGY_UNIT)
        return u.Quantity(self.integral_values(lo, hi, *self.values), u.Unit(self.flux_unit) * _ENERGY_UNIT)


class PowerLaw(SpectralModel):
    """dN/dE = amplitude (E / reference)^-index."""

    tag = "powerlaw"
    gammapy_tags = ("PowerLawSpectralModel", "PowerLaw", "pl")
    index, amplitude, reference = reference_power_law_parameters(index=2.0)

    @staticmethod
    def evaluate(energy, index, amplitude, reference):
        return amplitude * (energy / reference) ** (-index)

    @classmethod
    def integral_values(cls, emin, emax, index, amplitude, reference):
        return amplitude * powerlaw_integral(emin, emax, index, reference)


class PowerLaw2(SpectralModel):
    """Power law normalised by its integral flux ``amplitude`` (cm-2 s-1) between emin and emax."""

    tag = "powerlaw2"
    gammapy_tags = ("PowerLaw2SpectralModel", "PowerLaw2", "pl-2")
    amplitude = ParameterSpec(1e-12, "cm-2 s-1")
    index = ParameterSpec(2.0, "")
    emin = ParameterSpec(0.1, "TeV", frozen=True)
    emax = ParameterSpec(100.0, "TeV", frozen=True)

    @staticmethod
    def evaluate(energy, amplitude, index, emin, emax):
        return amplitude * np.asarray(energy, dtype=float) ** (-index) / powerlaw_integral(emin, emax, index)

    @classmethod
    def integral_values(cls, emin, emax, amplitude, index, e_lo, e_hi):
        return amplitude * powerlaw_integral(emin, emax, index) / powerlaw_integral(e_lo, e_hi, index)


class ExpCutoffPowerLaw(SpectralModel):
    """dN/dE = amplitude (E / reference)^-index exp(-(lambda_ E)^alpha)."""

    tag = "ecpl"
    gammapy_tags = ("ExpCutoffPowerLawSpectralModel", "ExpCutoffPowerLaw", "ecpl")
    index, amplitude, reference = reference_power_law_parameters(index=1.5)
    lambda_ = ParameterSpec(0.1, "TeV-1")
    alpha = ParameterSpec(1.0, "", frozen=True)

    @staticmethod
    def evaluate(energy, index, amplitude, reference, lambda_, alpha):
        energy = np.asarray(energy, dtype=float)
        return amplitude * (energy / reference) ** (-index) * np.exp(-((lambda_ * energy) ** alpha))


class LogParabola(SpectralModel):
    """dN/dE = amplitude (E / reference)^(-alpha - beta ln(E / reference)) (natural log, as Gammapy)."""

    tag = "logparabola"
    gammapy_tags = ("LogParabolaSpectralModel", "LogParabola", "lp")
    amplitude = ParameterSpec(1e-12, "TeV-1 cm-2 s-1")
    reference = ParameterSpec(10.0, "TeV", frozen=True)
    alpha = ParameterSpec(2.0, "")
    beta = ParameterSpec(1.0, "")

    @staticmethod
    def evaluate(energy, amplitude, reference, alpha, beta):
        x = np.asarray(energy, dtype=float) / reference
        return amplitude * x ** (-alpha - beta * np.log(x))


class PowerLawNorm(SpectralModel):
    """Dimensionless spectral correction norm (E / reference)^-tilt (background models)."""

    tag = "powerlaw-norm"
    gammapy_tags = ("PowerLawNormSpectralModel", "PowerLawNorm", "pl-norm")
    flux_unit = ""
    tilt = ParameterSpec(0.0, "", frozen=True)
    norm = ParameterSpec(1.0, "")
    reference = ParameterSpec(1.0, "TeV", frozen=True)

    @staticmethod
    def evaluate(energy, tilt, norm, reference):
        return norm * (np.asarray(energy, dtype=float) / reference) ** (-tilt)
