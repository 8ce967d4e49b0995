"""Map makers: lazy counts / exposure / background cubes, the safe energy range, exposure in true
energy, energy-dispersion kernels and energy squashing.

The public names are imported on first use: ``xgamma.makers.safe_energy`` or
``xgamma.makers.chunks`` (what the configuration checks and a distributed client's early load
tasks need) do not import xarray and dask.array with the package.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EDispKernel": "xgamma.makers.edisp",
    "make_edisp_kernel": "xgamma.makers.edisp",
    "make_exposure_true": "xgamma.makers.exposure",
    "MAP_VARIABLES": "xgamma.makers.maps",
    "MapProducts": "xgamma.makers.maps",
    "make_map_products": "xgamma.makers.maps",
    "make_maps": "xgamma.makers.maps",
    "make_observation_maps": "xgamma.makers.maps",
    "SAFE_ENERGY_METHODS": "xgamma.makers.safe_energy",
    "SafeEnergy": "xgamma.makers.safe_energy",
    "safe_energy_mask": "xgamma.makers.safe_energy",
    "spectral_weights": "xgamma.makers.squash",
    "squash_energy": "xgamma.makers.squash",
}

__all__ = ["MAP_VARIABLES", "MapProducts", "make_map_products", "make_maps", "make_observation_maps",
           "spectral_weights", "squash_energy", "SAFE_ENERGY_METHODS", "SafeEnergy", "safe_energy_mask",
           "make_exposure_true", "EDispKernel", "make_edisp_kernel"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xgamma.makers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
