"""Energy axis helpers: log-spaced bin edges and centres in TeV."""

from __future__ import annotations

import astropy.units as u
import numpy as np

from xgamma.exceptions import GeometryError

__all__ = ["ENERGY_DIMS", "energy_edges", "energy_centers"]

#: Names of the energy dims of maps: reconstructed energy (counts, background) and true energy
#: (the exposure of an analysis with energy dispersion).
ENERGY_DIMS = ("energy", "energy_true")


def energy_edges(emin: u.Quantity, emax: u.Quantity, nbins: int) -> u.Quantity:
    """Log-spaced energy bin edges.

    Parameters
    ----------
    emin, emax : `~astropy.units.Quantity`
        Lowest and highest edge (energy).
    nbins : int
        Number of bins (>= 1).

    Returns
    -------
    edges : `~astropy.units.Quantity`
        ``nbins + 1`` edges in TeV, equally spaced in log(E).
    """
    emin_tev = u.Quantity(emin).to_value("TeV")
    emax_tev = u.Quantity(emax).to_value("TeV")
    if int(nbins) != nbins or nbins < 1:
        raise GeometryError(f"energy nbins must be a positive integer, got {nbins!r}")
    if not 0 < emin_tev < emax_tev:
        raise GeometryError(f"energy range must satisfy 0 < min < max, got min={emin}, max={emax}")
    # Same construction as a log axis built from log10 bounds, so edges agree to the last bit.
    edges = np.logspace(np.log10(emin_tev), np.log10(emax_tev), int(nbins) + 1)
    return u.Quantity(edges, "TeV")


def energy_centers(edges: u.Quantity) -> u.Quantity:
    """Log bin centres sqrt(E_min * E_max) of ``edges`` (TeV)."""
    values = u.Quantity(edges).to_value("TeV")
    return u.Quantity(np.sqrt(values[:-1] * values[1:]), "TeV")

