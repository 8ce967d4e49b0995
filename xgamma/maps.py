"""Sky maps as labelled xarray objects: build them from a geometry, recover the geometry from them."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import astropy.units as u
import numpy as np
import xarray as xr
from astropy.io import fits
from astropy.wcs import WCS

from xgamma.exceptions import GeometryError
from xgamma.geometry import ENERGY_DIMS, SkyGeometry

__all__ = ["SPATIAL_DIMS", "MAP_DIMS", "GEOMETRY_INDEXES", "dataset_from_arrays", "in_order", "index_geometry_coords",
           "make_map", "map_geometry", "map_units", "with_indexes", "with_units"]

SPATIAL_DIMS = ("lat", "lon")
MAP_DIMS = ("energy", "lat", "lon")
#: Non-dimension coordinates that carry the geometry. `SkyGeometry.coords` indexes them: xarray
#: keeps indexed coordinates in memory, so `Dataset.chunk` never makes them dask arrays and
#: recovering the geometry of a lazy map (`map_geometry`) computes nothing.
GEOMETRY_INDEXES = ("pix_lon", "pix_lat", "energy_min", "energy_max")


def make_map(data: Any, geometry: SkyGeometry, *, name: str | None = None, units: str | u.UnitBase = "",
             energy_dim: str = "energy") -> xr.DataArray:
    """Wrap an array (numpy or dask) of shape ``geometry.data_shape`` as a sky map.

    Parameters
    ----------
    data : array-like
        Values, shape ``(n_energy, n_lat, n_lon)`` (or ``(n_lat, n_lon)`` for a geometry without energy).
    geometry : `~xgamma.geometry.SkyGeometry`
        Pixel grid (and energy axis) of the map.
    name : str, optional
        Variable name (``counts``, ``exposure``...).
    units : str or `~astropy.units.UnitBase`
        Units of the values. Default is dimensionless.
    energy_dim : {"energy", "energy_true"}
        Name of the energy dim: reconstructed (default) or true energy (the exposure of an
        analysis with energy dispersion; coordinates ``energy_true``, ``energy_true_min``, ...).

    Returns
    -------
    map : `xarray.DataArray`
        Dims ``(energy_dim, "lat", "lon")`` (or ``("lat", "lon")``), coordinates from
        `SkyGeometry.coords`, ``attrs["units"]`` set.
    """
    if energy_dim not in ENERGY_DIMS:
        raise GeometryError(f"energy_dim must be one of {ENERGY_DIMS}, got {energy_dim!r}")
    dims = (energy_dim, *SPATIAL_DIMS) if geometry.energy_edges is not None else SPATIAL_DIMS
    shape = tuple(np.shape(data))
    if shape != geometry.data_shape:
        raise GeometryError(f"map {name or ''} has shape {shape}, geometry expects {geometry.data_shape}")
    if energy_dim == "energy" or geometry.energy_edges is None:
        coords = geometry.coords()
    else:
        coords = geometry.with_energy(None).coords().assign(geometry.energy_coords(energy_dim))
    return xr.DataArray(data, dims=dims, coords=coords, name=name, attrs={"units": u.Unit(units).to_string()})


def map_geometry(obj: xr.DataArray | xr.Dataset) -> SkyGeometry:
    """The `SkyGeometry` of a map (or of a Dataset of maps), re-derived after any slicing.

    The WCS stored in the ``wcs`` coordinate is shifted by the first ``pix_lon`` / ``pix_lat`` index
    so that a cutout made with ``isel`` gets its own, correct reference pixel. The maps xgamma makes
    keep these coordinates in memory (indexed, see `GEOMETRY_INDEXES`), so nothing is computed;
    coordinates that are dask arrays (maps assembled by hand, then chunked) are computed with the
    scheduler in use, where `~xgamma.testing.raise_if_dask_computes` sees it.
    """
    header = _wcs_header(obj)
    missing = [c for c in ("pix_lon", "pix_lat") if c not in obj.coords] + ([] if header is not None else ["wcs"])
    if missing or any(d not in obj.dims for d in SPATIAL_DIMS):
        raise GeometryError(
            f"not an xgamma sky map: needs dims {SPATIAL_DIMS} and coordinates wcs, pix_lon, pix_lat "
            f"(missing {missing}); build maps with xgamma.maps.make_map or read them with xgamma.io"
        )
    coords = obj.coords.variables  # Variables: a DataArray per coordinate costs more than the lookup
    pix_lon = np.asarray(coords["pix_lon"].values)
    pix_lat = np.asarray(coords["pix_lat"].values)
    if pix_lon.size and (np.any(np.diff(pix_lon) != 1) or np.any(np.diff(pix_lat) != 1)):
        raise GeometryError("map pixels are not contiguous (strided or reordered selection): no single WCS fits")
    edges = None
    # A reco-energy axis when there is one (a Dataset may hold both), else the true-energy axis.
    dim = next((d for d in ENERGY_DIMS if d in obj.dims), None)
    if dim is not None:
        if f"{dim}_min" not in coords or f"{dim}_max" not in coords:
            raise GeometryError(f"map has an {dim} dim but no {dim}_min/{dim}_max coordinates")
        emin = np.asarray(coords[f"{dim}_min"].values, dtype=float)
        emax = np.asarray(coords[f"{dim}_max"].values, dtype=float)
        if emin.size > 1 and not np.allclose(emin[1:], emax[:-1], rtol=1e-10):
            raise GeometryError("energy bins of the map are not contiguous")
        edges = tuple(np.append(emin, emax[-1:]).tolist())
    offset = (int(pix_lon[0]), int(pix_lat[0])) if pix_lon.size and pix_lat.size else (0, 0)
    return _geometry_of(header, offset, (pix_lat.size, pix_lon.size), edges)


def _wcs_header(obj: xr.DataArray | xr.Dataset) -> str | None:
    """The WCS header text of a map: its ``wcs`` coordinate, or (a store opened with plain
    ``xr.open_zarr``) the ``wcs_header`` attribute of its ``spatial_ref`` grid-mapping coordinate."""
    if "wcs" in obj.coords:
        return str(obj.coords.variables["wcs"].values)
    if "spatial_ref" in obj.coords and "wcs_header" in obj.coords["spatial_ref"].attrs:
        return str(obj.coords["spatial_ref"].attrs["wcs_header"])
    return None


@lru_cache(maxsize=64)
def _geometry_of(header: str, offset: tuple[int, int], shape: tuple[int, int],
                 edges: tuple[float, ...] | None) -> SkyGeometry:
    """Geometry of a map's WCS header text shifted by the first pixel indices (cached: parsing a
    WCS costs milliseconds, and every estimator step asks for the geometry of the same maps)."""
    wcs = WCS(fits.Header.fromstring(header))
    wcs.wcs.crpix = [wcs.wcs.crpix[0] - offset[0], wcs.wcs.crpix[1] - offset[1]]
    wcs.wcs.set()
    energy_edges = None if edges is None else u.Quantity(edges, "TeV")
    return SkyGeometry(wcs=wcs, shape=shape, energy_edges=energy_edges)


def with_indexes(obj: xr.DataArray | xr.Dataset) -> xr.DataArray | xr.Dataset:
    """``obj`` with the xgamma indexes on ``lon``, ``lat`` (and ``energy``), rebuilt from its WCS.

    For maps assembled outside xgamma (``xr.open_zarr``, coordinates passed as a dict): their
    ``lon``/``lat`` get the labels and indexes of `SkyGeometry.coords` (see
    `xgamma.geometry.indexes`); ``pix_lon``, ``pix_lat`` and ``wcs`` are kept as they are.
    """
    geometry = map_geometry(obj)
    coords = geometry.coords()
    names = ["lon", "lat"] + (["energy"] if "energy" in obj.dims and geometry.energy_edges is not None else [])
    rebuilt = xr.Coordinates({k: coords.variables[k] for k in names}, indexes={k: coords.xindexes[k] for k in names})
    return index_geometry_coords(obj.drop_vars(names, errors="ignore").assign_coords(rebuilt))


def index_geometry_coords(obj: xr.DataArray | xr.Dataset) -> xr.DataArray | xr.Dataset:
    """``obj`` with its in-memory geometry coordinates (`GEOMETRY_INDEXES`) indexed, as
    `SkyGeometry.coords` makes them; those already indexed, absent or lazy are left as they are."""
    from xgamma.blocks import is_dask

    for name in GEOMETRY_INDEXES:
        if name in obj.coords and name not in obj.xindexes and not is_dask(obj.coords.variables[name].data):
            obj = obj.set_xindex(name)
    return obj


def dataset_from_arrays(template: xr.DataArray, arrays: dict[str, Any], *, extra: dict[str, Any] | None = None,
                        dims: tuple[str, ...] | None = None, attrs: dict[str, Any] | None = None) -> xr.Dataset:
    """Dataset of arrays (numpy or dask) shaped like ``template``: its dims and coords, units ``""``.

    ``extra`` adds variables of other shapes (name -> DataArray, Variable or (dims, data, attrs));
    ``dims`` reorders the result's dims, ``attrs`` are its attributes. Built in one go: merging
    DataArrays one by one would re-compare the coordinates each time.
    """
    variables = {name: (template.dims, data, {"units": ""}) for name, data in arrays.items()}
    for name, value in (extra or {}).items():
        variables[name] = value.variable if isinstance(value, xr.DataArray) else value
    out = xr.Dataset(variables, coords=template.coords, attrs=attrs)
    return out if dims is None or tuple(dims) == template.dims else out.transpose(*dims)


def in_order(obj: Any, dims: tuple[str, ...] | list[str]) -> Any:
    """``obj`` (a DataArray or Variable) with dims in the order ``dims``; itself when they already
    are (a no-op `transpose` still rebuilds every coordinate, a millisecond per call)."""
    return obj if tuple(obj.dims) == tuple(dims) else obj.transpose(*dims)


def map_units(da: xr.DataArray) -> u.UnitBase:
    """Astropy unit of a map from ``attrs["units"]`` (dimensionless when absent)."""
    try:
        return u.Unit(da.attrs.get("units", ""))
    except ValueError as error:
        raise GeometryError(f"map {da.name!r} has unparsable units {da.attrs.get('units')!r}") from error


def with_units(da: xr.DataArray, units: str | u.UnitBase, *, name: str | None = None) -> xr.DataArray:
    """Return ``da`` with ``attrs["units"]`` (and optionally its name) set; data untouched."""
    out = da.copy(deep=False)
    out.attrs = {**da.attrs, "units": u.Unit(units).to_string()}
    if name is not None:
        out.name = name
    return out
