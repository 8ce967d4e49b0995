"""xgamma: gamma-ray sky-map analysis of IACT DL3 data with xarray and dask.

``import xgamma`` is light (no xarray, astropy, dask, scipy, matplotlib or zarr): the public names
below are imported on first use, and the ``.sky`` accessor is registered on xarray objects as soon
as xarray is imported (now if it already is, else right after its import completes), so that
``DataArray.sky`` exists in any program that imported xgamma.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import Any

from xgamma.exceptions import XgammaError
from xgamma.version import __version__

_LAZY = {
    "SkyGeometry": "xgamma.geometry",
    "energy_edges": "xgamma.geometry",
    "hookimpl": "xgamma.plugin.spec",
    "DataStore": "xgamma.io.datastore",
    "make_maps": "xgamma.makers",
    "make_map_products": "xgamma.makers",
    "make_observation_maps": "xgamma.makers",
    "squash_energy": "xgamma.makers",
    "read_maps": "xgamma.io.fits_maps",
    "write_maps": "xgamma.io.fits_maps",
    "read_zarr": "xgamma.io.zarr_maps",
    "write_zarr": "xgamma.io.zarr_maps",
    "make_map": "xgamma.maps",
}

__all__ = ["XgammaError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xgamma' has no attribute {name!r}")


class _RegisterAccessorAfterXarray(importlib.abc.MetaPathFinder):
    """Import finder that lets xarray load normally, then imports `xgamma.accessor` (which registers ``.sky``)."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "xarray":
            return None
        sys.meta_path.remove(self)  # one shot; the other finders locate xarray
        from importlib.util import find_spec

        spec = find_spec("xarray")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_xarray = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            exec_xarray(module)
            importlib.import_module("xgamma.accessor")

        spec.loader.exec_module = exec_module  # this loader instance serves this import only
        return spec


if "xarray" in sys.modules:
    importlib.import_module("xgamma.accessor")
elif not any(isinstance(finder, _RegisterAccessorAfterXarray) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAccessorAfterXarray())
