"""Local maxima of an image above a threshold (source candidates), as Gammapy's ``find_peaks``.

A pixel is a peak when it is the largest value of the square of ``2 min_distance + 1`` pixels
around it (values beyond the map edge count as 0, as `scipy.ndimage.maximum_filter` with
``mode="constant"``) and exceeds the threshold. The mask of peaks is a lazy map computed block
by block with the filter's half size as overlap (identical for any chunking); only the few peak
pixels are gathered into the table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from xgamma.exceptions import EstimatorError

__all__ = ["peak_mask", "find_peaks", "peaks_dataset"]


def _peak_block(image: np.ndarray, threshold: np.ndarray, *, window: Any, core: tuple[slice, slice], size: int,
                full_shape: tuple[int, int]) -> np.ndarray:
    """Peak flags of a block's core (1.0 / 0.0), shape (1, ny, nx)."""
    from scipy.ndimage import maximum_filter

    half = size // 2
    (y0, y1), (x0, x1) = window[-2:]
    # Zeros beyond the map edge only (a block edge inside the map has its overlap instead).
    pad = ((half if y0 == 0 else 0, half if y1 == full_shape[0] else 0),
           (half if x0 == 0 else 0, half if x1 == full_shape[1] else 0))
    data = np.where(np.isfinite(image), image, -np.inf)
    padded = np.pad(data, pad, constant_values=0.0)
    peaks = maximum_filter(padded, size=size, mode="constant", cval=0.0) == padded
    peaks = peaks[pad[0][0]:padded.shape[0] - pad[0][1], pad[1][0]:padded.shape[1] - pad[1][1]]
    cy, cx = core
    flags = peaks[cy, cx] & (data[cy, cx] > threshold[cy, cx])
    return flags[None].astype(float)


def _image(image: xr.DataArray) -> xr.DataArray:
    if not isinstance(image, xr.DataArray):
        raise EstimatorError(f"find_peaks: expected an xarray.DataArray image, got {type(image).__name__}")
    extra = [d for d in image.dims if d not in ("lat", "lon")]
    if len(extra) != image.ndim - 2:
        raise EstimatorError(f"find_peaks: image dims {image.dims} have no 'lat' and 'lon'")
    # As Gammapy: non-spatial axes (a length-1 energy axis) are summed.
    return (image.sum(extra, keep_attrs=True) if extra else image).transpose("lat", "lon")


def _min_distance_pixels(min_distance: Any, pixel_scale: float) -> int:
    if isinstance(min_distance, (int, np.integer)) and not isinstance(min_distance, bool):
        pixels = int(min_distance)
    else:
        from xgamma.units import parse_angle

        pixels = int(np.round(parse_angle(min_distance, name="min_distance").to_value("deg") / pixel_scale))
    if pixels < 0:
        raise EstimatorError(f"min_distance must be >= 0, got {min_distance!r}")
    return pixels


def peak_mask(image: xr.DataArray, threshold: float | xr.DataArray, *, min_distance: Any = 1) -> xr.DataArray:
    """Boolean map of the local maxima of ``image`` above ``threshold`` (lazy for dask input).

    Parameters
    ----------
    image : `xarray.DataArray`
        Sky image (dims "lat", "lon" and optionally a length-1 "energy", which is summed).
    threshold : float or `xarray.DataArray`
        A peak must exceed it (a map gives a per-pixel threshold).
    min_distance : int or str or `~astropy.units.Quantity`
        Half size of the square within which a peak is the largest value: pixels (int) or an
        angle (rounded to pixels). Default is 1.

    Returns
    -------
    mask : `xarray.DataArray`
        Bool, dims ("lat", "lon"), True at peaks. Non-finite pixels are never peaks.
    """
    from xgamma.blocks import overlap_apply
    from xgamma.maps import map_geometry

    image = _image(image)
    distance = _min_distance_pixels(min_distance, map_geometry(image).pixel_scale)
    if isinstance(threshold, xr.DataArray):
        threshold_data = threshold.transpose(*[d for d in threshold.dims if d not in ("lat", "lon")], "lat", "lon")
        threshold_data = threshold_data.data.reshape(image.shape)
    else:
        threshold_data = np.full(image.shape, float(threshold))
    flags = overlap_apply(_peak_block, image.data, threshold_data, depth=distance, n_out=1,
                          size=2 * distance + 1, full_shape=image.shape)[0]
    return image.copy(data=flags == 1).rename("peaks").assign_attrs(units="", min_distance_pix=distance)


def find_peaks(image: xr.DataArray, threshold: float | xr.DataArray, *, min_distance: Any = 1):
    """Local maxima of an image above a threshold, as a table sorted by decreasing value.

    Peaks are the same pixels as Gammapy's ``find_peaks`` (`peak_mask`); constant images have
    none. Computes the image (only the peak pixels are gathered).

    Parameters
    ----------
    image, threshold, min_distance
        See `peak_mask`.

    Returns
    -------
    table : `astropy.table.Table`
        One row per peak: ``value`` (in the image's units), ``x``, ``y`` (0-based pixels),
        ``ra``, ``dec`` (ICRS, deg) and ``lon``, ``lat`` (deg, the map's frame, with
        ``table.meta["frame"]``). Empty (with these columns) when there is no peak.

    Examples
    --------
    >>> peaks = find_peaks(ts_maps["sqrt_ts"], threshold=5, min_distance="0.25 deg")  # doctest: +SKIP
    """
    import dask
    from astropy.table import Table

    from xgamma.maps import map_geometry, map_units

    data = _image(image)
    mask = peak_mask(data, threshold, min_distance=min_distance)
    values, flags = dask.compute(data.data, mask.data)
    values, flags = np.asarray(values, dtype=float), np.asarray(flags, dtype=bool)
    finite = values[np.isfinite(values)]
    if finite.size and np.all(finite == finite[0]) and finite.size == values.size:
        flags[:] = False  # a constant image has no peak (Gammapy's convention)
    y, x = np.nonzero(flags)
    order = np.argsort(-values[y, x], kind="stable")
    y, x = y[order], x[order]
    geometry = map_geometry(data)
    coord = geometry.pixel_to_skycoord(x.astype(float), y.astype(float))
    icrs = coord.icrs
    table = Table()
    table["value"] = values[y, x] * map_units(image)
    table["x"], table["y"] = x, y
    table["ra"], table["dec"] = icrs.ra.deg, icrs.dec.deg
    table["lon"], table["lat"] = coord.spherical.lon.deg, coord.spherical.lat.deg
    for name in ("ra", "dec", "lon", "lat"):
        table[name].unit = "deg"
        table[name].format = ".5f"
    table.meta.update(frame=geometry.frame, threshold=str(threshold) if np.isscalar(threshold) else "map",
                      min_distance_pix=int(mask.attrs["min_distance_pix"]))
    return table


def peaks_dataset(table) -> xr.Dataset:
    """A `find_peaks` table as an `xarray.Dataset` with a ``peak`` dim (columns as variables, units kept)."""
    variables = {}
    for name in table.colnames:
        column = table[name]
        unit = "" if column.unit is None else column.unit.to_string()
        variables[name] = xr.Variable(("peak",), np.asarray(column), {"units": unit})
    return xr.Dataset(variables, coords={"peak": np.arange(len(table))}, attrs=dict(table.meta))
