"""Analytic, CTA-like instrument response functions for the DL3 simulator.

Every IRF is a closed-form function of true energy and field-of-view offset. The simulator
draws events from these formulas and writes them, tabulated on fine grids, as GADF HDUs
(``aeff_2d``, ``psf_3gauss``, ``edisp_2d``, ``bkg_3d``). The grids are chosen so that the
interpolation a reader applies (log energy, linear offset; log values for the background)
reproduces the formulas to well below Poisson precision of the simulated data:

* effective area: ``A(E, t) = A_max * x**k / (1 + x**k) * exp(-t**2 / (2 s(E)**2))`` with
  ``x = E / E_thr`` and ``s(E) = s_1TeV * (E / 1 TeV)**s_index`` (the field of view widens
  with energy);
* PSF: two Gaussians (the ``psf_3gauss`` format with ``AMPL_3 = 0``); the core width is
  ``sigma_1(E, t) = (a * (E / 1 TeV)**-b + c) * (1 + d * t / 1 deg)``, the tail has
  ``sigma_2 = tail_ratio * sigma_1`` and carries ``tail_fraction`` of the events;
* energy dispersion: the migration ``E_reco / E_true`` is Gaussian with mean
  ``1 + edisp_bias`` and width ``edisp_sigma`` (no bias and 1 % by default: delta-like for any
  analysis binning; up to 25 % to test energy-dispersion analyses), independent of energy and
  offset;
* background: ``B(E, t) = B_0 * (E / 1 TeV)**-Gamma * exp(-t**2 / (2 s_bkg**2))`` per MeV,
  s and sr, a power law in reconstructed energy (exact under log-log interpolation) times a
  smooth radial profile.

``t`` is the angular offset from the pointing position in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import astropy.units as u
import numpy as np
from scipy.special import erf

from xgamma.exceptions import SimulationError

__all__ = ["AnalyticIRF"]


def _tev(value: u.Quantity | float) -> np.ndarray:
    return np.asarray(u.Quantity(value, "TeV").to_value("TeV"), dtype=float)


def _deg(value: u.Quantity | float) -> np.ndarray:
    return np.asarray(u.Quantity(value, "deg").to_value("deg"), dtype=float)


@dataclass(frozen=True)
class AnalyticIRF:
    """Closed-form IRFs of a CTA-like array (see the module docstring for the formulas).

    All parameters are plain floats in the units given by their names so that the object is
    hashable, picklable and trivially serialisable.

    Parameters
    ----------
    aeff_max_m2 : float
        Plateau effective area on axis (m2).
    aeff_threshold_tev : float
        Energy of half the plateau area on axis (TeV).
    aeff_slope : float
        Steepness ``k`` of the threshold turn-on.
    aeff_offset_sigma_deg : float
        Gaussian width of the area's offset fall-off at 1 TeV (deg).
    aeff_offset_sigma_index : float
        Energy index of that width.
    psf_core_a_deg, psf_core_b, psf_core_c_deg, psf_offset_slope : float
        Core Gaussian width ``(a * E**-b + c) * (1 + d * t)`` (deg, E in TeV, t in deg).
    psf_tail_ratio : float
        Tail width over core width.
    psf_tail_fraction : float
        Fraction of events in the tail Gaussian.
    edisp_sigma : float
        Relative Gaussian width of the energy migration (at most 0.25).
    edisp_bias : float
        Mean of the migration minus 1 (in [-0.2, 0.2]; may be 0 or negative).
    bkg_norm : float
        Background rate at 1 TeV on axis (MeV-1 s-1 sr-1).
    bkg_index : float
        Power-law index of the background rate in reconstructed energy.
    bkg_offset_sigma_deg : float
        Gaussian width of the background's radial profile (deg).
    lo_threshold_tev, hi_threshold_tev : float
        Safe energy range written as ``LO_THRES``/``HI_THRES`` in the effective-area header.
    energy_min_tev, energy_max_tev : float
        Energy range covered by the IRF tables (TeV); simulations must stay inside it.
    offset_max_deg : float
        Largest offset covered by the IRF tables (deg).
    """

    aeff_max_m2: float = 4.0e5
    aeff_threshold_tev: float = 0.08
    aeff_slope: float = 2.0
    aeff_offset_sigma_deg: float = 2.0
    aeff_offset_sigma_index: float = 0.1
    psf_core_a_deg: float = 0.04
    psf_core_b: float = 0.4
    psf_core_c_deg: float = 0.02
    psf_offset_slope: float = 0.1
    psf_tail_ratio: float = 2.5
    psf_tail_fraction: float = 0.2
    edisp_sigma: float = 0.01
    edisp_bias: float = 0.0
    bkg_norm: float = 2.0e-5
    bkg_index: float = 2.7
    bkg_offset_sigma_deg: float = 2.5
    lo_threshold_tev: float = 0.1
    hi_threshold_tev: float = 100.0
    energy_min_tev: float = 0.01
    energy_max_tev: float = 300.0
    offset_max_deg: float = 6.0
    # Table binning (not physics): fine enough that reader interpolation is exact to < 1e-3.
    table_bins_per_decade: int = field(default=16, repr=False)
    table_offset_step_deg: float = field(default=0.1, repr=False)
    # A power law is exact under log-log interpolation, so 2 bins per decade suffice; the
    # FoV step bounds the log-interpolation error of the Gaussian profile by
    # step**2 / (8 sigma**2) = 4.5e-4 per axis. Large tables are slow to write (astropy).
    bkg_bins_per_decade: int = field(default=2, repr=False)
    bkg_fov_step_deg: float = field(default=0.15, repr=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value):
                raise SimulationError(f"irf.{f.name}: must be finite, got {value!r}")
            if f.name not in ("psf_offset_slope", "aeff_offset_sigma_index", "edisp_bias") and value <= 0:
                raise SimulationError(f"irf.{f.name}: must be positive, got {value!r}")
        if not 0 <= self.psf_tail_fraction < 1:
            raise SimulationError(
                f"irf.psf_tail_fraction: must be in [0, 1), got {self.psf_tail_fraction!r}"
            )
        if self.energy_min_tev >= self.energy_max_tev:
            raise SimulationError("irf.energy_min_tev: must be below irf.energy_max_tev")
        if self.edisp_sigma > 0.25:
            raise SimulationError(f"irf.edisp_sigma: at most 0.25 is supported, got {self.edisp_sigma!r}")
        if abs(self.edisp_bias) > 0.2:
            raise SimulationError(f"irf.edisp_bias: must be in [-0.2, 0.2], got {self.edisp_bias!r}")

    # ----------------------------------------------------------------- effective area
    def aeff_offset_sigma(self, energy: u.Quantity) -> np.ndarray:
        """Width of the Gaussian offset fall-off of the area at ``energy`` (deg)."""
        return self.aeff_offset_sigma_deg * _tev(energy) ** self.aeff_offset_sigma_index

    def aeff_on_axis(self, energy: u.Quantity) -> u.Quantity:
        """On-axis effective area at true ``energy`` (m2)."""
        x = (_tev(energy) / self.aeff_threshold_tev) ** self.aeff_slope
        return self.aeff_max_m2 * x / (1.0 + x) * u.m**2

    def aeff(self, energy: u.Quantity, offset: u.Quantity) -> u.Quantity:
        """Effective area at true ``energy`` and field-of-view ``offset`` (m2)."""
        t = _deg(offset)
        s = self.aeff_offset_sigma(energy)
        return self.aeff_on_axis(energy) * np.exp(-0.5 * (t / s) ** 2)

    # ----------------------------------------------------------------- PSF
    def psf_sigmas(self, energy: u.Quantity, offset: u.Quantity) -> tuple[np.ndarray, np.ndarray]:
        """Core and tail Gaussian widths (deg) at true ``energy`` and ``offset``."""
        e = _tev(energy)
        t = _deg(offset)
        core = (self.psf_core_a_deg * e**-self.psf_core_b + self.psf_core_c_deg) * (
            1.0 + self.psf_offset_slope * t
        )
        return core, self.psf_tail_ratio * core

    def psf_amplitude_2(self) -> float:
        """``AMPL_2`` of the GADF 3-Gauss PSF: tail/core peak ratio giving ``psf_tail_fraction``."""
        # Component i holds a fraction proportional to ampl_i * sigma_i**2.
        f = self.psf_tail_fraction
        return f / (1.0 - f) / self.psf_tail_ratio**2

    def psf(self, energy: u.Quantity, offset: u.Quantity, rad: u.Quantity) -> u.Quantity:
        """PSF probability density per solid angle at angular distance ``rad`` (sr-1).

        Normalised in the small-angle approximation: the integral over the tangent plane is 1.
        """
        s1, s2 = (np.deg2rad(s) for s in self.psf_sigmas(energy, offset))
        r = np.deg2rad(_deg(rad))
        f = self.psf_tail_fraction
        g1 = np.exp(-0.5 * (r / s1) ** 2) / (2 * np.pi * s1**2)
        g2 = np.exp(-0.5 * (r / s2) ** 2) / (2 * np.pi * s2**2)
        return ((1.0 - f) * g1 + f * g2) / u.sr

    def psf_containment(self, energy: u.Quantity, offset: u.Quantity, rad: u.Quantity) -> np.ndarray:
        """Fraction of the PSF within ``rad`` (small-angle approximation)."""
        s1, s2 = self.psf_sigmas(energy, offset)
        r = _deg(rad)
        f = self.psf_tail_fraction
        return (1 - f) * (1 - np.exp(-0.5 * (r / s1) ** 2)) + f * (1 - np.exp(-0.5 * (r / s2) ** 2))

    # ----------------------------------------------------------------- energy dispersion
    def edisp_migration_density(self, migra_lo: np.ndarray, migra_hi: np.ndarray) -> np.ndarray:
        """Mean probability density of the migration over bins ``[migra_lo, migra_hi)``.

        The bin average (not the value at the centre) so that the tabulated matrix sums
        exactly to the Gaussian's probability inside the table.
        """
        s = self.edisp_sigma * np.sqrt(2.0)
        mean = 1.0 + self.edisp_bias
        prob = 0.5 * (erf((migra_hi - mean) / s) - erf((migra_lo - mean) / s))
        return prob / (migra_hi - migra_lo)

    # ----------------------------------------------------------------- background
    def bkg_energy_rate(self, energy: u.Quantity) -> u.Quantity:
        """On-axis background rate at reconstructed ``energy`` (MeV-1 s-1 sr-1)."""
        return self.bkg_norm * _tev(energy) ** -self.bkg_index * u.Unit("MeV-1 s-1 sr-1")

    def bkg_offset_profile(self, offset: u.Quantity) -> np.ndarray:
        """Radial profile of the background rate (1 on axis)."""
        return np.exp(-0.5 * (_deg(offset) / self.bkg_offset_sigma_deg) ** 2)

    def bkg(self, energy: u.Quantity, fov_lon: u.Quantity, fov_lat: u.Quantity) -> u.Quantity:
        """Background rate at reconstructed ``energy`` and FoV coordinates (MeV-1 s-1 sr-1)."""
        offset = np.hypot(_deg(fov_lon), _deg(fov_lat))
        return self.bkg_energy_rate(energy) * self.bkg_offset_profile(offset)

    def bkg_energy_integral(self, energy_min: u.Quantity, energy_max: u.Quantity) -> u.Quantity:
        """On-axis background rate integrated over ``[energy_min, energy_max]`` (s-1 sr-1)."""
        from xgamma.models.spectral import powerlaw_integral

        integral_tev = powerlaw_integral(_tev(energy_min), _tev(energy_max), self.bkg_index)  # of (E / TeV)**-index
        return self.bkg_norm * 1e6 * integral_tev * u.Unit("s-1 sr-1")

    # ----------------------------------------------------------------- table grids
    def energy_edges(self, bins_per_decade: int | None = None) -> u.Quantity:
        """Log-spaced energy edges of the IRF tables (TeV)."""
        n_dec = np.log10(self.energy_max_tev / self.energy_min_tev)
        n = int(np.ceil(n_dec * (bins_per_decade or self.table_bins_per_decade) - 1e-9))
        return np.geomspace(self.energy_min_tev, self.energy_max_tev, n + 1) * u.TeV

    def offset_edges(self) -> u.Quantity:
        """Linear offset edges of the effective-area and PSF tables, from 0 (deg)."""
        n = int(round(self.offset_max_deg / self.table_offset_step_deg))
        return np.linspace(0.0, self.offset_max_deg, n + 1) * u.deg

    def fov_edges(self) -> u.Quantity:
        """Edges of the background's FoV lon/lat axes, symmetric about 0 (deg)."""
        n = int(round(self.offset_max_deg / self.bkg_fov_step_deg))
        return np.linspace(-self.offset_max_deg, self.offset_max_deg, 2 * n + 1) * u.deg

    def migra_edges(self) -> np.ndarray:
        """Migration edges of the energy-dispersion table.

        0.8 to 1.2 in steps of 0.005, widened when needed to cover the mean +- 8 sigma (from
        0.1 at least) in steps of ``max(0.005, sigma / 10)``: the table holds the Gaussian's
        probability per bin exactly (`edisp_migration_density`), whatever the step.
        """
        mean, width = 1.0 + self.edisp_bias, 8 * self.edisp_sigma
        if mean - width >= 0.8 and mean + width <= 1.2:
            return np.linspace(0.8, 1.2, 81)
        step = max(0.005, self.edisp_sigma / 10)
        lo = max(min(mean - width, 0.8), 0.1)
        n = int(np.ceil((max(mean + width, 1.2) - lo) / step - 1e-9))
        return lo + step * np.arange(n + 1)
