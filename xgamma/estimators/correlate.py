"""Top-hat correlation of sky maps (sum of the pixels within a radius), lazy and chunk-invariant."""

from __future__ import annotations

from typing import Any

import xarray as xr

from xgamma.convolution import convolve_image, tophat_kernel
from xgamma.exceptions import EstimatorError

__all__ = ["correlation_kernel", "correlate"]


def correlation_kernel(radius: Any, pixel_scale: float) -> Any:
    """Top-hat kernel (ones within ``radius``) for pixels of ``pixel_scale`` degrees.

    Parameters
    ----------
    radius : str or `~astropy.units.Quantity`
        Correlation radius (angle), > 0.
    pixel_scale : float
        Pixel size in degrees.

    Returns
    -------
    kernel : `numpy.ndarray`
        Square, odd-sized array of ones and zeros.
    """
    from xgamma.units import parse_angle

    radius_deg = parse_angle(radius, name="correlation_radius").to_value("deg")
    if not radius_deg > 0:
        raise EstimatorError(f"correlation_radius must be positive, got {radius!r}")
    return tophat_kernel(radius_deg / pixel_scale)


def correlate(image: xr.DataArray, *, radius: Any, rint: bool = False) -> xr.DataArray:
    """Sum of ``image`` over a disk of ``radius`` around each pixel (zero outside the map).

    Parameters
    ----------
    image : `xarray.DataArray`
        Map with dims (..., "lat", "lon"), numpy or dask backed.
    radius : str or `~astropy.units.Quantity`
        Correlation radius (angle).
    rint : bool
        Round to integers (for counts). Default is False.

    Returns
    -------
    correlated : `xarray.DataArray`
        Same dims, coords and units as ``image``; lazy for dask input.
    """
    from xgamma.maps import map_geometry

    kernel = correlation_kernel(radius, map_geometry(image).pixel_scale)
    dims = image.dims
    other = [d for d in dims if d not in ("lat", "lon")]
    ordered = image.transpose(*other, "lat", "lon")
    out = ordered.copy(data=convolve_image(ordered.data, kernel, rint=rint)).transpose(*dims)
    out.attrs = {"units": image.attrs.get("units", "")}
    return out
