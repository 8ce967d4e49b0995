"""Map makers: lazy counts / exposure / background cubes, the safe energy range, exposure in true
energy, energy-dispersion kernels and energy squashing."""

from __future__ import annotations

from xgamma.makers.edisp import EDispKernel, make_edisp_kernel
from xgamma.makers.exposure import make_exposure_true
from xgamma.makers.maps import MAP_VARIABLES, MapProducts, make_map_products, make_maps, make_observation_maps
from xgamma.makers.safe_energy import SAFE_ENERGY_METHODS, SafeEnergy, safe_energy_mask
from xgamma.makers.squash import spectral_weights, squash_energy

__all__ = ["MAP_VARIABLES", "MapProducts", "make_map_products", "make_maps", "make_observation_maps",
           "spectral_weights", "squash_energy", "SAFE_ENERGY_METHODS", "SafeEnergy", "safe_energy_mask",
           "make_exposure_true", "EDispKernel", "make_edisp_kernel"]
