"""Effective area versus true energy and field-of-view offset (GADF ``aeff_2d``)."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u

from xgamma.exceptions import IRFError
from xgamma.irf._grid import GridInterpolator, IRFAxis, to_value
from xgamma.irf._table import IRFTable, threshold

__all__ = ["EffectiveArea2D"]

_M2 = u.Unit("m2")


class EffectiveArea2D:
    """Effective area table A(E_true, offset).

    Parameters
    ----------
    energy_axis : IRFAxis
        True-energy axis (log interpolation).
    offset_axis : IRFAxis
        Field-of-view offset axis (linear interpolation).
    data : `~astropy.units.Quantity`
        Effective area, shape (n_energy, n_offset), area unit.
    meta : dict, optional
        Header cards of the HDU.

    Notes
    -----
    Interpolation: bilinear in (log E, offset) between bin centres, linear values,
    extrapolation up to the outer bin edges, zero beyond (as Gammapy 2.1).
    """

    tag = "aeff_2d"

    def __init__(
        self, energy_axis: IRFAxis, offset_axis: IRFAxis, data: u.Quantity, *, meta: dict | None = None
    ) -> None:
        self.axes = (energy_axis, offset_axis)
        self.data = u.Quantity(data).to("m2")
        self.meta = dict(meta or {})
        self._interp = GridInterpolator(self.axes, self.data.value, values_scale="lin", fill=True)

    @classmethod
    def read(cls, path: str | Path, hdu: str | int = "EFFECTIVE AREA") -> EffectiveArea2D:
        """Read an ``aeff_2d`` HDU (column ``EFFAREA``; ``ENERG``/``THETA`` axes)."""
        table = IRFTable(path, hdu)
        (energy, offset), values = table.grid(("energy_true", "offset"), ("EFFAREA", "SPECRESP"), "m2")
        lo, hi = (threshold(table.header, key, where=table.where) for key in ("LO_THRES", "HI_THRES"))
        if lo is not None and hi is not None and not lo < hi:
            raise IRFError(f"header keys LO_THRES = {lo} >= HI_THRES = {hi} in {table.where}")
        return cls(energy, offset, values, meta=table.meta())

    @property
    def lo_threshold(self) -> u.Quantity | None:
        """Low safe-energy threshold (header ``LO_THRES``, TeV) or None."""
        return threshold(self.meta, "LO_THRES")

    @property
    def hi_threshold(self) -> u.Quantity | None:
        """High safe-energy threshold (header ``HI_THRES``, TeV) or None."""
        return threshold(self.meta, "HI_THRES")

    def evaluate(self, energy_true, offset) -> u.Quantity:
        """Effective area at true energies and offsets.

        Parameters
        ----------
        energy_true : `~astropy.units.Quantity` or array
            True energy (plain numbers: TeV). Broadcast against ``offset``; the fast path is
            ``energy_true[:, None, None]`` with ``offset`` of shape (ny, nx).
        offset : `~astropy.units.Quantity` or array
            Field-of-view offset (plain numbers: deg).

        Returns
        -------
        area : `~astropy.units.Quantity`
            Effective area in m2, broadcast shape of the inputs.
        """
        e = to_value(energy_true, self.axes[0].unit, name="energy_true")
        o = to_value(offset, self.axes[1].unit, name="offset")
        return u.Quantity(self._interp(e, o), _M2, copy=False)

    def __repr__(self) -> str:
        return f"EffectiveArea2D(energy_true={self.axes[0]!r}, offset={self.axes[1]!r})"
