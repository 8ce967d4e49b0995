"""PSF and energy-dispersion kernels of each source, at the source's own position.

The IRFs vary over the field of view; a source is best described by the kernels at its own
position (its offset from each pointing), weighted over energy with its own spectrum. This
module builds them for a list of sky models: the inputs of `MapDataset`'s ``psf`` and ``edisp``
mappings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import astropy.units as u
from astropy.coordinates import SkyCoord

from xgamma.fit.edisp_check import check_true_energy_axis
from xgamma.fit.psf_kernel import PSFKernel, psf_kernel_for_geometry
from xgamma.makers.edisp import EDispKernel, make_edisp_kernel
from xgamma.models.sky_model import SkyModel

__all__ = ["source_position", "source_kernels"]


def source_position(model: SkyModel) -> SkyCoord:
    """Centre of a sky model's spatial component (ICRS)."""
    lon, lat = model.spatial.position_in("icrs")
    return SkyCoord(lon, lat, unit="deg", frame="icrs")


def source_kernels(
    observations: Sequence[Any],
    geometry: Any,
    models: Sequence[Any],
    *,
    offset_max: u.Quantity,
    safe_energy: Any = None,
    energy_true: u.Quantity | None = None,
    edisp: bool = False,
    position: SkyCoord | None = None,
    spectrum: Any = None,
    image: bool = False,
    max_radius: u.Quantity | None = None,
    containment: float = 0.999,
    spectral_exposure: bool = False,
) -> tuple[dict[str, PSFKernel], dict[str, EDispKernel] | None]:
    """PSF (and migration) kernels of every sky model in ``models``.

    Parameters
    ----------
    observations : sequence of Observation
        The stacked observations.
    geometry : SkyGeometry
        Map geometry (reconstructed-energy axis).
    models : sequence
        Models of the dataset; a kernel is made for each `SkyModel` (others are skipped).
    offset_max : Quantity
        The maps' offset cut.
    safe_energy : SafeEnergy or a configuration form, optional
        The maps' safe range.
    energy_true : Quantity, optional
        True-energy edges of the exposure; with ``edisp`` the PSF kernels are per true bin.
        Default: the reconstructed edges.
    edisp : bool
        Also make migration kernels (the maps' exposure is then ``exposure_true``), and warn
        (`~xgamma.exceptions.DataWarning`) when the true-energy axis is too coarse for the
        migration at a source (`~xgamma.fit.edisp_check.check_true_energy_axis`).
    position : SkyCoord, optional
        Evaluate every source's kernels here instead of at its own position.
    spectrum : SpectralModel, optional
        Spectrum weighting the PSF within each energy bin. Default: each source's own
        spectrum (at its current parameter values).
    image : bool
        One PSF kernel over the band (for squashed images; without ``edisp`` only).
    max_radius, containment, spectral_exposure
        See `~xgamma.fit.make_psf_kernel` (``spectral_exposure``: each source's counts use its
        spectrum-weighted mean effective area over each bin, at its position, instead of the
        area at the bin centre).

    Returns
    -------
    psf : dict
        Source name -> `PSFKernel`.
    edisp : dict or None
        Source name -> `EDispKernel` (None without ``edisp``).
    """
    edges = geometry.energy_edges if energy_true is None else u.Quantity(energy_true, "TeV")
    psf: dict[str, PSFKernel] = {}
    migration: dict[str, EDispKernel] | None = {} if edisp else None
    for model in models:
        if not isinstance(model, SkyModel):
            continue
        where = position if position is not None else source_position(model)
        weighting = spectrum if spectrum is not None else model.spectral.copy()
        psf[model.name] = psf_kernel_for_geometry(
            observations, geometry, where, spectrum=weighting, image=image and not edisp, safe_energy=safe_energy,
            offset_max=offset_max, energy_true=edges if edisp else None, max_radius=max_radius,
            containment=containment, spectral_exposure=spectral_exposure)
        if migration is not None:
            migration[model.name] = make_edisp_kernel(observations, geometry, where, energy_true=edges,
                                                      offset_max=offset_max, safe_energy=safe_energy)
            check_true_energy_axis(observations, where, energy_true=edges, energy=geometry.energy_edges,
                                   spectrum=weighting, offset_max=offset_max, source=model.name)
    return psf, migration
