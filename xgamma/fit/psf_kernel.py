"""Mean PSF at a sky position and its normalised convolution kernel on map pixels.

The mean PSF over several observations is weighted by exposure (effective area at the
position's field-of-view offset x livetime); over an energy band it is additionally weighted by
the assumed source spectrum, sampled finely in true energy (log-spaced, midpoint rule in ln E).
The kernel integrates the radial profile over each pixel on an oversampled sub-pixel grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np

from xgamma.exceptions import FitError, GeometryError

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord

    from xgamma.models.spectral import SpectralModel

__all__ = ["PSFProfile", "PSFKernel", "mean_psf", "make_psf_kernel", "kernel_at_offset", "psf_kernel_for_geometry"]


@dataclass
class PSFProfile:
    """Radial PSF density per energy bin (normalised dP/dOmega).

    Attributes
    ----------
    rad : numpy.ndarray
        Radii (deg), 1-D, starting at 0.
    density : numpy.ndarray
        dP/dOmega (sr-1), shape (n_energy, n_rad).
    energy_edges : astropy.units.Quantity
        Energy bin edges (TeV) of the bins the profiles were averaged over.
    weights : numpy.ndarray, optional
        Exposure x flux weight of each bin at the position (cm2 s x flux), zero in bins that
        the safe range removes from every observation.
    centre_weights : numpy.ndarray, optional
        The same with the effective area taken at each bin's log centre (the exposure maps'
        convention): ``weights / centre_weights`` is the factor by which the bin-centre exposure
        misses the spectrum-weighted mean effective area over the bin (`exposure_ratio`).
    """

    rad: np.ndarray
    density: np.ndarray
    energy_edges: u.Quantity
    weights: np.ndarray | None = None
    centre_weights: np.ndarray | None = None
    _tables: dict = field(default_factory=dict, repr=False, compare=False)

    def to_band(self) -> PSFProfile:
        """One profile over the bins with weight: their weighted mean (the PSF of a squashed image).

        Weighted by ``weights`` (exposure x flux of each bin, zero where the safe range cut it),
        the weighting of `~xgamma.makers.squash_energy`'s exposure; the band runs from the first
        to the last bin with weight.
        """
        weights = np.ones(len(self.density)) if self.weights is None else np.asarray(self.weights, float)
        used = np.flatnonzero(weights > 0)
        if used.size == 0:
            raise FitError("PSF profile: no energy bin has exposure (every bin is outside the safe range)")
        density = weights @ self.density / weights.sum()
        edges = self.energy_edges[[used[0], used[-1] + 1]]
        centre = None if self.centre_weights is None else np.atleast_1d(np.sum(self.centre_weights[used]))
        return PSFProfile(rad=self.rad, density=density[None, :], energy_edges=edges, weights=weights[None, used].sum(1),
                          centre_weights=centre)

    def exposure_ratio(self) -> np.ndarray:
        """Per bin, the spectrum-weighted mean effective area over the bin / the area at its centre.

        1 where unknown (no ``centre_weights``) or where the area at the centre is 0 (nothing is
        predicted there whatever the factor).
        """
        if self.weights is None or self.centre_weights is None:
            return np.ones(len(self.density))
        weights, centre = np.asarray(self.weights, float), np.asarray(self.centre_weights, float)
        return np.divide(weights, centre, out=np.ones_like(weights), where=centre > 0)

    def r2_table(self, radius: float, *, size: int = 4096) -> tuple[float, np.ndarray]:
        """Density truncated at ``radius`` (deg) on a uniform grid of r^2, cached.

        The truncation is continuous: the density is tapered to 0 by a cosine over the outer
        10 % of the radius, so that moving a source by a fraction of a sub-pixel changes its
        stamp continuously (a sharp cut makes the likelihood jump as sub-pixels cross the
        circle, which stalls MIGRAD). The flux the cut and the taper remove is `enclosed`'s
        complement (0.1-0.2 % for kernels at 99.9 % containment).

        Returns
        -------
        step : float
            r^2 step (deg^2).
        table : numpy.ndarray
            Shape (n_energy, size + 1), sr-1; the last column is 0 (beyond the radius).
        """
        key = (float(radius), size)
        if key not in self._tables:
            r2 = np.linspace(0.0, radius**2, size)
            r = np.sqrt(r2)
            rows = [np.append(np.interp(r, self.rad, dens, right=0.0) * _taper(r, radius), 0.0) for dens in self.density]
            self._tables[key] = (radius**2 / (size - 1), np.array(rows))
        return self._tables[key]

    def enclosed(self, radius: float) -> np.ndarray:
        """Fraction of the PSF that the density truncated at ``radius`` (deg) holds, per energy bin.

        The integral (2 pi r dr) of the tapered density of `r2_table` over that of the whole
        tabulated profile: what a kernel cut at ``radius`` must sum to so that the flux of the
        far tail is not put into the core (the data have it spread far from the source, where
        the background absorbs it).
        """
        total = self.containment()[:, -1]
        inside = _cumulative_2pi_r(self.rad, self.density * _taper(self.rad, radius))[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, inside / total, 1.0)

    def containment(self) -> np.ndarray:
        """Cumulative containment at each radius, shape (n_energy, n_rad) (trapezoid in 2 pi r dr)."""
        return _cumulative_2pi_r(self.rad, self.density)

    def containment_radius(self, fraction: float) -> u.Quantity:
        """Radius (deg) containing ``fraction`` of the PSF, per energy bin."""
        cont = self.containment()
        return u.Quantity([np.interp(fraction, c, self.rad) for c in cont], "deg")


def _cumulative_2pi_r(rad_deg: np.ndarray, density: np.ndarray) -> np.ndarray:
    """Cumulative integral of ``density`` (sr-1, rows per energy) in 2 pi r dr from 0 to each radius (trapezoid)."""
    r = np.radians(rad_deg)
    integrand = density * 2.0 * np.pi * r
    steps = 0.5 * (integrand[:, 1:] + integrand[:, :-1]) * np.diff(r)
    return np.concatenate([np.zeros((density.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)


def _taper(r: np.ndarray, radius: float) -> np.ndarray:
    """1 inside 0.9 ``radius``, a cosine down to 0 at ``radius``, 0 beyond."""
    t = np.clip((np.asarray(r) - 0.9 * radius) / (0.1 * radius), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


@dataclass
class PSFKernel:
    """Normalised PSF convolution kernels on a map's pixel grid.

    Which kernel meets which source: a point source needs the PSF integrated over the pixels
    (``data``, or a stamp at its exact position). An extended source is already integrated over
    the pixels (its flux fraction per pixel), so it needs the PSF density at the pixel centres
    (``sampled``): integrating the PSF over the pixels a second time would count the pixel's
    variance (p^2 / 12 per axis) twice and make fitted sizes come out low.

    Attributes
    ----------
    data : numpy.ndarray
        Pixel-integrated kernels, shape (n_energy, 2 n + 1, 2 n + 1); each sums to 1 when
        normalised (the convolution kernel of a point source).
    pixel_scale : float
        Pixel size (deg) the kernels were made for.
    energy_edges : astropy.units.Quantity
        Energy bins (TeV), one kernel each.
    r68, r95 : astropy.units.Quantity
        68 % and 95 % containment radii (deg) of the mean PSF per energy bin.
    containment : numpy.ndarray
        Fraction of the PSF inside the kernel's radius before normalisation, per energy bin.
    profile : PSFProfile, optional
        The radial profile the kernels came from; point sources use it to build their kernel
        at their exact sub-pixel position (smooth likelihood in position).
    radius : float
        Truncation radius (deg).
    oversample : int
        Sub-pixels per axis used for the pixel integration.
    sampled : numpy.ndarray, optional
        The PSF density at the pixel centres times the pixel solid angle, shape and
        normalisation as ``data`` (the convolution kernel of an extended source).
    enclosed : numpy.ndarray, optional
        Per energy bin, the fraction of the PSF the truncated kernel stands for
        (`PSFProfile.enclosed`): predictions scale the normalised kernels by it. Default 1.
    exposure_ratio : numpy.ndarray, optional
        Per energy bin, a factor on the source's predicted counts: the spectrum-weighted mean
        effective area over the bin relative to the area at the bin centre that the exposure
        maps hold (`PSFProfile.exposure_ratio`; made with ``spectral_exposure``). Default 1.
    """

    data: np.ndarray
    pixel_scale: float
    energy_edges: u.Quantity
    r68: u.Quantity
    r95: u.Quantity
    containment: np.ndarray
    profile: PSFProfile | None = None
    radius: float = np.inf
    oversample: int = 8
    sampled: np.ndarray | None = None
    enclosed: np.ndarray | None = None
    exposure_ratio: np.ndarray | None = None

    @property
    def extended_data(self) -> np.ndarray:
        """The kernels for sources already integrated over the pixels: ``sampled`` if made, else ``data``."""
        return self.data if self.sampled is None else self.sampled

    def flux_fraction(self) -> np.ndarray:
        """Per energy bin, the factor on a source's counts: the flux the kernels hold (``enclosed``)
        times the in-bin effective-area correction (``exposure_ratio``); 1 where unset."""
        out = np.ones(self.data.shape[0])
        for factor in (self.enclosed, self.exposure_ratio):
            if factor is not None:
                out = out * np.asarray(factor, dtype=float)
        return out

    @property
    def radius_pix(self) -> int:
        """Kernel half-size in pixels."""
        return self.data.shape[-1] // 2

    def __repr__(self) -> str:
        return (f"PSFKernel(shape={self.data.shape}, pixel_scale={self.pixel_scale:g} deg, "
                f"r68={np.round(self.r68.value, 4).tolist()} deg, r95={np.round(self.r95.value, 4).tolist()} deg)")


def _energy_samples(edges_tev: np.ndarray, per_bin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-spaced midpoints, their widths dE (TeV) and their bin index."""
    energies, widths, index = [], [], []
    for i, (lo, hi) in enumerate(zip(edges_tev[:-1], edges_tev[1:])):
        grid = np.geomspace(lo, hi, per_bin + 1)
        energies.append(np.sqrt(grid[1:] * grid[:-1]))
        widths.append(np.diff(grid))
        index.append(np.full(per_bin, i))
    return np.concatenate(energies), np.concatenate(widths), np.concatenate(index)


