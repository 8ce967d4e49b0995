"""Energy-dispersion kernel of a stacked dataset at a sky position.

Per observation, the ``edisp_2d`` IRF at the position's field-of-view offset gives a migration
matrix from true-energy to reconstructed-energy bins (`EnergyDispersion2D.kernel`); its columns
outside the observation's safe range are zeroed (the safe range acts on reconstructed energy).
The stacked kernel is the exposure-weighted mean of these matrices, row by row (weights: the
effective area at the true-energy bin centre and the position's offset x livetime), so that
``exposure_true x kernel`` predicts the stacked, safe-masked counts of every observation.
This is Gammapy 2.1's stacking of ``EDispKernelMap`` at one position, evaluated at the exact
offset of the position (Gammapy takes the nearest node of its IRF grid, 0.2 deg by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, SkyCoord

from xgamma.exceptions import FitError, GeometryError
from xgamma.makers.safe_energy import SafeEnergy, safe_energy_mask, safe_offset_max

if TYPE_CHECKING:
    from xgamma.geometry import SkyGeometry
    from xgamma.io.datastore import Observation

__all__ = ["EDispKernel", "make_edisp_kernel"]


@dataclass
class EDispKernel:
    """Migration probabilities from true-energy bins to reconstructed-energy bins.

    Attributes
    ----------
    data : `numpy.ndarray`
        Shape (n_true, n_reco); ``data[i, j]`` is the probability that a photon of true bin
        ``i`` is reconstructed in bin ``j`` (and kept by the safe range).
    energy_true : `~astropy.units.Quantity`
        True-energy bin edges (TeV).
    energy : `~astropy.units.Quantity`
        Reconstructed-energy bin edges (TeV).
    """

    data: np.ndarray
    energy_true: u.Quantity
    energy: u.Quantity

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=float)
        self.energy_true = u.Quantity(self.energy_true, "TeV")
        self.energy = u.Quantity(self.energy, "TeV")
        expected = (self.energy_true.size - 1, self.energy.size - 1)
        if self.data.shape != expected:
            raise GeometryError(f"edisp kernel: shape {self.data.shape} does not match its axes {expected}")

    @classmethod
    def diagonal(cls, energy_edges: u.Quantity) -> EDispKernel:
        """No energy dispersion: true and reconstructed bins are the same."""
        edges = u.Quantity(energy_edges, "TeV")
        return cls(np.eye(edges.size - 1), edges, edges)

    def to_image(self) -> EDispKernel:
        """The kernel onto one reconstructed bin spanning the whole axis (columns summed)."""
        return EDispKernel(self.data.sum(axis=1, keepdims=True), self.energy_true, self.energy[[0, -1]])

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Fold ``values`` (n_true, ...) into reconstructed energy: an array (n_reco, ...)."""
        return np.tensordot(self.data, values, axes=(0, 0))

    def __repr__(self) -> str:
        return (f"EDispKernel({self.energy_true.size - 1} true bins {self.energy_true[0].value:.3g}-"
                f"{self.energy_true[-1].value:.3g} TeV -> {self.energy.size - 1} reco bins "
                f"{self.energy[0].value:.3g}-{self.energy[-1].value:.3g} TeV)")


def make_edisp_kernel(
    observations: Sequence[Observation],
    geometry: SkyGeometry,
    position: SkyCoord,
    *,
    energy_true: u.Quantity,
    offset_max: u.Quantity | Angle,
    safe_energy: SafeEnergy | Any = None,
) -> EDispKernel:
    """Exposure-weighted migration kernel of the stacked observations at ``position``.

    Parameters
    ----------
    observations : sequence of `~xgamma.io.datastore.Observation`
        The stacked observations (each needs an ``edisp_2d`` IRF).
    geometry : `~xgamma.geometry.SkyGeometry`
        Map geometry; its energy axis is the reconstructed-energy axis.
    position : `~astropy.coordinates.SkyCoord`
        Where the kernel is evaluated (the source's position).
    energy_true : `~astropy.units.Quantity`
        True-energy bin edges (those of the exposure).
    offset_max : `~astropy.units.Quantity`
        The maps' offset cut: observations farther than this from ``position`` do not count.
    safe_energy : `~xgamma.makers.safe_energy.SafeEnergy` or a configuration form, optional
        The maps' safe range (zeroes each observation's reco bins outside it).

    Returns
    -------
    EDispKernel

    Raises
    ------
    FitError
        If no observation has exposure at ``position``.
    """
    if geometry.energy_edges is None:
        raise GeometryError("make_edisp_kernel: the geometry needs a (reconstructed) energy axis")
    true_edges = u.Quantity(energy_true, "TeV")
    reco_edges = geometry.energy_edges.to("TeV")
    centres = np.sqrt(true_edges.value[:-1] * true_edges.value[1:]) * u.TeV
    settings = SafeEnergy.parse(safe_energy)
    cut = safe_offset_max(settings, Angle(offset_max).deg)
    numerator = np.zeros((centres.size, reco_edges.size - 1))
    weights = np.zeros(centres.size)
    for observation in observations:
        offset = observation.pointing.separation(position).to("deg")
        if offset.value >= cut:
            continue
        weight = np.nan_to_num(observation.aeff.evaluate(centres, offset).to_value("m2"))
        weight *= u.Quantity(observation.livetime).to_value("s")
        kernel = observation.edisp.kernel(true_edges, reco_edges, offset)
        kernel *= safe_energy_mask(observation, geometry, settings, energy_true=true_edges)[None, :]
        numerator += weight[:, None] * kernel
        weights += weight
    if not np.any(weights > 0):
        raise FitError(f"make_edisp_kernel: no observation has exposure at {position} "
                       f"(within offset_max = {cut} deg)")
    data = np.divide(numerator, weights[:, None], out=np.zeros_like(numerator), where=weights[:, None] > 0)
    return EDispKernel(data, true_edges, reco_edges)
