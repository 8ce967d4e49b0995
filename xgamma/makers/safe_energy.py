"""Safe data range of an observation: which reconstructed-energy bins, and how far off axis.

The methods and their semantics follow Gammapy 2.1's ``SafeMaskMaker`` (IRFs evaluated on the
analysis axes, the "DL4" default); a bin is safe when it lies entirely inside the range:

* ``aeff-default``: the ``LO_THRES`` .. ``HI_THRES`` range of the effective-area header;
* ``aeff-max``: above the true energy where the effective area at ``position`` first reaches
  ``aeff_percent`` % of its maximum (log-log interpolation between the true-energy bin centres);
* ``edisp-bias``: above the energy where the reconstruction bias at ``position`` falls to
  ``bias_percent`` %, the bias being computed from the migration matrix on the analysis axes,
  searched from the energy of largest bias upwards, then converted to reconstructed energy
  (x (1 + bias));
* ``bkg-peak``: from the lower edge of the reco bin holding the most background counts over the
  map (for ALTAZ-aligned background models the field-of-view rotation is neglected here);
* ``offset-max``: pixels at ``offset_max`` or more from the pointing are dropped (a spatial cut,
  combined with the map's own ``offset_max``).

Masks of several methods are combined with a logical *and*. ``position`` defaults to the map
centre; ``fixed_offset`` evaluates the IRFs at that offset from each pointing instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, SkyCoord

from xgamma.exceptions import ConfigError, GeometryError

if TYPE_CHECKING:
    from xgamma.geometry import SkyGeometry
    from xgamma.io.datastore import Observation

__all__ = ["SafeEnergy", "SAFE_ENERGY_METHODS", "safe_energy_mask", "safe_offset_max"]

SAFE_ENERGY_METHODS = ("aeff-default", "aeff-max", "edisp-bias", "bkg-peak", "offset-max")


@dataclass(frozen=True)
class SafeEnergy:
    """Safe-range methods and their parameters (Gammapy ``SafeMaskMaker`` semantics).

    Parameters
    ----------
    methods : tuple of str
        Any of ``aeff-default``, ``aeff-max``, ``edisp-bias``, ``bkg-peak``, ``offset-max``.
    aeff_percent : float
        ``aeff-max``: percentage of the maximum effective area. Default 10.
    bias_percent : float
        ``edisp-bias``: energy bias (percent) at the threshold. Default 10.
    position : `~astropy.coordinates.SkyCoord`, optional
        Where ``aeff-max`` and ``edisp-bias`` evaluate the IRFs. Default: the map centre.
    fixed_offset : `~astropy.coordinates.Angle`, optional
        Evaluate them at this offset from each pointing instead (exclusive with ``position``).
    offset_max : `~astropy.coordinates.Angle`
        ``offset-max`` (and the field integrated by ``bkg-peak``). Default 3 deg (Gammapy's).
    """

    methods: tuple[str, ...] = ("aeff-default",)
    aeff_percent: float = 10.0
    bias_percent: float = 10.0
    position: SkyCoord | None = None
    fixed_offset: Angle | None = None
    offset_max: Angle = Angle(3.0, "deg")

    def __post_init__(self) -> None:
        methods = (self.methods,) if isinstance(self.methods, str) else tuple(self.methods)
        unknown = [m for m in methods if m not in SAFE_ENERGY_METHODS]
        if unknown:
            raise ConfigError(f"maps.safe_energy.methods: unknown method {unknown[0]!r}; "
                              f"choose from {list(SAFE_ENERGY_METHODS)}")
        if not methods:
            raise ConfigError("maps.safe_energy.methods: give at least one method (or null for no safe range)")
        object.__setattr__(self, "methods", tuple(dict.fromkeys(methods)))
        for name in ("aeff_percent", "bias_percent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 100:
                raise ConfigError(f"maps.safe_energy.{name}: expected a percentage in (0, 100), got {value!r}")
        if self.position is not None and self.fixed_offset is not None:
            raise ConfigError("maps.safe_energy: position and fixed_offset are mutually exclusive")
        if self.position is not None and not (isinstance(self.position, SkyCoord) and self.position.isscalar):
            raise ConfigError(f"maps.safe_energy.position: expected a sky position, got {self.position!r}")
        for name in ("fixed_offset", "offset_max"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                angle = Angle(value)
            except (u.UnitsError, ValueError, TypeError):
                raise ConfigError(f"maps.safe_energy.{name}: expected an angle, got {value!r}") from None
            if angle.deg < 0 or (name == "offset_max" and angle.deg == 0):
                raise ConfigError(f"maps.safe_energy.{name}: must be positive, got {value!r}")
            object.__setattr__(self, name, angle)

    @classmethod
    def parse(cls, value: Any) -> SafeEnergy | None:
        """From the configuration forms: None, a method name, a list of names, a mapping or a SafeEnergy.

        A mapping has ``methods`` (a name or a list) and the parameters of this class.
        """
        if value is None or isinstance(value, SafeEnergy):
            return value
        if isinstance(value, str) or (isinstance(value, Sequence) and not isinstance(value, Mapping)):
            return cls(methods=value)
        if isinstance(value, Mapping):
            fields = set(cls.__dataclass_fields__)
            unknown = sorted(set(value) - fields)
            if unknown:
                raise ConfigError(f"unknown key 'maps.safe_energy.{unknown[0]}'; known keys: {sorted(fields)}")
            return cls(**value)
        raise ConfigError(f"maps.safe_energy: expected a method name, a list of them or a mapping, got {value!r}")

    @property
    def energy_methods(self) -> tuple[str, ...]:
        """The methods that cut in energy (all but ``offset-max``)."""
        return tuple(m for m in self.methods if m != "offset-max")


def _bins_above(edges: np.ndarray, energy_min: float | None = None, energy_max: float | None = None) -> np.ndarray:
    """Bins lying entirely inside [energy_min, energy_max] (relative tolerance 1e-9)."""
    mask = np.ones(edges.size - 1, dtype=bool)
    if energy_min is not None:
        mask &= edges[:-1] >= energy_min * (1 - 1e-9)
    if energy_max is not None:
        mask &= edges[1:] <= energy_max * (1 + 1e-9)
    return mask


def _first_crossing(energy: np.ndarray, values: np.ndarray, target: float, lo: float, hi: float) -> float:
    """First energy in [lo, hi] where the log-log interpolation of ``values`` crosses ``target``.

    NaN when there is none. The range is scanned on 100 log steps and the crossing refined by
    Brent's method (as Gammapy's root finder does).
    """
    from scipy.optimize import brentq

    log_e = np.log(energy)
    with np.errstate(divide="ignore"):
        log_v = np.log(np.maximum(values, np.finfo(float).tiny))

    def f(x: float) -> float:
        return float(np.exp(np.interp(np.log(x), log_e, log_v)) - target)

    grid = np.geomspace(lo, hi, 101)
    signs = np.sign([f(x) for x in grid])
    change = np.flatnonzero(signs[:-1] * signs[1:] <= 0)
    if change.size == 0 or lo >= hi:
        return float("nan")
    k = change[0]
    if signs[k] == 0:
        return float(grid[k])
    return float(brentq(f, grid[k], grid[k + 1], xtol=1e-12 * grid[k]))


def _evaluation_offset(settings: SafeEnergy, observation: Observation, geometry: SkyGeometry) -> u.Quantity:
    if settings.fixed_offset is not None:
        return u.Quantity(settings.fixed_offset, "deg")
    position = settings.position if settings.position is not None else geometry.center
    return observation.pointing.separation(position).to("deg")


def _aeff_max_threshold(settings: SafeEnergy, observation: Observation, true_edges: np.ndarray,
                        offset: u.Quantity) -> float:
    centres = np.sqrt(true_edges[:-1] * true_edges[1:])
    area = np.nan_to_num(observation.aeff.evaluate(centres * u.TeV, offset).to_value("m2"))
    positive = np.flatnonzero(area > 0)
    if positive.size == 0:
        return float("inf")  # no effective area here: nothing is safe
    lo = centres[positive[0]]
    energy = _first_crossing(centres, area, settings.aeff_percent / 100 * area.max(), lo, centres[-1])
    return lo if np.isnan(energy) else energy


def _edisp_bias_threshold(settings: SafeEnergy, observation: Observation, true_edges: np.ndarray,
                          reco_edges: np.ndarray, offset: u.Quantity) -> float:
    kernel = observation.edisp.kernel(true_edges, reco_edges, offset)
    centres = np.sqrt(true_edges[:-1] * true_edges[1:])
    reco_centres = np.sqrt(reco_edges[:-1] * reco_edges[1:])
    norm = kernel.sum(axis=1)
    mean = np.divide(kernel @ reco_centres, norm, out=np.zeros_like(norm), where=norm > 0)
    bias = (mean - centres) / centres
    peak = centres[np.nanargmax(bias)]
    fraction = settings.bias_percent / 100
    energy = _first_crossing(centres, bias, fraction, peak, centres[-1])
    return (peak if np.isnan(energy) else energy) * (1 + fraction)


def _bkg_peak_threshold(observation: Observation, geometry: SkyGeometry, reco_edges: np.ndarray) -> float:
    # Background counts per reco bin summed over the map's pixels (no offset cut, as Gammapy's
    # per-observation dataset); pixels beyond the IRF's field of view add nothing, so only the
    # box around the pointing that the field reaches is evaluated.
    from xgamma.geometry.spherical import transform_lonlat
    from xgamma.irf.background import fov_coordinates_radec

    reach = 2.0 * max(float(np.max(np.abs(axis.edges))) for axis in observation.bkg.axes[1:])
    try:
        box = geometry.cutout(observation.pointing, reach * u.deg)
    except GeometryError:
        return float("inf")  # the field does not reach the map: nothing is safe
    lon, lat = box.lonlat()
    ra, dec = transform_lonlat(lon.ravel(), lat.ravel(), box.frame, "icrs")
    pointing = observation.pointing
    fov_lon, fov_lat = fov_coordinates_radec(ra, dec, pointing.ra.deg, pointing.dec.deg)
    rate = observation.bkg.integrate_energy(reco_edges * u.TeV, fov_lon * u.deg, fov_lat * u.deg)
    spectrum = np.nan_to_num(rate.value) @ box.solid_angle().ravel()
    return float(reco_edges[int(np.argmax(spectrum))])


def safe_energy_mask(
    observation: Observation,
    geometry: SkyGeometry,
    safe_energy: SafeEnergy | Any,
    *,
    energy_true: u.Quantity | None = None,
) -> np.ndarray:
    """Safe reconstructed-energy bins of one observation.

    Parameters
    ----------
    observation : `~xgamma.io.datastore.Observation`
        The observation (its IRFs are read as the methods need them).
    geometry : `~xgamma.geometry.SkyGeometry`
        Map geometry; its energy axis is the reconstructed-energy axis.
    safe_energy : `SafeEnergy` or a configuration form of it (see `SafeEnergy.parse`), or None
        Methods; None means every bin is safe.
    energy_true : `~astropy.units.Quantity`, optional
        True-energy bin edges of the analysis (``aeff-max`` and ``edisp-bias`` evaluate the
        IRFs at their centres). Default: the reconstructed-energy edges.

    Returns
    -------
    mask : `numpy.ndarray`
        Bool per reconstructed-energy bin.
    """
    settings = SafeEnergy.parse(safe_energy)
    reco = geometry.energy_edges.to_value("TeV")
    mask = np.ones(reco.size - 1, dtype=bool)
    if settings is None:
        return mask
    true = reco if energy_true is None else u.Quantity(energy_true, "TeV").to_value("TeV")
    methods = settings.energy_methods
    offset = _evaluation_offset(settings, observation, geometry) if {"aeff-max", "edisp-bias"} & set(methods) else None
    if "aeff-default" in methods:
        lo, hi = observation.aeff.lo_threshold, observation.aeff.hi_threshold
        mask &= _bins_above(reco, None if lo is None else u.Quantity(lo).to_value("TeV"),
                            None if hi is None else u.Quantity(hi).to_value("TeV"))
    if "aeff-max" in methods:
        mask &= _bins_above(reco, _aeff_max_threshold(settings, observation, true, offset))
    if "edisp-bias" in methods:
        mask &= _bins_above(reco, _edisp_bias_threshold(settings, observation, true, reco, offset))
    if "bkg-peak" in methods:
        mask &= _bins_above(reco, _bkg_peak_threshold(observation, geometry, reco))
    return mask


def safe_offset_max(safe_energy: SafeEnergy | Any, offset_max_deg: float) -> float:
    """The offset cut (deg) of an observation: the map's, tightened by ``offset-max`` if asked."""
    settings = SafeEnergy.parse(safe_energy)
    if settings is None or "offset-max" not in settings.methods:
        return offset_max_deg
    return min(offset_max_deg, float(settings.offset_max.deg))
