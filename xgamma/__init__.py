"""xgamma: gamma-ray sky-map analysis of IACT DL3 data with xarray and dask.

Importing xgamma registers the ``.sky`` accessor on xarray objects; heavy modules (the data
store, map makers, fitting, plugins) are imported on first use so the import stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from xgamma import accessor as _accessor  # noqa: F401  (registers DataArray.sky / Dataset.sky)
from xgamma.exceptions import XgammaError
from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.plugin.spec import hookimpl
from xgamma.version import __version__

_LAZY = {
    "DataStore": "xgamma.io.datastore",
    "make_maps": "xgamma.makers",
    "make_observation_maps": "xgamma.makers",
    "squash_energy": "xgamma.makers",
    "read_maps": "xgamma.io.fits_maps",
    "write_maps": "xgamma.io.fits_maps",
    "read_zarr": "xgamma.io.zarr_maps",
    "write_zarr": "xgamma.io.zarr_maps",
    "make_map": "xgamma.maps",
}

__all__ = ["SkyGeometry", "XgammaError", "energy_edges", "hookimpl", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xgamma' has no attribute {name!r}")
