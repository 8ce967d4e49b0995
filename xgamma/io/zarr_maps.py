"""Chunked sky maps on disk with zarr: written chunk by chunk, read back lazily.

The celestial WCS is stored the way rioxarray stores a CRS: a scalar coordinate variable
``spatial_ref`` whose attributes hold the WCS (``wcs_header``: the FITS header text; ``frame``,
``projection`` and the main WCS keywords for people reading the store elsewhere), and every map
variable names it in its ``grid_mapping`` attribute. So a plain ``xr.open_zarr`` keeps the
geometry (``ds.counts.sky.geometry`` works on it), and `read_zarr` turns it back into the ``wcs``
coordinate of xgamma maps with their ``lon``/``lat`` indexes. The metadata are consolidated, so
``xr.open_zarr`` opens the store without a warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import xarray as xr

from xgamma.exceptions import DataStoreError
from xgamma.geometry.sky import wcs_frame
from xgamma.io.fits_maps import atomic_path
from xgamma.maps import map_geometry, with_indexes

__all__ = ["write_zarr", "read_zarr", "zarr_dataset", "spatial_ref", "SPATIAL_REF"]

#: The grid-mapping coordinate holding the WCS (rioxarray's name for its CRS coordinate).
SPATIAL_REF = "spatial_ref"
_OLD_WCS_ATTR = "xgamma_wcs_header"  # stores written before spatial_ref
_WCS_KEYS = ("CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2",
             "LONPOLE", "LATPOLE", "RADESYS", "EQUINOX")


def spatial_ref(header: str) -> xr.Variable:
    """The ``spatial_ref`` coordinate variable describing a map's WCS (from its header text)."""
    import numpy as np
    from astropy.io import fits

    cards = fits.Header.fromstring(header)
    attrs = {"wcs_header": header, "grid_mapping_name": "celestial_wcs"}
    ctype = str(cards.get("CTYPE1", ""))
    attrs["frame"] = wcs_frame(ctype)
    attrs["projection"] = ctype[-3:]
    attrs.update({key: cards[key] for key in _WCS_KEYS if key in cards})
    return xr.Variable((), np.int64(0), attrs=attrs)


def write_zarr(maps: xr.Dataset | xr.DataArray, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write maps to a zarr store; dask-backed variables stream chunk by chunk.

    The store is written under a temporary name and renamed when complete, so an interrupted write
    never leaves a store that looks finished.

    Parameters
    ----------
    maps : `xarray.Dataset` or `xarray.DataArray`
        Sky maps (a DataArray needs a name).
    path : path-like
        Output directory (``*.zarr``).
    overwrite : bool
        Replace an existing store. Default is False.
    """
    dataset = zarr_dataset(maps.to_dataset() if isinstance(maps, xr.DataArray) else maps)
    path = Path(path)
    if path.exists() and overwrite:
        import shutil

        shutil.rmtree(path)
    with atomic_path(path, overwrite=overwrite) as tmp, warnings.catch_warnings():
        # Consolidated metadata let xr.open_zarr open the store without a warning; zarr 3 warns
        # that they are not part of its format 3 specification yet.
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        dataset.to_zarr(tmp, mode="w", consolidated=True)
    return path


def zarr_dataset(dataset: xr.Dataset) -> xr.Dataset:
    """The maps as they are stored in zarr (the layout `read_zarr` reads back): the WCS coordinate
    becomes the ``spatial_ref`` grid-mapping coordinate of every variable."""
    # The WCS header text travels in the attributes of the spatial_ref coordinate (zarr v3 has
    # no stable string dtype for a string coordinate).
    wcs_header = str(dataset.coords["wcs"].values) if "wcs" in dataset.coords else None
    separable = wcs_header is None or map_geometry(dataset).separable
    dataset = dataset.drop_vars("wcs", errors="ignore")
    if wcs_header is not None:
        if not separable:
            # lon/lat labels of a TAN/ARC/... map are exact only along one row and column: a plain
            # xr.open_zarr would select pixels with them. Only the exact description is stored
            # (WCS + pixel indices); read_zarr rebuilds the labels.
            dataset = dataset.drop_vars(["lon", "lat"], errors="ignore")
        dataset = dataset.assign_coords({SPATIAL_REF: spatial_ref(wcs_header)})
        dataset = dataset.assign({name: dataset[name].assign_attrs(grid_mapping=SPATIAL_REF)
                                  for name in dataset.data_vars})
    return dataset


def read_zarr(path: str | os.PathLike) -> xr.Dataset:
    """Open a zarr store of maps lazily (dask arrays, the chunks as written).

    Coordinates are rebuilt from the stored WCS (exact ``lon``/``lat`` labels and their
    indexes on separable grids; labels that refuse ``.sel`` on others).
    """
    path = Path(path)
    if not path.exists():
        raise DataStoreError(f"zarr store not found: {path}")
    dataset = xr.open_zarr(path, consolidated=None)
    # Small coordinates are loaded eagerly; only the map variables stay lazy.
    dataset = dataset.assign_coords({name: dataset.coords[name].compute() for name in dataset.coords
                                     if name not in dataset.dims})
    header = dataset.attrs.pop(_OLD_WCS_ATTR, None)
    if SPATIAL_REF in dataset.coords:
        header = dataset.coords[SPATIAL_REF].attrs.get("wcs_header", header)
        dataset = dataset.drop_vars(SPATIAL_REF)
        for name in dataset.data_vars:
            dataset[name].attrs.pop("grid_mapping", None)
    if header is not None:
        dataset = dataset.assign_coords(wcs=header)
        if "pix_lon" in dataset.coords and "pix_lat" in dataset.coords:
            dataset = with_indexes(dataset)  # labels and indexes of lon/lat/energy from the WCS
    return dataset
