"""Energy dispersion versus true energy, migration and offset (GADF ``edisp_2d``)."""

from __future__ import annotations

import astropy.units as u
import numpy as np

from xgamma.irf._grid import to_value
from xgamma.irf._table import CellIRF

__all__ = ["EnergyDispersion2D"]


def _edisp_mask(valid):
    """Zero only where both energy and migra are outside their edges, or offset is (Gammapy)."""
    energy, migra, offset = valid
    return (energy | migra) & offset


class EnergyDispersion2D(CellIRF, tag="edisp_2d", axes=("energy_true", "migra", "offset"), columns="MATRIX",
                         unit="", hdu="ENERGY DISPERSION"):
    """Migration probability density dP/dmu(E_true, mu = E_reco / E_true, offset).

    Axes order (energy_true, migra, offset); trilinear interpolation in (log E, mu, offset)
    between bin centres, linear values clipped at 0. As in Gammapy 2.1, the value is 0 outside
    the offset edges or where *both* energy and migra are outside theirs; otherwise the
    interpolation extrapolates linearly.
    """

    mask_rule = staticmethod(_edisp_mask)

    def evaluate(self, energy_true, offset, migra) -> u.Quantity:
        """Migration density (dimensionless) at true energy (TeV), offset (deg) and migra."""
        e = to_value(energy_true, self.axes[0].unit, name="energy_true")
        o = to_value(offset, self.axes[2].unit, name="offset")
        m = to_value(migra, "", name="migra")
        return u.Quantity(self._interp(e, m, o), "")

    def kernel(self, energy_true_edges, energy_edges, offset, *, threshold: float = 1e-8) -> np.ndarray:
        """Migration matrix: probability that a photon of each true-energy bin lands in each reco bin.

        The migration density is taken at the true-energy bin centre (log) and at the table's
        migration nodes, as constant over each migration bin (so its cumulative is piecewise
        linear in ``mu``), normalised to 1 over the table; the probability of reco bin
        ``[E1, E2)`` is the cumulative between ``E1 / E_true`` and ``E2 / E_true`` (the
        construction of Gammapy 2.1's ``EDispKernelMap``). Entries below ``threshold`` are 0.

        Parameters
        ----------
        energy_true_edges, energy_edges : `~astropy.units.Quantity` or array
            True and reconstructed energy bin edges (plain numbers: TeV).
        offset : `~astropy.units.Quantity` or float
            Field-of-view offset (plain numbers: deg).
        threshold : float
            Probabilities below this are set to 0 (removes interpolation noise).

        Returns
        -------
        kernel : `numpy.ndarray`
            Shape (n_true, n_reco); each row sums to the probability of landing inside the
            reco axis (1 when the axis covers the whole migration range).
        """
        true_edges = to_value(energy_true_edges, self.axes[0].unit, name="energy_true_edges")
        reco_edges = to_value(energy_edges, self.axes[0].unit, name="energy_edges")
        e_true = np.sqrt(true_edges[:-1] * true_edges[1:])
        migra = self.axes[1]
        pdf = self.evaluate(e_true[:, None], offset, migra.nodes[None, :]).value
        cdf = np.concatenate([np.zeros((e_true.size, 1)), np.cumsum(pdf * np.diff(migra.edges), axis=1)], axis=1)
        total = cdf[:, -1:]
        cdf = np.divide(cdf, total, out=np.zeros_like(cdf), where=total > 0)
        at_edges = np.array([np.interp(reco_edges / e, migra.edges, row) for e, row in zip(e_true, cdf)])
        out = np.clip(np.diff(at_edges, axis=1), 0.0, None)
        out[out < threshold] = 0.0
        return out

    def __repr__(self) -> str:
        return f"EnergyDispersion2D({self.axes[0]!r}, {self.axes[1]!r}, {self.axes[2]!r})"
