"""xgamma: gamma-ray sky-map analysis of IACT DL3 data with xarray and dask."""

from __future__ import annotations

__version__ = "0.1.0"
