"""Energy squashing: reduce a cube to a one-bin image, spectrum-weighting the exposure.

Each pixel has its own valid energy range: the bins where it has exposure (inside the safe
energy range and the offset cut of at least one observation). Counts and background are summed
(they are zero outside that range); the exposure is the spectrum-weighted mean over the pixel's
valid range, and ``safe_energy_min`` / ``safe_energy_max`` record that range. Then, for a source
whose spectrum is the weighting spectrum, ``flux in the pixel's range x exposure`` is exactly the
summed predicted counts of the cube, and bins without data never dilute the exposure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from xgamma.blocks import is_dask
from xgamma.exceptions import ConfigError, GeometryError
from xgamma.maps import map_geometry, map_units

__all__ = ["squash_energy", "spectral_weights", "full_band_exposure", "SUMMED", "WEIGHTED", "BAND_VARIABLES"]

#: Variables squashed by summing (counts-like) and by spectrum-weighted averaging (exposure-like).
SUMMED = ("counts", "background", "npred", "excess", "off")
WEIGHTED = ("exposure",)
#: Per-pixel edges (TeV) of the valid energy range of a squashed image (from its exposure).
BAND_VARIABLES = ("safe_energy_min", "safe_energy_max")


def _band_flux(lo: np.ndarray, hi: np.ndarray, spectrum: Mapping[str, Any] | Any) -> np.ndarray:
    """Integral of ``spectrum`` (as in `spectral_weights`) between ``lo`` and ``hi`` (TeV, arrays)."""
    if spectrum is None or isinstance(spectrum, Mapping):
        from xgamma.models.spectral import powerlaw_integral

        return powerlaw_integral(lo, hi, 2.0 if spectrum is None else float(spectrum.get("index", 2.0)))
    import astropy.units as u

    return u.Quantity(spectrum.integral(u.Quantity(lo, "TeV"), u.Quantity(hi, "TeV"))).value


def spectral_weights(energy_edges_tev: np.ndarray, spectrum: Mapping[str, Any] | Any = None) -> np.ndarray:
    """Fraction of the integral flux of ``spectrum`` falling in each energy bin.

    Parameters
    ----------
    energy_edges_tev : `numpy.ndarray`
        Bin edges in TeV.
    spectrum : dict or spectral model, optional
        ``{"type": "powerlaw", "index": 2}`` (the default) or any object with an
        ``integral(energy_min, energy_max)`` method taking `~astropy.units.Quantity` energies.

    Returns
    -------
    weights : `numpy.ndarray`
        Non-negative weights summing to 1, one per bin.
    """
    edges = np.asarray(energy_edges_tev, dtype=float)
    if spectrum is None:
        spectrum = {"type": "powerlaw", "index": 2.0}
    if isinstance(spectrum, Mapping):
        kind = str(spectrum.get("type", "powerlaw")).lower()
        if kind not in ("powerlaw", "pl", "powerlawspectralmodel"):
            raise ConfigError(f"squash.spectrum.type: only 'powerlaw' is supported here, got {kind!r}")
        unknown = set(spectrum) - {"type", "index"}
        if unknown:
            raise ConfigError(f"squash.spectrum: unknown keys {sorted(unknown)}; expected type, index")
    fluxes = np.asarray(_band_flux(edges[:-1], edges[1:], spectrum), dtype=float)
    total = fluxes.sum()
    if not np.isfinite(total) or total <= 0:
        raise ConfigError("squash.spectrum: the spectrum integrates to a non-positive or non-finite flux")
    return fluxes / total


def _image_coords(da: xr.DataArray) -> xr.Coordinates:
    """``da``'s coordinates with the energy axis replaced by one bin over the whole range.

    Coordinates objects, not dicts: the sky and energy indexes of the map are kept.
    """
    image_coords = map_geometry(da).to_image().energy_coords()
    return da.drop_vars([name for name, coord in da.coords.items() if "energy" in coord.dims]).coords.assign(
        image_coords)


def _as_image(data: xr.DataArray, like: xr.DataArray, name: str, units: str) -> xr.DataArray:
    """``data`` (no energy dim) as an image with ``like``'s dims and the band as energy axis."""
    data = data.expand_dims("energy", axis=like.dims.index("energy")).transpose(*like.dims)
    return xr.DataArray(data.data, dims=like.dims, coords=_image_coords(like), name=name, attrs={"units": units})


