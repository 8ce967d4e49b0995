"""Point spread functions: GADF ``psf_table``, ``psf_3gauss`` and ``psf_king``.

All three share the API ``evaluate(energy_true, offset, rad) -> sr-1`` (dP/dOmega),
``containment(energy_true, offset, rad)`` and ``containment_radius(fraction, energy_true,
offset)``. Plain numbers are taken as TeV (energy) and deg (offset, rad); arguments broadcast.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np

from xgamma.exceptions import IRFError
from xgamma.irf._grid import GridInterpolator, IRFAxis, to_value
from xgamma.irf._table import CellIRF, IRFTable

__all__ = ["PSFTable", "PSF3Gauss", "PSFKing"]

_DEG2_TO_SR = float((u.deg**2).to(u.sr))  # deg^-2 -> sr^-1 divides by this


def _coords(energy_true, offset, rad=None):
    e = to_value(energy_true, "TeV", name="energy_true")
    o = to_value(offset, "deg", name="offset")
    if rad is None:
        return e, o
    return e, o, to_value(rad, "deg", name="rad")


class _ParametricPSF:
    """Parameters on an (energy_true, offset) grid, interpolated like Gammapy 2.1.

    Each parameter is bilinear in (log E, offset) between bin centres, linear values clipped
    at zero, extrapolated everywhere (no fill value).
    """

    tag = ""
    columns: dict[str, str] = {}
    #: Parameters that must have a positive value somewhere in the table.
    required: tuple[str, ...] = ()

    def __init__(
        self, energy_axis: IRFAxis, offset_axis: IRFAxis, params: dict[str, np.ndarray], *, meta: dict | None = None
    ) -> None:
        self.axes = (energy_axis, offset_axis)
        self.params = {k: np.asarray(v, dtype=float) for k, v in params.items()}
        self.meta = dict(meta or {})
        self._interps = {
            name: GridInterpolator(self.axes, values, values_scale="lin", fill=False)
            for name, values in self.params.items()
        }

    @classmethod
    def read(cls, path: str | Path, hdu: str | int = "POINT SPREAD FUNCTION"):
        """Read the parameter columns of the HDU (sigmas in their file unit, converted to deg)."""
        table = IRFTable(path, hdu)
        energy, offset = table.axis("energy_true"), table.axis("offset")
        shape = (energy.nbin, offset.nbin)
        params = {}
        for name, column in cls.columns.items():
            # The first width and the normalisation must be set somewhere; further Gaussians
            # may be absent (all zero: CTA 1DC has one Gaussian).
            required = name in cls.required
            values = table.values(column, "deg" if name.startswith("sigma") else "", shape, nonzero=required)
            if name.startswith("sigma"):
                values = values.to_value("deg").astype(float)
                values[values == 0] = 1.0  # as Gammapy: empty bins get a harmless width
            else:
                values = np.asarray(values.value, dtype=float)
            params[name] = values
        return cls(energy, offset, params, meta=table.meta())

    def parameters(self, energy_true, offset) -> dict[str, np.ndarray]:
        """Interpolated parameters (sigmas in deg) at true energy and offset."""
        e, o = _coords(energy_true, offset)
        return {name: interp(e, o) for name, interp in self._interps.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(energy_true={self.axes[0]!r}, offset={self.axes[1]!r})"


class PSF3Gauss(_ParametricPSF):
    """Sum of three 2-D Gaussians (GADF ``psf_3gauss``).

    dP/dOmega = sum_i n_i / (2 pi s_i^2) exp(-r^2 / (2 s_i^2)) with n_i proportional to
    ``SCALE * AMPL_i * SIGMA_i^2`` (AMPL_1 = 1) and normalised to sum to 1.
    """

    tag = "psf_3gauss"
    columns = {
        "scale": "SCALE",
        "sigma_1": "SIGMA_1",
        "ampl_2": "AMPL_2",
        "sigma_2": "SIGMA_2",
        "ampl_3": "AMPL_3",
        "sigma_3": "SIGMA_3",
    }
    required = ("scale", "sigma_1")

    def _components(self, energy_true, offset):
        p = self.parameters(energy_true, offset)
        sigmas = [p["sigma_1"], p["sigma_2"], p["sigma_3"]]
        norms = [2 * p["scale"] * a * s**2 for a, s in zip((1.0, p["ampl_2"], p["ampl_3"]), sigmas)]
        total = norms[0] + norms[1] + norms[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            norms = [np.nan_to_num(n / total) for n in norms]
        return sigmas, norms

    def evaluate(self, energy_true, offset, rad) -> u.Quantity:
        """PSF density dP/dOmega (sr-1) at angular distance ``rad`` from the true position."""
        e, o, r = _coords(energy_true, offset, rad)
        sigmas, norms = self._components(e, o)
        value = sum(n / (2 * np.pi * s**2) * np.exp(-0.5 * r**2 / s**2) for s, n in zip(sigmas, norms))
        return u.Quantity(value / _DEG2_TO_SR, "sr-1")

    def containment(self, energy_true, offset, rad) -> u.Quantity:
        """Fraction of the PSF within ``rad`` (dimensionless)."""
        e, o, r = _coords(energy_true, offset, rad)
        sigmas, norms = self._components(e, o)
        value = sum(n * (1.0 - np.exp(-0.5 * r**2 / s**2)) for s, n in zip(sigmas, norms))
        return u.Quantity(value, "")

    def containment_radius(self, fraction, energy_true, offset) -> u.Quantity:
        """Radius (deg) containing ``fraction`` of the PSF (bisection on the monotone containment).

        NaN where the PSF is empty (all amplitudes zero).
        """
        e, o = _coords(energy_true, offset)
        fraction = _check_fraction(fraction)
        sigmas, norms = self._components(e, o)
        shape = np.broadcast_shapes(fraction.shape, *[np.shape(s) for s in sigmas])
        lo = np.zeros(shape)
        hi = np.broadcast_to(10 * np.maximum(np.maximum(sigmas[0], sigmas[1]), sigmas[2]), shape).copy()
        for _ in range(60):  # 2^-60 of the bracket: far below float32 table precision
            mid = 0.5 * (lo + hi)
            c = sum(n * (1.0 - np.exp(-0.5 * mid**2 / s**2)) for s, n in zip(sigmas, norms))
            below = c < fraction
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        radius = 0.5 * (lo + hi)
        empty = np.broadcast_to(sum(norms) == 0, shape)  # no PSF here (all amplitudes 0)
        return u.Quantity(np.where(empty, np.nan, radius), "deg")


class PSFKing(_ParametricPSF):
    """King profile (GADF ``psf_king``).

    dP/dOmega = 1 / (2 pi s^2) (1 - 1/g) (1 + r^2 / (2 g s^2))^-g, containment
    1 - (1 + r^2 / (2 g s^2))^(1 - g).
    """

    tag = "psf_king"
    columns = {"gamma": "GAMMA", "sigma": "SIGMA"}
    required = ("gamma", "sigma")

    @classmethod
    def read(cls, path: str | Path, hdu: str | int = "PSF_2D_KING") -> PSFKing:
        return super().read(path, hdu)

    def evaluate(self, energy_true, offset, rad) -> u.Quantity:
        """PSF density dP/dOmega (sr-1)."""
        e, o, r = _coords(energy_true, offset, rad)
        p = self.parameters(e, o)
        g, s = p["gamma"], p["sigma"]
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (1 - 1 / g) / (2 * np.pi * s**2) * (1 + r**2 / (2 * g * s**2)) ** (-g)
        return u.Quantity(value / _DEG2_TO_SR, "sr-1")

    def containment(self, energy_true, offset, rad) -> u.Quantity:
        """Fraction of the PSF within ``rad``."""
        e, o, r = _coords(energy_true, offset, rad)
        p = self.parameters(e, o)
        g, s = p["gamma"], p["sigma"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return u.Quantity(1 - (1 + r**2 / (2 * g * s**2)) ** (1 - g), "")

    def containment_radius(self, fraction, energy_true, offset) -> u.Quantity:
        """Radius (deg) containing ``fraction``: the closed-form inverse of `containment`.

        NaN where gamma <= 1 (no valid profile, e.g. empty table entries).
        """
        e, o = _coords(energy_true, offset)
        p = self.parameters(e, o)
        g, s = p["gamma"], p["sigma"]
        f = _check_fraction(fraction)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = s * np.sqrt(2 * g * ((1 - f) ** (1 / (1 - g)) - 1))
        # gamma <= 1 is no normalisable King profile (empty table entries have gamma = 0).
        return u.Quantity(np.where(g > 1, r, np.nan), "deg")


class PSFTable(CellIRF, tag="psf_table", axes=("energy_true", "offset", "rad"), columns="RPSF", unit="sr-1",
               hdu="PSF_2D_TABLE"):
    """Tabulated PSF density dP/dOmega(E_true, offset, rad) (GADF ``psf_table``).

    Notes
    -----
    Trilinear interpolation in (log E, offset, rad) between bin centres, zero beyond the
    outer edges (Gammapy 2.1). `containment` integrates the table as Gammapy does: the
    cumulative sum of ``value * 2 pi r dr`` at the upper rad edges, interpolated linearly.
    """

    def __init__(self, axes: tuple[IRFAxis, IRFAxis, IRFAxis], data: u.Quantity, *, meta: dict | None = None) -> None:
        super().__init__(axes, data, meta=meta)
        rad = self.axes[2]
        width = np.radians(np.diff(rad.edges))
        center = np.radians(rad.nodes)
        cumsum = np.cumsum(self.data.value * 2 * np.pi * center * width, axis=2)
        # Node axis at the upper rad edges (Gammapy's cumulative-sum axis).
        upper_edges = u.Quantity(rad.edges[1:], rad.unit)
        upper = IRFAxis.from_lo_hi("rad", upper_edges, upper_edges, "lin")
        self._cumsum = GridInterpolator((self.axes[0], self.axes[1], upper), cumsum, values_scale="lin", fill=True)

    def evaluate(self, energy_true, offset, rad) -> u.Quantity:
        """PSF density dP/dOmega (sr-1), as tabulated (the table is normalised by its producer)."""
        e, o, r = _coords(energy_true, offset, rad)
        return u.Quantity(self._interp(e, o, r), "sr-1", copy=False)

    def containment(self, energy_true, offset, rad) -> u.Quantity:
        """Fraction of the PSF within ``rad`` (integral of the table, see Notes)."""
        e, o, r = _coords(energy_true, offset, rad)
        return u.Quantity(self._cumsum(e, o, r), "")

    def containment_radius(self, fraction, energy_true, offset) -> u.Quantity:
        """Radius (deg) containing ``fraction``.

        The containment is sampled at 20 points per rad bin (Gammapy's grid) and the crossing
        is interpolated linearly. A fraction never reached gives the smallest radius of maximal
        containment (Gammapy's nearest-point rule); an empty table (no PSF, e.g. below the
        energy threshold) gives NaN.
        """
        e, o = _coords(energy_true, offset)
        fraction = _check_fraction(fraction)
        rad_axis = self.axes[2]
        fine = np.concatenate(
            [np.linspace(lo, hi, 21)[:-1] for lo, hi in zip(rad_axis.edges[:-1], rad_axis.edges[1:])]
        )
        fine = fine + 0.5 * np.diff(np.append(fine, rad_axis.edges[-1]))  # sub-bin centres
        shape = np.broadcast_shapes(fraction.shape, np.shape(e), np.shape(o))
        e_b, o_b, f_b = (np.broadcast_to(x, shape).ravel() for x in (e, o, fraction))
        out = np.empty(e_b.size)
        for i in range(e_b.size):
            c = self._cumsum(np.full(fine.size, e_b[i]), np.full(fine.size, o_b[i]), fine)
            c = np.maximum.accumulate(c)  # guard against tiny non-monotonic wiggles
            j = int(np.searchsorted(c, f_b[i]))
            if c[-1] <= 0:  # empty table (no PSF at this energy/offset)
                out[i] = np.nan
            elif j == 0:
                out[i] = fine[0]
            elif j >= fine.size:  # never reached: the radius of the closest containment (Gammapy)
                out[i] = fine[int(np.argmax(c))]
            else:
                c0, c1 = c[j - 1], c[j]
                t = (f_b[i] - c0) / (c1 - c0) if c1 > c0 else 0.0
                out[i] = fine[j - 1] + t * (fine[j] - fine[j - 1])
        return u.Quantity(out.reshape(shape), "deg")

    def __repr__(self) -> str:
        return f"PSFTable(energy_true={self.axes[0]!r}, offset={self.axes[1]!r}, rad={self.axes[2]!r})"


def _check_fraction(fraction) -> np.ndarray:
    f = np.asarray(fraction, dtype=float)
    if np.any(~((f > 0) & (f < 1))):
        raise IRFError(f"containment fraction must be in (0, 1), got {fraction!r}")
    return f
