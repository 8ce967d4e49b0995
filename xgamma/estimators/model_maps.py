"""Predicted counts of a map dataset's models as a lazy map (the null hypothesis of TS maps)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from xgamma.fit.dataset import MapDataset

__all__ = ["npred_map"]


def _npred_values(counts: np.ndarray, exposure: np.ndarray, background: np.ndarray | None, *, geometry: Any,
                  exposure_units: str, psf: Any, models: list, point_method: str) -> np.ndarray:
    """Total predicted counts of ``models`` on numpy maps (runs inside one task)."""
    from xgamma.fit.dataset import MapDataset
    from xgamma.maps import make_map

    dataset = MapDataset(make_map(counts, geometry), make_map(exposure, geometry, units=exposure_units),
                         None if background is None else make_map(background, geometry), psf=psf,
                         models=models, point_method=point_method)
    return np.asarray(dataset.npred().values, dtype=float)


def npred_map(dataset: MapDataset) -> xr.DataArray:
    """Total predicted counts (background model and every sky model) of ``dataset`` as a map.

    Lazy (one task for the whole map, as a fit) when the dataset's maps are dask-backed;
    computed at once for numpy maps. The models are copied: later changes to them do not
    change the result.

    Returns
    -------
    npred : `xarray.DataArray`
        Counts, dims ("energy", "lat", "lon"), coords of ``dataset.counts``.
    """
    import dask
    import dask.array as da

    from xgamma.maps import map_geometry

    inputs = [dataset.counts.data, dataset.exposure.data,
              None if dataset.background is None else dataset.background.data]
    options = dict(geometry=map_geometry(dataset.counts), exposure_units=dataset.exposure.attrs.get("units", ""),
                   psf=dataset.psf, models=[m.copy() for m in dataset.models], point_method=dataset.point_method)
    if any(isinstance(a, da.Array) for a in inputs):
        task = dask.delayed(_npred_values, pure=True)(*inputs, **options)
        data = da.from_delayed(task, shape=dataset.counts.shape, dtype=float)
        chunks = dataset.counts.data.chunks if isinstance(dataset.counts.data, da.Array) else None
        if chunks is not None:
            data = data.rechunk(chunks)
    else:
        data = _npred_values(*inputs, **options)
    return xr.DataArray(data, dims=dataset.counts.dims, coords=dataset.counts.coords, name="npred",
                        attrs={"units": ""})
