"""Flux points and light curves of a fitted source: per energy (and time) bin, a fit of its norm.

Gammapy's ``FluxPointsEstimator`` and ``LightCurveEstimator`` (with ``reoptimize=False``, their
default): in each bin, the source's fitted model is scaled by a free ``norm`` while every other
model (other sources, the background model) stays at its fitted prediction; the Cash fit of
the norm gives the point, its curvature and profile errors, its TS against norm 0 and an upper
limit (`xgamma.estimators.norm_profile`: all bins at once, on Gammapy's truncated statistic, so
faint bins get the same negative norms and upper limits). A point is ``norm`` times the model's
reference values in the bin (``ref_dnde`` at the log centre ``e_ref``, ``ref_flux``,
``ref_eflux``, ``ref_e2dnde``). Results are `xarray.Dataset` s; `xgamma.estimators.sed_io`
writes them as GADF flux-point tables (``SED_TYPE = "likelihood"``) that Gammapy reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from xgamma.estimators.energy_groups import energy_groups
from xgamma.estimators.norm_fit import MU_MIN
from xgamma.estimators.norm_profile import TruncatedFits
from xgamma.exceptions import EstimatorError

if TYPE_CHECKING:
    from xgamma.fit.dataset import MapDataset

__all__ = ["flux_points", "light_curve", "reference_fluxes", "assign_observation_times", "SED_SELECTION"]

#: Optional outputs of flux points and light curves.
SED_SELECTION = ("errn-errp", "ul")
_GL_X, _GL_W = np.polynomial.legendre.leggauss(32)


def reference_fluxes(spectral: Any, energy_min: np.ndarray, energy_max: np.ndarray) -> dict[str, np.ndarray]:
    """Reference values of a spectral model in energy bins (Gammapy's ``reference_fluxes``).

    Returns
    -------
    values : dict
        ``e_ref`` = sqrt(e_min e_max), ``e_min``, ``e_max`` (TeV), ``ref_dnde`` (TeV-1 cm-2 s-1)
        at ``e_ref``, ``ref_flux`` (cm-2 s-1), ``ref_eflux`` (TeV cm-2 s-1, Gauss-Legendre in ln E)
        and ``ref_e2dnde`` (TeV cm-2 s-1).
    """
    import astropy.units as u

    e_min, e_max = np.asarray(energy_min, float), np.asarray(energy_max, float)
    e_ref = np.sqrt(e_min * e_max)
    dnde = spectral(e_ref * u.TeV).to_value("TeV-1 cm-2 s-1")
    flux = spectral.integral(e_min * u.TeV, e_max * u.TeV).to_value("cm-2 s-1")
    lo, hi = np.log(e_min)[:, None], np.log(e_max)[:, None]
    energy = np.exp(lo + 0.5 * (hi - lo) * (_GL_X + 1.0))
    e2dnde = energy**2 * spectral(energy * u.TeV).to_value("TeV-1 cm-2 s-1")
    eflux = np.sum(_GL_W * e2dnde, axis=-1) * 0.5 * (hi - lo)[:, 0]
    return {"e_ref": e_ref, "e_min": e_min, "e_max": e_max, "ref_dnde": dnde, "ref_flux": flux,
            "ref_eflux": eflux, "ref_e2dnde": dnde * e_ref**2}


def _components(dataset: MapDataset, source: str) -> dict[str, np.ndarray]:
    """Counts, source and other predictions, and the fit mask of a dataset (numpy, (energy, lat, lon))."""
    names = [m.name for m in dataset.sky_models]
    if source not in names:
        raise EstimatorError(f"source {source!r} is not a sky model of dataset {dataset.name!r}; known: {names}")
    arrays = dataset.arrays
    model = np.asarray(dataset.npred_source(source).values, dtype=float)
    other = np.asarray(dataset.npred().values, dtype=float) - model
    return {"counts": arrays.counts, "model": model, "other": np.maximum(other, 0.0), "mask": arrays.mask}


def _columns(parts: list[dict[str, np.ndarray]], group: slice) -> dict[str, Any]:
    """Entries of one fit (energy bins ``group`` of every dataset in ``parts``) and its totals."""
    n, b, m = [], [], []
    totals = dict(counts=0.0, model=0.0, other=0.0, stat_null=0.0)
    for part in parts:
        mask = part["mask"][group]
        counts, model, other = (part[k][group][mask] for k in ("counts", "model", "other"))
        use = model > 0  # entries without the source only add constants to the statistic
        n.append(counts[use])
        m.append(model[use])
        b.append(other[use])
        mu = np.maximum(other, MU_MIN)
        totals["stat_null"] += 2.0 * float(np.sum(mu - np.where(counts > 0, counts * np.log(mu), 0.0)))
        totals["counts"] += float(counts.sum())
        totals["model"] += float(model.sum())
        totals["other"] += float(other.sum())
    return {"entries": (np.concatenate(n), np.concatenate(b), np.concatenate(m)), **totals}


def _fit_columns(columns: list[dict[str, Any]], *, n_sigma: float, n_sigma_ul: float,
                 selection: Sequence[str]) -> dict[str, np.ndarray]:
    """Norm fits of all columns at once (entries padded with zeros, which contribute nothing)."""
    size = max(1, max(c["entries"][0].size for c in columns))
    arrays = np.zeros((3, size, len(columns)))
    for j, column in enumerate(columns):
        for k, values in enumerate(column["entries"]):
            arrays[k, : values.size, j] = values
    fits = TruncatedFits(*arrays)
    fit = fits.best()
    out = {"norm": fit["norm"], "norm_err": fit["norm_err"] * n_sigma, "ts": fit["ts"], "success": fit["success"]}
    if "errn-errp" in selection:
        low = fits.confidence(fit, n_sigma=n_sigma, side="lower")
        high = fits.confidence(fit, n_sigma=n_sigma)
        out.update(norm_errn=fit["norm"] - low, norm_errp=high - fit["norm"])
    if "ul" in selection:
        out["norm_ul"] = fits.confidence(fit, n_sigma=n_sigma_ul)
    # Totals over every pixel of the bin (the statistic's constant part from pixels without the source).
    constant = np.array([c["stat_null"] for c in columns]) - fit["stat_null"]
    out.update(
        counts=np.array([c["counts"] for c in columns]),
        npred=np.array([c["other"] + n * c["model"] for c, n in zip(columns, fit["norm"])]),
        npred_excess=np.array([n * c["model"] for c, n in zip(columns, fit["norm"])]),
        stat_null=fit["stat_null"] + constant, stat=fit["stat"] + constant,
    )
    out["sqrt_ts"] = np.sign(fit["norm"]) * np.sqrt(np.maximum(fit["ts"], 0.0))
    return out


def _check(selection: Sequence[str], n_sigma: float, n_sigma_ul: float) -> None:
    unknown = set(selection) - set(SED_SELECTION)
    if unknown:
        raise EstimatorError(f"selection_optional: unknown {sorted(unknown)}; choose from {list(SED_SELECTION)}")
    for name, value in (("n_sigma", n_sigma), ("n_sigma_ul", n_sigma_ul)):
        if not (np.isfinite(value) and value > 0):
            raise EstimatorError(f"{name} must be a positive number, got {value!r}")


def _sed_dataset(results: dict[str, np.ndarray], reference: dict[str, np.ndarray], dims: tuple[str, ...],
                 *, n_sigma: float, n_sigma_ul: float, sqrt_ts_threshold_ul: float, spectral: Any,
                 source: str) -> xr.Dataset:
    """Results (arrays over ``dims``) with the reference values and the points in every SED type."""
    units = {"dnde": "TeV-1 cm-2 s-1", "flux": "cm-2 s-1", "eflux": "TeV cm-2 s-1", "e2dnde": "TeV cm-2 s-1"}
    coords = {"energy": ("energy", reference["e_ref"], {"units": "TeV"}),
              "energy_min": ("energy", reference["e_min"], {"units": "TeV"}),
              "energy_max": ("energy", reference["e_max"], {"units": "TeV"})}
    variables = {name: (dims, value, {"units": ""}) for name, value in results.items()}
    shape = results["norm"].shape
    for sed, unit in units.items():
        ref = np.broadcast_to(reference[f"ref_{sed}"], shape)
        variables[f"ref_{sed}"] = (dims, ref, {"units": unit})
        for name in [k for k in results if k.startswith("norm")]:
            variables[sed + name[4:]] = (dims, results[name] * ref, {"units": unit})
    out = xr.Dataset(variables, coords=coords)
    out["is_ul"] = out["sqrt_ts"] < sqrt_ts_threshold_ul
    out.attrs = {"sed_type_init": "likelihood", "n_sigma": n_sigma, "n_sigma_ul": n_sigma_ul,
                 "sqrt_ts_threshold_ul": sqrt_ts_threshold_ul, "source": source,
                 "reference_model": repr(spectral)}
    return out


def flux_points(
    dataset: MapDataset,
    source: str,
    *,
    energy_edges: Any = None,
    n_sigma: float = 1.0,
    n_sigma_ul: float = 2.0,
    selection_optional: Sequence[str] = ("errn-errp", "ul"),
    sqrt_ts_threshold_ul: float = 2.0,
) -> xr.Dataset:
    """Flux points of a fitted source: the norm of its model fitted in each energy bin.

    Parameters
    ----------
    dataset : `~xgamma.fit.MapDataset`
        A cube dataset whose models are at their best fit (`xgamma.fit.fit`).
    source : str
        Name of the sky model.
    energy_edges : `~astropy.units.Quantity` or str list, optional
        Edges of the points; each moves to the nearest edge of the map's bins (as Gammapy's).
        Default: one point per map bin.
    n_sigma : float
        Errors are ``n_sigma`` sigma. Default is 1.
    n_sigma_ul : float
        Upper limits where the statistic rises by ``n_sigma_ul**2``. Default is 2.
    selection_optional : sequence of {"errn-errp", "ul"}
        Profile-likelihood errors and upper limits. Default is both.
    sqrt_ts_threshold_ul : float
        ``is_ul`` marks points with sqrt(TS) below it (plotted as upper limits). Default is 2.

    Returns
    -------
    points : `xarray.Dataset`
        Dim ``energy`` (coords ``energy`` = e_ref, ``energy_min``, ``energy_max``, TeV): ``norm``,
        ``norm_err`` (and ``norm_errn``, ``norm_errp``, ``norm_ul``), ``ts``, ``sqrt_ts``,
        ``counts``, ``npred``, ``npred_excess``, ``stat``, ``stat_null``, ``success``, ``is_ul``,
        the reference values ``ref_dnde``, ``ref_flux``, ``ref_eflux``, ``ref_e2dnde`` and the
        points in each SED type (``dnde``, ``dnde_err``, ``dnde_ul``..., ``flux...``,
        ``eflux...``, ``e2dnde...``) with their units.
    """
    _check(selection_optional, n_sigma, n_sigma_ul)
    edges = dataset.geometry.energy_edges.to_value("TeV")
    groups = energy_groups(edges, energy_edges, snap=True)
    parts = [_components(dataset, source)]
    columns = [_columns(parts, group) for group in groups]
    results = _fit_columns(columns, n_sigma=n_sigma, n_sigma_ul=n_sigma_ul, selection=selection_optional)
    spectral = next(m for m in dataset.sky_models if m.name == source).spectral
    reference = reference_fluxes(spectral, np.array([edges[g.start] for g in groups]),
                                 np.array([edges[g.stop] for g in groups]))
    return _sed_dataset(results, reference, ("energy",), n_sigma=n_sigma, n_sigma_ul=n_sigma_ul,
                        sqrt_ts_threshold_ul=sqrt_ts_threshold_ul, spectral=spectral, source=source)


def assign_observation_times(maps: xr.Dataset, observations: Sequence[Any]) -> xr.Dataset:
    """Per-run maps (``obs_id`` dim) with ``time_min`` / ``time_max`` coordinates (MJD, TT) of their runs."""
    if "obs_id" not in maps.dims or maps.sizes["obs_id"] != len(observations):
        raise EstimatorError(f"maps need an 'obs_id' dim with one entry per observation ({len(observations)})")
    ids = [int(o.obs_id) for o in observations]
    if "obs_id" in maps.coords and [int(i) for i in maps.obs_id.values] != ids:
        raise EstimatorError(f"observations {ids} are not the maps' obs_id {maps.obs_id.values.tolist()}")
    start = np.array([o.tstart.tt.mjd for o in observations])
    stop = np.array([o.tstop.tt.mjd for o in observations])
    return maps.assign_coords(time_min=("obs_id", start, {"units": "d", "scale": "tt"}),
                              time_max=("obs_id", stop, {"units": "d", "scale": "tt"}))


def _time_bins(start: np.ndarray, stop: np.ndarray, intervals: Any) -> list[tuple[float, float, np.ndarray]]:
    """(t_min, t_max, runs) per time bin: one per run, or the runs inside each interval."""
    if intervals is None:
        return [(s, e, np.array([i])) for i, (s, e) in enumerate(zip(start, stop))]
    from astropy.time import Time

    bins = []
    for interval in intervals:
        lo, hi = (Time(t).tt.mjd for t in interval)
        if not lo < hi:
            raise EstimatorError(f"time interval {interval}: start must be before stop")
        inside = np.flatnonzero((start >= lo - 1e-9) & (stop <= hi + 1e-9))  # runs wholly inside (1e-9 d)
        bins.append((lo, hi, inside))
    return bins


def light_curve(
    maps: xr.Dataset,
    models: list,
    source: str,
    *,
    psf: Any = None,
    time_intervals: Sequence[Any] | None = None,
    energy_edges: Any = None,
    n_sigma: float = 1.0,
    n_sigma_ul: float = 2.0,
    selection_optional: Sequence[str] = ("errn-errp", "ul"),
    sqrt_ts_threshold_ul: float = 2.0,
) -> xr.Dataset:
    """Light curve of a fitted source: its norm fitted per time bin (and energy group).

    In a time bin, the runs inside it are fitted jointly (the likelihood is the product over
    their pixels); the other models stay at their fitted values (``reoptimize=False``).

    Parameters
    ----------
    maps : `xarray.Dataset`
        Per-run ``counts``, ``exposure``, ``background`` with dims ("obs_id", "energy", "lat",
        "lon") (`xgamma.makers.make_observation_maps`) and ``time_min`` / ``time_max`` coords
        (MJD; `assign_observation_times`).
    models : list
        The fitted sky models and background model (applied to every run).
    source : str
        Name of the sky model.
    psf : `~xgamma.fit.PSFKernel`, optional
        PSF kernel(s) of the maps.
    time_intervals : sequence of (start, stop), optional
        Time bins (`~astropy.time.Time` or anything it reads); each holds the runs wholly
        inside it. Default: one bin per run.
    energy_edges
        Energy groups, as for `flux_points`. Default: one group with all bins.
    n_sigma, n_sigma_ul, selection_optional, sqrt_ts_threshold_ul
        As for `flux_points`.

    Returns
    -------
    curve : `xarray.Dataset`
        The variables of `flux_points` with dims ("time", "energy") and coords ``time_min``,
        ``time_max`` (MJD, TT) and ``n_runs``; bins without runs are NaN.
    """
    from xgamma.fit.dataset import MapDataset
    from xgamma.maps import map_geometry

    _check(selection_optional, n_sigma, n_sigma_ul)
    missing = [k for k in ("counts", "exposure", "time_min", "time_max") if k not in maps.variables]
    if missing or "obs_id" not in maps.dims:
        raise EstimatorError(f"light_curve needs per-run maps with an 'obs_id' dim and {missing} "
                             "(use assign_observation_times)")
    start, stop = np.asarray(maps["time_min"].values, float), np.asarray(maps["time_max"].values, float)
    bins = _time_bins(start, stop, time_intervals)
    used = sorted({int(i) for _, _, runs in bins for i in runs})
    parts = {}
    for i in used:
        run = maps.isel(obs_id=i)
        run_maps = xr.Dataset({k: run[k].compute() for k in ("counts", "exposure", "background") if k in run})
        dataset = MapDataset.from_maps(run_maps, psf=psf, models=[m.copy() for m in models], name=f"run {i}")
        parts[i] = _components(dataset, source)
    edges = map_geometry(maps["counts"]).energy_edges.to_value("TeV")
    groups = energy_groups(edges, energy_edges, snap=True)
    columns, cells = [], []
    for t, (_, _, runs) in enumerate(bins):
        for e, group in enumerate(groups):
            if runs.size:
                columns.append(_columns([parts[int(i)] for i in runs], group))
                cells.append((t, e))
    if not columns:
        raise EstimatorError(f"light_curve: no run lies wholly inside any of the time intervals {time_intervals}")
    shape = (len(bins), len(groups))
    results: dict[str, np.ndarray] = {}
    fitted = _fit_columns(columns, n_sigma=n_sigma, n_sigma_ul=n_sigma_ul, selection=selection_optional)
    for name, values in fitted.items():
        grid = np.full(shape, np.nan) if values.dtype.kind == "f" else np.zeros(shape, values.dtype)
        for (t, e), value in zip(cells, values):
            grid[t, e] = value
        results[name] = grid
    spectral = next(m for m in models if getattr(m, "name", None) == source).spectral
    reference = reference_fluxes(spectral, np.array([edges[g.start] for g in groups]),
                                 np.array([edges[g.stop] for g in groups]))
    out = _sed_dataset(results, reference, ("time", "energy"), n_sigma=n_sigma, n_sigma_ul=n_sigma_ul,
                       sqrt_ts_threshold_ul=sqrt_ts_threshold_ul, spectral=spectral, source=source)
    return out.assign_coords(time_min=("time", np.array([b[0] for b in bins]), {"units": "d", "scale": "tt"}),
                             time_max=("time", np.array([b[1] for b in bins]), {"units": "d", "scale": "tt"}),
                             n_runs=("time", np.array([b[2].size for b in bins])))
