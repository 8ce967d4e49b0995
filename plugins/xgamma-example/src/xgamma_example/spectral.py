"""Smoothly broken power law."""

from __future__ import annotations

from xgamma.models import ParameterSpec, SpectralModel

__all__ = ["SmoothBrokenPowerLaw"]


class SmoothBrokenPowerLaw(SpectralModel):
    """dN/dE = amplitude (E / reference)^-index1 [1 + (E / ebreak)^((index2 - index1) / beta)]^-beta.

    Below ``ebreak`` the slope tends to ``index1``, above it to ``index2``; ``beta`` sets how
    sharp the break is (small: sharp). Parameter names, units and defaults follow Gammapy's
    ``SmoothBrokenPowerLawSpectralModel`` so that YAML files move between the two tools.

    Parameters
    ----------
    index1, index2 : float or Quantity, optional
        Spectral indices below and above the break. Default is 2 for both.
    amplitude : Quantity or str, optional
        dN/dE at ``reference`` (TeV-1 cm-2 s-1, up to the break factor). Default is 1e-12.
    ebreak : Quantity or str, optional
        Break energy (TeV). Default is 1 TeV.
    reference : Quantity or str, optional
        Reference energy (TeV), frozen. Default is 1 TeV.
    beta : float, optional
        Smoothness of the break (> 0), frozen. Default is 1.
    """

    tag = "sbpl"
    gammapy_tags = ("SmoothBrokenPowerLawSpectralModel", "SmoothBrokenPowerLaw")
    index1 = ParameterSpec(2.0, "")
    index2 = ParameterSpec(2.0, "")
    amplitude = ParameterSpec(1e-12, "TeV-1 cm-2 s-1")
    ebreak = ParameterSpec(1.0, "TeV", min=0.0)
    reference = ParameterSpec(1.0, "TeV", frozen=True)
    beta = ParameterSpec(1.0, "", min=0.0, frozen=True)
    # No __init__ is needed: Model.__init__ takes the parameters above as keywords.

    @staticmethod
    def evaluate(energy, index1, index2, amplitude, ebreak, reference, beta):
        # Pure arithmetic (no np.asarray), so dask arrays stay lazy.
        power_law = amplitude * (energy / reference) ** (-index1)
        return power_law * (1.0 + (energy / ebreak) ** ((index2 - index1) / beta)) ** (-beta)
