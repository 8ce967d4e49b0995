"""Instrument response functions read from GADF DL3 files (pure numpy evaluation).

Interpolation conventions follow Gammapy 2.1 so that maps agree with it (see ``_grid``).
"""

from __future__ import annotations

from xgamma.irf.aeff import EffectiveArea2D
from xgamma.irf.background import Background2D, Background3D, fov_coordinates, fov_coordinates_radec
from xgamma.irf.edisp import EnergyDispersion2D
from xgamma.irf.psf import PSF3Gauss, PSFKing, PSFTable
from xgamma.irf.readers import builtin_irf_readers, read_irf

__all__ = [
    "EffectiveArea2D",
    "Background3D",
    "Background2D",
    "fov_coordinates",
    "fov_coordinates_radec",
    "EnergyDispersion2D",
    "PSF3Gauss",
    "PSFTable",
    "PSFKing",
    "builtin_irf_readers",
    "read_irf",
]