def mean_psf(
    observations: Sequence[Any],
    position: SkyCoord,
    *,
    energy_edges: u.Quantity,
    spectrum: SpectralModel | None = None,
    masks: Sequence[np.ndarray] | None = None,
    offset_max: u.Quantity | None = None,
    rad_max: u.Quantity | None = None,
    n_rad: int = 600,
    samples_per_bin: int = 16,
) -> PSFProfile:
    """Exposure- and spectrum-weighted mean PSF at ``position``, per energy bin.

    Parameters
    ----------
    observations : sequence of Observation
        Each gives ``.psf``, ``.aeff``, ``.pointing`` and ``.livetime``.
    position : astropy.coordinates.SkyCoord
        Sky position where the PSF is evaluated (its offset from each pointing).
    energy_edges : astropy.units.Quantity
        Energy bins; one mean profile per bin (pass the band's two edges for an image).
    spectrum : SpectralModel, optional
        Assumed source spectrum for the in-band weighting. Default: power law, index 2.
    masks : sequence of numpy.ndarray, optional
        Per observation, a bool per energy bin: its safe range. An observation adds nothing to
        the bins outside it (as its exposure there is zero).
    offset_max : astropy.units.Quantity, optional
        Observations whose pointing is this far or farther from ``position`` add nothing (the
        maps' offset cut). Default: no cut.
    rad_max : astropy.units.Quantity, optional
        Largest radius tabulated. Default: the largest 99.99 % containment radius over the
        observations and energies sampled, x 1.1.
    n_rad : int
        Number of radii (linearly spaced from 0).
    samples_per_bin : int
        True-energy samples per bin (log-spaced).

    Returns
    -------
    PSFProfile
        Density in sr-1 per energy bin; ``weights`` holds each bin's exposure x flux weight.
        Where that weight is zero (every observation masked, or no effective area) the profile
        is the unmasked mean, or the nearest bin's: nothing multiplies it in a prediction.

    Raises
    ------
    FitError
        If no observation gives positive exposure at ``position`` in any bin.
    """
    from xgamma.models.spectral import PowerLaw

    if len(observations) == 0:
        raise FitError("mean_psf: no observations given")
    spectrum = spectrum or PowerLaw(index=2.0)
    edges = u.Quantity(energy_edges).to_value("TeV")
    n_bins = len(edges) - 1
    if masks is not None and (len(masks) != len(observations)
                              or any(np.shape(m) != (n_bins,) for m in masks)):
        raise FitError(f"mean_psf: masks must be one bool array of {n_bins} bins per observation")
    energy, d_e, index = _energy_samples(edges, samples_per_bin)
    flux = spectrum(energy * u.TeV).value * d_e
    offsets = [obs.pointing.separation(position).deg for obs in observations]
    cut = np.inf if offset_max is None else u.Quantity(offset_max, "deg").value
    used = [k for k, off in enumerate(offsets) if off < cut]
    if not used:
        raise FitError(f"mean_psf: {position} is beyond offset_max = {cut} deg of every observation")
    if rad_max is None:
        radii = [observations[k].psf.containment_radius(0.9999, energy, offsets[k]).to_value("deg") for k in used]
        rmax = 1.1 * float(np.nanmax(radii))
    else:
        rmax = u.Quantity(rad_max).to_value("deg")
    rad = np.linspace(0.0, rmax, n_rad)
    num = np.zeros((2, n_bins, n_rad))  # [unmasked, masked]
    den = np.zeros((2, n_bins))
    centre_den = np.zeros(n_bins)  # masked, with the area at the bin centres
    flux_per_bin = np.bincount(index, weights=flux, minlength=n_bins)
    centres = np.sqrt(edges[:-1] * edges[1:])
    for k in used:
        obs, off = observations[k], offsets[k]
        aeff = obs.aeff.evaluate(energy * u.TeV, off * u.deg).to_value("cm2")
        w = flux * np.clip(np.nan_to_num(aeff), 0.0, None) * obs.livetime.to_value("s")
        dens = obs.psf.evaluate(energy[:, None] * u.TeV, off * u.deg, rad[None, :] * u.deg).to_value("sr-1")
        keep = np.ones(n_bins) if masks is None else np.asarray(masks[k], dtype=float)
        for row, factor in enumerate((1.0, keep[index])):
            np.add.at(num[row], index, (w * factor)[:, None] * dens)
            np.add.at(den[row], index, w * factor)
        aeff_centre = np.clip(np.nan_to_num(obs.aeff.evaluate(centres * u.TeV, off * u.deg).to_value("cm2")), 0.0, None)
        centre_den += flux_per_bin * aeff_centre * obs.livetime.to_value("s") * keep
    if not np.any(den[0] > 0):
        raise FitError(f"mean_psf: zero exposure at {position} in every energy bin")
    # Bins without exposure at all (e.g. below the IRF's energy range) take the nearest bin's
    # profile: nothing multiplies it, but every bin needs a normalised kernel.
    have = np.flatnonzero(den[0] > 0)
    nearest = have[np.abs(np.arange(n_bins)[:, None] - have[None, :]).argmin(axis=1)]
    row = np.where(den[1, nearest] > 0, 1, 0)
    density = num[row, nearest] / den[row, nearest][:, None]
    return PSFProfile(rad=rad, density=density, energy_edges=u.Quantity(edges, "TeV"), weights=den[1],
                      centre_weights=centre_den)