def _sum_energy(da: xr.DataArray) -> xr.DataArray:
    """Sum over ``energy``, keeping a length-1 energy dim and any other dims."""
    axis = da.dims.index("energy")
    data = da.data
    if is_dask(data) and len(data.chunks[axis]) == 1:
        # One task per chunk, the same numpy sum (dask's reduction adds one or two aggregation tasks
        # per chunk: hundreds on a survey, whose squashed images also feed the ring).
        chunks = tuple((1,) if k == axis else c for k, c in enumerate(data.chunks))
        data = data.map_blocks(np.sum, axis=axis, keepdims=True, chunks=chunks,
                               dtype=np.zeros(1, data.dtype).sum().dtype)
    else:
        data = data.sum(axis=axis, keepdims=True)
    return xr.DataArray(data, dims=da.dims, coords=_image_coords(da), name=da.name,
                        attrs={"units": map_units(da).to_string()})


def _weighted_range(exposure: np.ndarray, weights: np.ndarray, edges: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel (energy on the last axis): the weighted mean exposure over the bins from the first
    to the last with exposure, and that range's lower and upper edges (TeV).

    Bins inside the range without exposure (a gap between observations' ranges) count in the
    normalisation: the range's flux includes them, the exposure there is zero.
    """
    # Energy first: dask hands the cube's (energy, lat, lon) chunk here as a transposed view, so this is
    # the contiguous layout again (argmax and matmul along a strided last axis took ~4x longer), and
    # made so for any other layout: the sums below then run in one order whatever the input's strides.
    cube = np.ascontiguousarray(np.moveaxis(exposure, -1, 0))
    valid = cube > 0
    n_bins = valid.shape[0]
    any_valid = valid.any(axis=0)
    first = np.zeros(valid.shape[1:], dtype=np.intp)
    last = np.zeros(valid.shape[1:], dtype=np.intp)
    for bin_ in range(n_bins - 1, -1, -1):  # the lowest bin with exposure wins
        first[valid[bin_]] = bin_
    for bin_ in range(n_bins):  # the highest one wins
        last[valid[bin_]] = bin_
    # The weight of every range [f, l] at once (the same sums as per pixel, on 24 x 24 ranges,
    # not 24 bins x pixels of running counts), then picked per pixel.
    k = np.arange(n_bins)
    ranges = (k[:, None, None] <= k) & (k <= k[None, :, None])
    norm = np.where(any_valid, (ranges @ weights)[first, last], 0.0)
    total = np.einsum("k,k...->...", weights, cube)  # float64, bins added in order pixel by pixel
    mean = np.divide(total, norm, out=np.zeros_like(total), where=norm > 0)
    lower = np.where(any_valid, edges[:-1][first], edges[0])
    upper = np.where(any_valid, edges[1:][last], edges[-1])
    return mean, lower, upper


def _squash_exposure(exposure: xr.DataArray, weights: np.ndarray) -> dict[str, xr.DataArray]:
    """Spectrum-weighted mean exposure over each pixel's valid range, and the range's edges."""
    edges = map_geometry(exposure).energy_edges.to_value("TeV")
    plain = xr.DataArray(exposure.data, dims=exposure.dims)  # no coordinates to align (or compute)
    mean, lower, upper = xr.apply_ufunc(
        _weighted_range, plain, kwargs={"weights": weights, "edges": edges}, input_core_dims=[["energy"]],
        output_core_dims=[[], [], []], dask="parallelized", output_dtypes=[float, float, float],
        dask_gufunc_kwargs={"allow_rechunk": True},  # the energy axis is small: one chunk
    )
    name = exposure.name or "exposure"
    return {
        name: _as_image(mean, exposure, name, map_units(exposure).to_string()),
        BAND_VARIABLES[0]: _as_image(lower, exposure, BAND_VARIABLES[0], "TeV"),
        BAND_VARIABLES[1]: _as_image(upper, exposure, BAND_VARIABLES[1], "TeV"),
    }


def squash_energy(maps: xr.Dataset | xr.DataArray, *, spectrum: Mapping[str, Any] | Any = None) -> xr.Dataset | xr.DataArray:
    """Squash the energy axis to one bin (lazy).

    Counts-like variables (``counts``, ``background``, ...) are summed. ``exposure`` becomes, per
    pixel, the mean over the bins of the pixel's valid range (from the first to the last bin with
    exposure) weighted by the fraction of the spectrum's flux in each bin, so that ``integral flux
    over the valid range x squashed exposure`` equals the summed predicted counts for that
    spectrum. A Dataset with an ``exposure`` also gets ``safe_energy_min`` and
    ``safe_energy_max`` (TeV): each pixel's valid range, which the image fit integrates the model
    over (`~xgamma.fit.MapDataset`).

    Parameters
    ----------
    maps : `xarray.Dataset` or `xarray.DataArray`
        Cube(s) with dims ``("energy", "lat", "lon")`` (other dims, e.g. ``obs_id``, are kept).
    spectrum : dict or spectral model, optional
        Spectrum used for the exposure weights. Default is a power law of index 2.

    Returns
    -------
    images : same type as ``maps``
        Images with a length-1 ``energy`` dim whose edges are the cube's full range; units kept.
        Variables without an ``energy`` dim (e.g. ``exposure_true``) are left out.
    """
    if "energy" not in maps.dims:
        raise GeometryError("squash_energy needs maps with an 'energy' dim")
    edges = map_geometry(maps).energy_edges.to_value("TeV")
    weights = spectral_weights(edges, spectrum)
    if isinstance(maps, xr.DataArray):
        if maps.name in WEIGHTED:
            return _squash_exposure(maps, weights)[maps.name]
        return _sum_energy(maps)
    images: dict[str, xr.DataArray] = {}
    for name, var in maps.data_vars.items():
        if "energy" not in var.dims or name in BAND_VARIABLES:
            continue
        images.update(_squash_exposure(var, weights) if name in WEIGHTED else {name: _sum_energy(var)})
    attrs = dict(maps.attrs)
    attrs["squash_spectrum"] = _describe(spectrum)
    return xr.Dataset(images, attrs=attrs)


def full_band_exposure(images: xr.Dataset, spectrum: Mapping[str, Any] | Any = None) -> xr.DataArray:
    """The squashed exposure per unit flux in the image's whole band (lazy), for flux maps.

    `squash_energy` gives each pixel the weighted mean exposure over its own valid range, so that
    the flux *in that range* times the exposure predicts the counts. Flux maps quote one band for
    every pixel; this converts: exposure x (flux of ``spectrum`` in the pixel's range) / (flux in
    the image's band), exact for the weighting spectrum. Without ``safe_energy_min`` /
    ``safe_energy_max`` (images made otherwise) the exposure is returned as it is.
    """
    exposure = images["exposure"]
    if not all(name in images for name in BAND_VARIABLES):
        return exposure
    edges = map_geometry(exposure).energy_edges.to_value("TeV")
    full = float(np.asarray(_band_flux(edges[:1], edges[-1:], spectrum)).ravel()[0])
    lo, hi = (xr.DataArray(images[name].data, dims=images[name].dims) for name in BAND_VARIABLES)
    fraction = xr.apply_ufunc(lambda a, b: _band_flux(a, b, spectrum) / full, lo, hi, dask="parallelized",
                              output_dtypes=[float])
    return exposure.copy(data=(exposure.variable * fraction.transpose(*exposure.dims).variable).data)


def _describe(spectrum: Mapping[str, Any] | Any) -> str:
    """A short text of the weighting spectrum (kept in the images' attrs)."""
    if spectrum is None:
        return "powerlaw index 2"
    if isinstance(spectrum, Mapping):
        return f"{spectrum.get('type', 'powerlaw')} index {float(spectrum.get('index', 2.0)):g}"
    return repr(spectrum)
