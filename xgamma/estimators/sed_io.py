"""Flux points and light curves as GADF flux-point tables (FITS) that Gammapy's ``FluxPoints`` reads.

Format: https://gamma-astro-data-formats.readthedocs.io (flux points). A table has one row per
energy bin (``SED_TYPE = "likelihood"``: ``e_ref``, ``e_min``, ``e_max``, ``ref_dnde``,
``ref_flux``, ``ref_eflux``, ``norm`` and the optional ``norm_err``, ``norm_errn``, ``norm_errp``,
``norm_ul``, ``ts``, ``sqrt_ts``, ``npred``, ``npred_excess``, ``counts``, ``stat``,
``stat_null``, ``success``, ``is_ul``; ``UL_CONF`` in the header), or, for a light curve, one row
per time bin (``time_min``, ``time_max`` in MJD) with one column entry per energy bin (Gammapy's
"lightcurve" layout). Other SED types (``dnde``, ``flux``, ``eflux``, ``e2dnde``) write the
points in those units instead of norms.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from xgamma.exceptions import EstimatorError

__all__ = ["flux_points_table", "write_flux_points", "read_flux_points"]

_QUANTITIES = ("norm", "norm_err", "norm_errn", "norm_errp", "norm_ul")
_STATISTICS = ("ts", "sqrt_ts", "npred", "npred_excess", "counts", "stat", "stat_null", "success", "is_ul")
_PER_DATASET = ("npred", "npred_excess", "counts")  # Gammapy keeps one entry per dataset: (n, 1) columns
SedType = Literal["likelihood", "dnde", "flux", "eflux", "e2dnde"]


def _columns(points: xr.Dataset, sed_type: SedType) -> dict[str, tuple[np.ndarray, str]]:
    """Column name -> (values with the energy axis last, unit), for one SED type."""
    def values(name: str) -> np.ndarray:
        da = points[name]
        return np.asarray(da.transpose(..., "energy").values)

    out = {"e_ref": (points["energy"].values, "TeV"), "e_min": (points["energy_min"].values, "TeV"),
           "e_max": (points["energy_max"].values, "TeV")}
    if sed_type == "likelihood":
        for ref in ("ref_dnde", "ref_flux", "ref_eflux"):
            out[ref] = (values(ref), points[ref].attrs["units"])
        names = [(q, q) for q in _QUANTITIES]
    else:
        names = [(sed_type + q[4:], sed_type + q[4:]) for q in _QUANTITIES]
    for column, name in names + [(s, s) for s in _STATISTICS]:
        if name in points:
            out[column] = (values(name), points[name].attrs.get("units", ""))
    return out


def flux_points_table(points: xr.Dataset, *, sed_type: SedType = "likelihood"):
    """A `flux_points` or `light_curve` result as an `astropy.table.Table` in the GADF layout.

    Parameters
    ----------
    points : `xarray.Dataset`
        Result of `xgamma.estimators.flux_points` (dim ``energy``) or
        `xgamma.estimators.light_curve` (dims ``time``, ``energy``).
    sed_type : {"likelihood", "dnde", "flux", "eflux", "e2dnde"}
        How the points are written. Default is "likelihood".

    Returns
    -------
    table : `astropy.table.Table`
        With ``SED_TYPE`` and ``UL_CONF`` in ``meta`` (and the time reference of a light curve).
    """
    from astropy.table import Table
    from scipy.stats import norm as gaussian

    if sed_type not in ("likelihood", "dnde", "flux", "eflux", "e2dnde"):
        raise EstimatorError(f"sed_type must be likelihood, dnde, flux, eflux or e2dnde, got {sed_type!r}")
    if "energy" not in points.dims or set(points.dims) - {"energy", "time"}:
        raise EstimatorError(f"flux points need dims ('energy',) or ('time', 'energy'), got {tuple(points.dims)}")
    columns = _columns(points, sed_type)
    table = Table()
    light_curve = "time" in points.dims
    if light_curve:
        table["time_min"] = points["time_min"].values
        table["time_max"] = points["time_max"].values
    n_energy = points.sizes["energy"]
    for name, (data, unit) in columns.items():
        data = np.asarray(data)
        if light_curve and data.ndim == 1:  # the energy axis, repeated on each row
            data = np.broadcast_to(data, (points.sizes["time"], n_energy))
        if name in _PER_DATASET:
            data = data[..., None]
        table[name] = data
        if unit:
            table[name].unit = unit
    table.meta["SED_TYPE"] = sed_type
    n_sigma_ul = float(points.attrs.get("n_sigma_ul", 2.0))
    table.meta["UL_CONF"] = float(np.round(1 - 2 * gaussian.sf(n_sigma_ul), 7))
    if light_curve:
        table.meta.update(MJDREFI=0, MJDREFF=0.0, TIMESYS="tt", TIMEUNIT="d")
    return table


def write_flux_points(points: xr.Dataset, path: str | os.PathLike, *, sed_type: SedType = "likelihood",
                      overwrite: bool = False) -> Path:
    """Write `flux_points_table` to a FITS file, atomically (nothing half-written is left).

    Returns
    -------
    path : pathlib.Path
    """
    from xgamma.io.fits_maps import atomic_path

    table = flux_points_table(points, sed_type=sed_type)
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        table.write(tmp, format="fits")
    return path


def read_flux_points(path: str | os.PathLike) -> xr.Dataset:
    """Read a `write_flux_points` file (or a GADF likelihood flux-point table) back as a Dataset.

    Only the columns of the likelihood layout are read; the SED values are rebuilt from the
    norms and reference values.
    """
    from astropy.table import Table

    table = Table.read(path)
    if table.meta.get("SED_TYPE") != "likelihood":
        raise EstimatorError(f"{path}: SED_TYPE {table.meta.get('SED_TYPE')!r} is not 'likelihood'")
    light_curve = "time_min" in table.colnames
    dims = ("time", "energy") if light_curve else ("energy",)

    def column(name: str) -> np.ndarray:
        data = np.asarray(table[name])
        return data[..., 0] if name in _PER_DATASET else data

    def unit(name: str) -> str:
        return "" if table[name].unit is None else table[name].unit.to_string()

    energy = {k: column(k)[0] if light_curve else column(k) for k in ("e_ref", "e_min", "e_max")}
    coords = {"energy": ("energy", energy["e_ref"], {"units": "TeV"}),
              "energy_min": ("energy", energy["e_min"], {"units": "TeV"}),
              "energy_max": ("energy", energy["e_max"], {"units": "TeV"})}
    if light_curve:
        coords.update(time_min=("time", np.asarray(table["time_min"]), {"units": "d"}),
                      time_max=("time", np.asarray(table["time_max"]), {"units": "d"}))
    names = [n for n in table.colnames if n in _QUANTITIES + _STATISTICS or n.startswith("ref_")]
    out = xr.Dataset({n: (dims, column(n), {"units": unit(n)}) for n in names}, coords=coords)
    for ref, sed in (("ref_dnde", "dnde"), ("ref_flux", "flux"), ("ref_eflux", "eflux")):
        for q in [q for q in _QUANTITIES if q in out]:
            out[sed + q[4:]] = (out[q] * out[ref]).assign_attrs(units=out[ref].attrs["units"])
    out.attrs["sed_type_init"] = "likelihood"
    return out