def make_psf_kernel(
    profile: PSFProfile,
    *,
    pixel_scale: float | u.Quantity,
    max_radius: u.Quantity | None = None,
    containment: float = 0.999,
    oversample: int = 8,
    normalize: bool = True,
    spectral_exposure: bool = False,
) -> PSFKernel:
    """Kernel on square pixels of ``pixel_scale`` from a radial profile (sub-pixel integration).

    Parameters
    ----------
    profile : PSFProfile
        Mean PSF per energy bin.
    pixel_scale : float or Quantity
        Pixel size (deg).
    max_radius : Quantity, optional
        Kernel radius. Default: the ``containment`` radius of the widest energy bin.
    containment : float
        Containment fraction setting the default radius.
    oversample : int
        Sub-pixels per axis for the integration over each pixel.
    normalize : bool
        Scale each kernel to sum to 1. Predictions then scale it by the fraction of the PSF
        inside the radius (``enclosed``), so that the flux of the far tail is not put into the
        core; without ``normalize`` the kernels hold their pixel integrals as computed.
    spectral_exposure : bool
        Also carry `PSFProfile.exposure_ratio` (``exposure_ratio``): predictions then use the
        spectrum-weighted mean effective area over each bin instead of the area at its centre
        (the exposure maps' and Gammapy's convention, which over wide bins where the area
        changes fast biases fluxes low). Off by default, to match Gammapy.

    Returns
    -------
    PSFKernel
        With ``data`` (pixel-integrated, for point sources) and ``sampled`` (at the pixel
        centres, for sources already integrated over the pixels).
    """
    scale = u.Quantity(pixel_scale, "deg").to_value("deg")
    if not scale > 0:
        raise GeometryError(f"pixel_scale must be positive, got {pixel_scale}")
    if max_radius is None:
        radius = float(np.max(profile.containment_radius(containment).value))
    else:
        radius = u.Quantity(max_radius).to_value("deg")
    radius = min(radius, float(profile.rad[-1]))
    n = max(int(np.ceil(radius / scale)), 1)
    data, sampled = (kernel_at_offset(profile, n=n, size_x=scale, size_y=scale, dx=0.0, dy=0.0, radius=radius,
                                      oversample=factor, normalize=normalize) for factor in (oversample, 1))
    # Fraction of the PSF inside the truncation radius (from the radial profile).
    inside = np.array([np.interp(radius, profile.rad, c) for c in profile.containment()])
    return PSFKernel(data=data, pixel_scale=scale, energy_edges=profile.energy_edges,
                     r68=profile.containment_radius(0.68), r95=profile.containment_radius(0.95),
                     containment=inside, profile=profile, radius=radius, oversample=oversample, sampled=sampled,
                     enclosed=profile.enclosed(radius) if normalize else None,
                     exposure_ratio=profile.exposure_ratio() if spectral_exposure else None)


