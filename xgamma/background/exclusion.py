"""Exclusion masks: from sky regions, DS9 region strings or files, and from a significance threshold.

Convention (as in Gammapy and the H.E.S.S. software): an exclusion mask is a boolean image that
is **True where a pixel may be used** for background estimation and False inside excluded regions,
so that ``counts * exclusion`` keeps only the usable pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from xgamma.exceptions import EstimatorError

if TYPE_CHECKING:
    import regions

    from xgamma.geometry import SkyGeometry

__all__ = [
    "parse_regions",
    "make_exclusion_mask",
    "threshold_exclusion_mask",
]


def _parse_region_string(text: str) -> list[regions.SkyRegion]:
    import warnings

    from regions import Regions, SkyRegion

    try:
        with warnings.catch_warnings():
            # regions warns and skips shapes without a frame; we raise below instead
            warnings.simplefilter("ignore")
            parsed = Regions.parse(text, format="ds9")
    except Exception as error:  # regions raises several types for bad strings
        raise EstimatorError(f"malformed DS9 region string {text!r}: {error}") from None
    sky = [r for r in parsed if isinstance(r, SkyRegion)]
    if not sky or len(sky) != len(parsed):
        raise EstimatorError(
            f"region string {text!r} gives no sky region (give a frame, e.g. "
            "'galactic; circle(0, 0, 0.3)' or 'icrs; circle(83.6, 22.0, 0.2)')"
        )
    return sky


def parse_regions(value: Any) -> list[regions.SkyRegion]:
    """Turn regions, DS9 region strings or region file paths into a list of sky regions.

    Parameters
    ----------
    value : `regions.SkyRegion`, `regions.Regions`, str, `pathlib.Path` or a list of these
        A string containing ``(`` is parsed as DS9 text (``"galactic; circle(-0.054, -0.053,
        0.3)"``, sizes in degrees); any other string, or a Path, names a DS9 region file.

    Returns
    -------
    regions : list of `regions.SkyRegion`

    Raises
    ------
    EstimatorError
        For a malformed region string, a missing or unreadable region file, a pixel region or
        an object of another type (the message names it).
    """
    from regions import Regions, SkyRegion

    if value is None:
        return []
    if isinstance(value, SkyRegion):
        return [value]
    if isinstance(value, Regions):
        return parse_regions(list(value))
    if isinstance(value, (str, os.PathLike)):
        text = str(value)
        if isinstance(value, str) and "(" in text:
            return _parse_region_string(text)
        path = Path(text).expanduser()
        if not path.is_file():
            raise EstimatorError(f"region file {str(path)!r} does not exist (or is not a DS9 region string)")
        try:
            content = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise EstimatorError(f"cannot read region file {str(path)!r}: {error}") from None
        try:
            return _parse_region_string(content)
        except EstimatorError as error:
            raise EstimatorError(f"region file {str(path)!r}: {error}") from None
    if isinstance(value, Iterable):
        out: list[SkyRegion] = []
        for item in value:
            out.extend(parse_regions(item))
        return out
    raise EstimatorError(
        f"cannot make exclusion regions from {type(value).__name__}: give regions.SkyRegion objects, "
        "DS9 region strings or region file paths"
    )


def _image_map(data: Any, geometry: SkyGeometry, name: str) -> xr.DataArray:
    from xgamma.maps import make_map

    return make_map(data, geometry.to_image().with_energy(None), name=name, units="")


def make_exclusion_mask(geometry: SkyGeometry, regions: Any = None) -> xr.DataArray:
    """Exclusion mask image: False inside any of ``regions``, True elsewhere.

    Parameters
    ----------
    geometry : `~xgamma.geometry.SkyGeometry`
        Pixel grid (its energy axis, if any, is ignored).
    regions : see `parse_regions`
        Regions to exclude. None or empty gives an all-True mask.

    Returns
    -------
    mask : `xarray.DataArray`
        Boolean, dims ``("lat", "lon")``, named ``exclusion`` (numpy-backed: it is small).

    Examples
    --------
    >>> from xgamma.geometry import SkyGeometry
    >>> import astropy.units as u
    >>> geom = SkyGeometry.create((0, 0), width=2 * u.deg, binsz=0.02 * u.deg)
    >>> mask = make_exclusion_mask(geom, "galactic; circle(0, 0, 0.3)")
    >>> bool(mask.sel(lon=0, lat=0, method="nearest")), bool(mask[0, 0])
    (False, True)
    """
    parsed = parse_regions(regions)
    if not parsed:
        data = np.ones(geometry.shape, dtype=bool)
    else:
        data = geometry.region_mask(parsed, inside=False)
    return _image_map(data, geometry, "exclusion")


def _disk(radius_px: float) -> np.ndarray:
    from xgamma.convolution import tophat_kernel

    return tophat_kernel(radius_px).astype(bool)


def threshold_exclusion_mask(
    significance: xr.DataArray,
    *,
    threshold: float = 5.0,
    dilation: Any = "0.2 deg",
    base: xr.DataArray | None = None,
) -> xr.DataArray:
    """Exclude pixels above ``threshold`` sigma, grown by a disk of radius ``dilation``.

    Parameters
    ----------
    significance : `xarray.DataArray`
        Significance map, dims (..., "lat", "lon"); extra dims (energy) are reduced with a max.
        This function computes it (the mask is needed eagerly to drive the next iteration).
    threshold : float
        Pixels with significance >= threshold are excluded. Default is 5.
    dilation : str or `~astropy.units.Quantity`
        Radius (angle) by which the excluded area grows around each such pixel. Default is 0.2 deg.
    base : `xarray.DataArray`, optional
        Exclusion mask to combine with (its excluded pixels stay excluded).

    Returns
    -------
    mask : `xarray.DataArray`
        Boolean image (True = usable), dims ``("lat", "lon")``.
    """
    from scipy.ndimage import binary_dilation

    from xgamma.maps import map_geometry
    from xgamma.units import parse_angle

    if not np.isfinite(threshold):
        raise EstimatorError(f"threshold must be a finite number of sigma, got {threshold!r}")
    geometry = map_geometry(significance)
    radius = parse_angle(dilation, name="dilation").to_value("deg") / geometry.pixel_scale
    if radius < 0:
        raise EstimatorError(f"dilation must be >= 0, got {dilation!r}")
    sig = significance
    extra = [d for d in sig.dims if d not in ("lat", "lon")]
    if extra:
        sig = sig.max(dim=extra)
    above = np.nan_to_num(np.asarray(sig.transpose("lat", "lon").values, dtype=float), nan=-np.inf) >= threshold
    if radius >= 0.5:
        above = binary_dilation(above, structure=_disk(radius))
    mask = ~above
    if base is not None:
        mask &= np.asarray(base.transpose("lat", "lon").values, dtype=bool)
    return _image_map(mask, geometry, "exclusion")
