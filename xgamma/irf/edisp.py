"""Energy dispersion versus true energy, migration and offset (GADF ``edisp_2d``)."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u

from xgamma.irf._grid import GridInterpolator, IRFAxis, to_value
from xgamma.irf._table import IRFTable

__all__ = ["EnergyDispersion2D"]


def _edisp_mask(valid):
    """Zero only where both energy and migra are outside their edges, or offset is (Gammapy)."""
    energy, migra, offset = valid
    return (energy | migra) & offset


class EnergyDispersion2D:
    """Migration probability density dP/dmu(E_true, mu = E_reco / E_true, offset).

    Axes order (energy_true, migra, offset); trilinear interpolation in (log E, mu, offset)
    between bin centres, linear values clipped at 0. As in Gammapy 2.1, the value is 0 outside
    the offset edges or where *both* energy and migra are outside theirs; otherwise the
    interpolation extrapolates linearly.
    """

    tag = "edisp_2d"

    def __init__(self, axes: tuple[IRFAxis, IRFAxis, IRFAxis], data: u.Quantity, *, meta: dict | None = None) -> None:
        self.axes = tuple(axes)
        self.data = u.Quantity(data).to("")
        self.meta = dict(meta or {})
        self._interp = GridInterpolator(
            self.axes, self.data.value, values_scale="lin", fill=True, mask_rule=_edisp_mask
        )

    @classmethod
    def read(cls, path: str | Path, hdu: str | int = "ENERGY DISPERSION") -> EnergyDispersion2D:
        """Read an ``edisp_2d`` HDU (column ``MATRIX``; ``ENERG`` or ``ETRUE``, ``MIGRA``, ``THETA``)."""
        table = IRFTable(path, hdu)
        axes = (table.axis("energy_true"), table.axis("migra"), table.axis("offset"))
        values = table.values("MATRIX", "", tuple(a.nbin for a in axes))
        return cls(axes, values, meta=table.meta())

    def evaluate(self, energy_true, offset, migra) -> u.Quantity:
        """Migration density (dimensionless) at true energy (TeV), offset (deg) and migra."""
        e = to_value(energy_true, self.axes[0].unit, name="energy_true")
        o = to_value(offset, self.axes[2].unit, name="offset")
        m = to_value(migra, "", name="migra")
        return u.Quantity(self._interp(e, m, o), "")

    def __repr__(self) -> str:
        return f"EnergyDispersion2D({self.axes[0]!r}, {self.axes[1]!r}, {self.axes[2]!r})"