@lru_cache(maxsize=32)
def _substeps(n: int, oversample: int) -> np.ndarray:
    """Sub-pixel centre offsets (pixels) of a (2n+1)-pixel stamp axis, ``oversample`` per pixel."""
    offsets = (np.arange(oversample) + 0.5) / oversample - 0.5
    steps = (np.arange(-n, n + 1)[:, None] + offsets).ravel()
    steps.flags.writeable = False  # cached and shared: read-only
    return steps


def kernel_at_offset(profile: PSFProfile, *, n: int, size_x: float, size_y: float, dx: float, dy: float,
                     radius: float, oversample: int, normalize: bool = True,
                     mix: np.ndarray | None = None) -> np.ndarray:
    """Pixel-integrated PSF on a (2n+1)^2 pixel stamp whose true centre is offset by (dx, dy) pixels.

    Parameters
    ----------
    profile : PSFProfile
        Radial density per energy bin.
    n : int
        Stamp half-size (pixels).
    size_x, size_y : float
        True angular pixel sizes (deg) along the x (lon) and y (lat) axes.
    dx, dy : float
        Position of the PSF centre relative to the central pixel's centre (pixels).
    radius : float
        Truncation radius (deg); the PSF is zero beyond.
    oversample : int
        Sub-pixels per axis (midpoint rule).
    normalize : bool
        Scale each energy's stamp to sum to 1.
    mix : numpy.ndarray, optional
        Shape (n_out, n_energy): stamps of these weighted means of the profiles instead (rows
        sum to 1), e.g. a source's PSF in a reconstructed-energy bin, mixed over true energy.

    Returns
    -------
    numpy.ndarray
        Shape (n_energy, 2n+1, 2n+1) (or (n_out, ...)); probability per pixel.
    """
    steps = _substeps(n, oversample)
    px2 = np.square((steps - dx) * size_x)
    py2 = np.square((steps - dy) * size_y)
    step, table = profile.r2_table(radius)
    if mix is not None:
        table = mix @ table  # the stamp is linear in the density
    # Linear interpolation in r^2 on a uniform table: index arithmetic instead of a search.
    pos = np.add.outer(py2, px2)
    pos *= 1.0 / step
    np.minimum(pos, table.shape[1] - 1.0, out=pos)
    i = pos.astype(np.intp)
    pos -= i
    values = table[:, i]
    values += pos * (table[:, np.minimum(i + 1, table.shape[1] - 1)] - values)
    size = 2 * n + 1
    omega_sub = np.radians(size_x / oversample) * np.radians(size_y / oversample)
    out = values.reshape(-1, size, oversample, size, oversample).sum(axis=(2, 4))
    out *= omega_sub
    if normalize:
        out /= out.sum(axis=(1, 2))[:, None, None]
    return out


