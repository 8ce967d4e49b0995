"""Public test helpers for xgamma and its plugins."""

from __future__ import annotations

from xgamma.testing.dask import CountingScheduler, raise_if_dask_computes

__all__ = ["CountingScheduler", "raise_if_dask_computes"]
