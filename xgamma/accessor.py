"""The ``.sky`` accessor: sky-map behaviour on xarray objects (thin; delegates to functions).

Imported by `xgamma` right after xarray itself (possibly while another xgamma module is being
imported): so it imports nothing of xgamma or astropy at module level, only in its methods.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

if TYPE_CHECKING:
    import astropy.units as u
    import numpy as np
    from astropy.coordinates import SkyCoord

    from xgamma.geometry import SkyGeometry

__all__ = ["SkyAccessor"]


class _SkyAccessorBase:
    """Shared by the DataArray and Dataset accessors; holds only the wrapped object."""

    def __init__(self, obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = obj

    @property
    def geometry(self) -> SkyGeometry:
        """The map's `~xgamma.geometry.SkyGeometry` (re-derived from the coordinates)."""
        from xgamma.maps import map_geometry

        return map_geometry(self._obj)

    @property
    def wcs(self):
        """Celestial `~astropy.wcs.WCS` of the (possibly sliced) map."""
        return self.geometry.wcs

    def skycoord(self) -> SkyCoord:
        """Pixel-centre sky coordinates, shape (n_lat, n_lon)."""
        return self.geometry.skycoord()

    def lonlat(self) -> tuple[xr.DataArray, xr.DataArray]:
        """Exact world coordinates (deg, the map's frame) of every pixel centre, as (lat, lon) maps.

        On separable grids (CAR around the equator) they equal the 1-D ``lon``/``lat``
        coordinates; on others (TAN, ARC, ...) only these are exact.
        """
        lon, lat = self.geometry.lonlat()
        frame = self.geometry.frame
        return (self._image(lon, f"{frame}_lon", "deg"), self._image(lat, f"{frame}_lat", "deg"))

    def sel(self, position: SkyCoord | None = None, *, lon=None, lat=None) -> xr.DataArray | xr.Dataset:
        """The pixel(s) containing sky position(s), exact for any projection (through the WCS).

        Parameters
        ----------
        position : `~astropy.coordinates.SkyCoord`, optional
            Position(s) in any frame.
        lon, lat : float, array or `~astropy.units.Quantity`, optional
            Instead of ``position``: world coordinates in the map's frame (numbers in deg).

        Returns
        -------
        xarray.DataArray or xarray.Dataset
            ``isel`` of the pixel (scalar position) or of the pixels along a new ``position`` dim.

        Raises
        ------
        GeometryError
            If a position is outside the map.
        """
        row, column = self.geometry.pixel_of(position, lon=lon, lat=lat)
        if row.ndim == 0:
            return self._obj.isel(lat=int(row), lon=int(column))
        return self._obj.isel(lat=xr.DataArray(row.ravel(), dims="position"),
                              lon=xr.DataArray(column.ravel(), dims="position"))

    def _image(self, values: np.ndarray, name: str, units: str | None) -> xr.DataArray:
        """A (lat, lon) map with the spatial coordinates (and their indexes) of the wrapped object."""
        obj = self._obj
        spatial = obj.drop_vars([k for k, c in obj.coords.items() if not set(c.dims) <= {"lat", "lon"}]).coords
        attrs = {} if units is None else {"units": units}
        return xr.DataArray(values, dims=("lat", "lon"), coords=spatial, name=name, attrs=attrs)

    def solid_angle(self) -> xr.DataArray:
        """Pixel solid angles (sr) as a (lat, lon) DataArray."""
        return self._image(self.geometry.solid_angle(), "solid_angle", "sr")

    def separation(self, position: SkyCoord) -> xr.DataArray:
        """Angular distance (deg) of each pixel centre from ``position``."""
        return self._image(self.geometry.separation(position), "separation", "deg")

    def region_mask(self, regions: Any, *, inside: bool = True) -> xr.DataArray:
        """Boolean (lat, lon) mask of pixels inside (or outside) sky regions.

        ``regions``: `regions.SkyRegion` objects, DS9 strings (``"galactic; circle(0, 0, 0.3)"``,
        as in the ``exclusion.regions`` configuration key) or DS9 region files, or a list of these
        (see `xgamma.background.exclusion.parse_regions`).
        """
        from xgamma.background.exclusion import parse_regions

        return self._image(self.geometry.region_mask(parse_regions(regions), inside=inside), "mask", None)

    def cutout(self, position: SkyCoord, width: u.Quantity) -> xr.DataArray | xr.Dataset:
        """Cutout of a box of ``width`` around ``position`` (a new object; lazy data stay lazy)."""
        lat, lon = self.geometry.cutout_slices(position, width)
        return self._obj.isel(lat=lat, lon=lon)

    def squash_energy(self, *, spectrum: Mapping[str, Any] | Any = None) -> xr.DataArray | xr.Dataset:
        """Squash the energy axis (see `xgamma.makers.squash_energy`)."""
        from xgamma.makers.squash import squash_energy

        return squash_energy(self._obj, spectrum=spectrum)

    def to_fits(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write to FITS (see `xgamma.io.fits_maps.write_maps`)."""
        from xgamma.io.fits_maps import write_maps

        return write_maps(self._obj, path, overwrite=overwrite)

    def to_zarr(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write to zarr chunk by chunk (see `xgamma.io.zarr_maps.write_zarr`)."""
        from xgamma.io.zarr_maps import write_zarr

        return write_zarr(self._obj, path, overwrite=overwrite)


@xr.register_dataarray_accessor("sky")
class SkyAccessor(_SkyAccessorBase):
    """Sky-map methods on a `xarray.DataArray`: ``da.sky.geometry``, ``da.sky.to_fits(...)``..."""

    @property
    def quantity(self) -> u.Quantity:
        """Values as an `~astropy.units.Quantity` (computes lazy data)."""
        import astropy.units as u
        import numpy as np

        from xgamma.maps import map_units

        return u.Quantity(np.asarray(self._obj.values), map_units(self._obj))

    def find_peaks(self, threshold: Any, **kwargs: Any):
        """Local maxima above ``threshold`` as a table (see `xgamma.estimators.find_peaks`)."""
        from xgamma.estimators.peaks import find_peaks

        return find_peaks(self._obj, threshold, **kwargs)

    def peak_mask(self, threshold: Any, **kwargs: Any) -> xr.DataArray:
        """Lazy boolean map of the local maxima above ``threshold`` (see `xgamma.estimators.peak_mask`)."""
        from xgamma.estimators.peaks import peak_mask

        return peak_mask(self._obj, threshold, **kwargs)

    def plot(self, **kwargs: Any):
        """Plot an image on WCS axes with a colour bar (see `xgamma.plotting.plot_map`)."""
        from xgamma.plotting import plot_map

        return plot_map(self._obj, **kwargs)


@xr.register_dataset_accessor("sky")
class SkyDatasetAccessor(_SkyAccessorBase):
    """Sky-map methods on a `xarray.Dataset` of maps sharing one geometry."""

    def ts_map(self, **kwargs: Any) -> xr.Dataset:
        """TS, flux and upper-limit maps of a point-like or Gaussian source (see `xgamma.estimators.ts_map`)."""
        from xgamma.estimators.ts_map import ts_map

        return ts_map(self._obj, **kwargs)

    def flux_maps(self, **kwargs: Any) -> xr.Dataset:
        """Correlated flux, error, UL and sensitivity maps (see `xgamma.estimators.flux_maps`)."""
        from xgamma.estimators.flux_maps import flux_maps

        return flux_maps(self._obj, **kwargs)