def psf_kernel_for_geometry(
    observations: Sequence[Any],
    geometry: Any,
    position: SkyCoord,
    *,
    spectrum: SpectralModel | None = None,
    image: bool = False,
    safe_energy: Any = None,
    offset_max: u.Quantity | None = None,
    energy_true: u.Quantity | None = None,
    max_radius: u.Quantity | None = None,
    containment: float = 0.999,
    oversample: int = 8,
    spectral_exposure: bool = False,
) -> PSFKernel:
    """Kernel(s) for a map geometry: one per energy bin, or one over the whole band (``image``).

    Parameters
    ----------
    observations : sequence of Observation
        Observations contributing to the map.
    geometry : SkyGeometry
        Map geometry (pixel scale and energy edges).
    position : SkyCoord
        Where the PSF is evaluated (usually the source of interest).
    spectrum : SpectralModel, optional
        Spectrum weighting energies within each bin (and the bins of an image). Default:
        power law of index 2.
    image : bool
        One kernel for the band (squashed images): the mean of the per-bin profiles weighted by
        spectrum x exposure at ``position`` over the safe bins, as `~xgamma.makers.squash_energy`
        weights the exposure.
    safe_energy : SafeEnergy or a configuration form, optional
        The maps' safe range: each observation counts only in its safe bins (without energy
        dispersion, where the exposure is cut the same way). Ignored with ``energy_true``.
    offset_max : Quantity, optional
        The maps' offset cut: observations farther from ``position`` do not count.
    energy_true : Quantity, optional
        True-energy edges: one kernel per true-energy bin (for an exposure in true energy;
        with energy dispersion the safe range acts through the migration kernel instead).
    max_radius, containment, oversample, spectral_exposure
        See `make_psf_kernel`.
    """
    from xgamma.makers.safe_energy import SafeEnergy, safe_energy_mask, safe_offset_max

    settings = SafeEnergy.parse(safe_energy)
    if offset_max is not None:
        offset_max = safe_offset_max(settings, u.Quantity(offset_max, "deg").value) * u.deg
    if energy_true is not None:
        edges, masks = u.Quantity(energy_true, "TeV"), None
    else:
        edges = u.Quantity(geometry.energy_edges).to("TeV")
        masks = None if settings is None else [safe_energy_mask(o, geometry, settings) for o in observations]
    profile = mean_psf(observations, position, energy_edges=edges, spectrum=spectrum, masks=masks,
                       offset_max=offset_max)
    if image:
        profile = profile.to_band()
    return make_psf_kernel(profile, pixel_scale=geometry.pixel_scale, max_radius=max_radius,
                           containment=containment, oversample=oversample, spectral_exposure=spectral_exposure)
