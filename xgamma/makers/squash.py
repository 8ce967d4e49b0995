"""Energy squashing: reduce a cube to a one-bin image, spectrum-weighting the exposure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from xgamma.exceptions import ConfigError, GeometryError
from xgamma.maps import map_geometry, map_units

__all__ = ["squash_energy", "spectral_weights", "SUMMED", "WEIGHTED"]

#: Variables squashed by summing (counts-like) and by spectrum-weighted averaging (exposure-like).
SUMMED = ("counts", "background", "npred", "excess", "off")
WEIGHTED = ("exposure",)


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
        from xgamma.models.spectral import powerlaw_integral

        fluxes = powerlaw_integral(edges[:-1], edges[1:], float(spectrum.get("index", 2.0)))
    else:
        import astropy.units as u

        fluxes = np.array([
            u.Quantity(spectrum.integral(u.Quantity(lo, "TeV"), u.Quantity(hi, "TeV"))).value
            for lo, hi in zip(edges[:-1], edges[1:])
        ])
    total = fluxes.sum()
    if not np.isfinite(total) or total <= 0:
        raise ConfigError("squash.spectrum: the spectrum integrates to a non-positive or non-finite flux")
    return fluxes / total


def _squash_array(da: xr.DataArray, weights: np.ndarray | None) -> xr.DataArray:
    """Sum (or weight-average) over ``energy``, keeping a length-1 energy dim and any other dims."""
    image_coords = map_geometry(da).to_image().energy_coords()
    axis = da.dims.index("energy")
    data = da.data
    if weights is not None:
        shape = [1] * da.ndim
        shape[axis] = weights.size
        data = data * weights.reshape(shape)
    data = data.sum(axis=axis, keepdims=True)
    # Coordinates objects, not dicts: the sky and energy indexes of the map are kept.
    coords = da.drop_vars([name for name, coord in da.coords.items() if "energy" in coord.dims]).coords
    return xr.DataArray(data, dims=da.dims, coords=coords.assign(image_coords), name=da.name,
                        attrs={"units": map_units(da).to_string()})


def squash_energy(maps: xr.Dataset | xr.DataArray, *, spectrum: Mapping[str, Any] | Any = None) -> xr.Dataset | xr.DataArray:
    """Squash the energy axis to one bin spanning the full range (lazy).

    Counts-like variables (``counts``, ``background``, ...) are summed. ``exposure`` is averaged
    with weights = fraction of the spectrum's integral flux in each bin, so that
    ``integral flux x squashed exposure`` equals the summed predicted counts for that spectrum.

    Parameters
    ----------
    maps : `xarray.Dataset` or `xarray.DataArray`
        Cube(s) with dims ``("energy", "lat", "lon")``.
    spectrum : dict or spectral model, optional
        Spectrum used for the exposure weights. Default is a power law of index 2.

    Returns
    -------
    images : same type as ``maps``
        Images with a length-1 ``energy`` dim whose edges are the total bounds; units kept.
    """
    if "energy" not in maps.dims:
        raise GeometryError("squash_energy needs maps with an 'energy' dim")
    edges = map_geometry(maps).energy_edges.to_value("TeV")
    weights = spectral_weights(edges, spectrum)
    if isinstance(maps, xr.DataArray):
        return _squash_array(maps, weights if maps.name in WEIGHTED else None)
    images = {
        name: _squash_array(var, weights if name in WEIGHTED else None)
        for name, var in maps.data_vars.items()
        if "energy" in var.dims
    }
    return xr.Dataset(images, attrs=dict(maps.attrs))
