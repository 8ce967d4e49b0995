"""Iterative source detection: fit, residual TS map, add the highest peak as a source, refit, repeat.

One iteration (as in the H.E.S.S. survey catalogue and Gammapy's detection tutorials):

1. the current models (background model and sources found so far) are fitted (`xgamma.fit.fit`);
2. a point-source TS map of what they leave (`xgamma.estimators.ts_map`, their prediction is the
   null hypothesis) gives the candidates (`xgamma.estimators.find_peaks` above ``threshold``);
3. at the highest peak a point source and a Gaussian are each fitted alone (the other models
   held) and the Gaussian is kept when its TS exceeds the point's by ``extension_ts`` (its one
   more parameter);
4. all models are refitted; a new source whose TS fell below ``threshold**2`` is dropped and the
   search stops.

It stops when no peak is above the threshold or after ``max_sources`` new sources. The result
holds the models, a table of sources with their TS (`xgamma.fit.FitResult.ts`: the statistic
without the source, the rest refitted, minus the statistic with it), the history of the
iterations, the last fit and the final residual TS map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from xgamma.estimators.ts_kernel import MORPHOLOGIES
from xgamma.exceptions import EstimatorError

if TYPE_CHECKING:
    import xarray as xr
    from astropy.table import Table

    from xgamma.fit.dataset import MapDataset
    from xgamma.fit.result import FitResult

__all__ = ["detect_sources", "DetectionResult", "sources_table", "MORPHOLOGIES"]


@dataclass
class DetectionResult:
    """Outcome of `detect_sources`.

    Attributes
    ----------
    models : list
        All models at the last fit: the background model, the sources given and those found.
    sources : `astropy.table.Table`
        One row per sky model (`sources_table`): position, extent, flux, index, TS.
    history : `astropy.table.Table`
        One row per iteration: the peak (``lon``, ``lat``, ``peak_sqrt_ts``), the TS of the point
        and Gaussian trials (fitted alone), the morphology kept, the new source's TS after the
        refit of all models, the statistic, and what happened (``"added"``, ``"dropped"``).
    fit_result : `~xgamma.fit.FitResult` or None
        The final fit of all models (`xgamma.fit.fit`, with its checks and the TS per source).
    ts_map : `xarray.Dataset`
        The residual TS map after the last fit.
    stopped : str
        Why the search ended.
    dataset_name : str
        Name of the dataset searched: ``models.yaml`` ties the background model to it (Gammapy
        reads the file).
    """

    models: list
    sources: Table
    history: Table
    fit_result: FitResult | None
    ts_map: xr.Dataset
    stopped: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    dataset_name: str = "stacked"

    def write(self, directory: Any, *, overwrite: bool = False) -> dict[str, Any]:
        """Write ``sources.ecsv``, ``sources.fits`` and ``models.yaml`` into ``directory`` (atomically).

        Returns
        -------
        paths : dict
            ``{"sources_ecsv": ..., "sources_fits": ..., "models": ...}``.
        """
        from pathlib import Path

        from xgamma.io.fits_maps import atomic_path
        from xgamma.models.io import write_models

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"sources_ecsv": directory / "sources.ecsv", "sources_fits": directory / "sources.fits",
                 "models": directory / "models.yaml"}
        with atomic_path(paths["sources_ecsv"], overwrite=overwrite) as tmp:
            self.sources.write(tmp, format="ascii.ecsv")
        with atomic_path(paths["sources_fits"], overwrite=overwrite) as tmp:
            self.sources.write(tmp, format="fits")
        with atomic_path(paths["models"], overwrite=overwrite) as tmp:
            write_models(self.models, tmp, dataset_name=self.dataset_name)
        return paths


def _new_source(kind: str, name: str, position: Any, frame: str, flux: float, *, sigma_deg: float, index: float,
                index_frozen: bool, band: tuple[float, float], max_sigma_deg: float) -> Any:
    """A point or Gaussian source with an integral-flux power law (``PowerLaw2`` over the map's band)."""
    from xgamma.models import Gaussian, Point, PowerLaw2, SkyModel

    spectral = PowerLaw2(amplitude=f"{max(flux, 1e-30)} cm-2 s-1",
                         index={"value": index, "frozen": index_frozen},
                         emin=f"{band[0]} TeV", emax=f"{band[1]} TeV")
    lon, lat = position.spherical.lon.deg, position.spherical.lat.deg
    if kind == "point":
        spatial = Point(lon_0=f"{lon} deg", lat_0=f"{lat} deg", frame=frame)
    else:
        spatial = Gaussian(lon_0=f"{lon} deg", lat_0=f"{lat} deg", frame=frame,
                           sigma={"value": sigma_deg, "unit": "deg", "min": 0.0, "max": max_sigma_deg})
    return SkyModel(spectral, spatial, name=name)


def _statistic(dataset: MapDataset, models: list) -> float:
    """Cash statistic of ``models`` on the dataset, fitting their free parameters in place (no
    error checks: the searches in between; the final fit is `xgamma.fit.fit`)."""
    from xgamma.fit.limits import default_limits
    from xgamma.fit.minimize import minimize
    from xgamma.fit.statistic import Likelihood

    likelihood = Likelihood(dataset.arrays, models)
    if not likelihood.free_labels:
        return float(likelihood(np.array([])))
    return float(minimize(likelihood, limits=default_limits(models, dataset.arrays)).statistic)


def _trial(dataset: MapDataset, models: list, candidate: Any, statistic: float) -> tuple[float, Any]:
    """Fit ``candidate`` alone over the held ``models``: its TS (the statistic it removes) and the fit."""
    from xgamma.exceptions import FitError

    held = [m.copy() for m in models]
    for model in held:
        for p in model.parameters:
            p.frozen = True
    trial = candidate.copy()
    try:
        return statistic - _statistic(dataset, [*held, trial]), trial
    except FitError:  # a trial that cannot run loses the comparison; the other morphology may do
        return -np.inf, trial


def detect_sources(
    dataset: MapDataset,
    *,
    threshold: float = 5.0,
    max_sources: int = 10,
    min_distance: Any = "0.1 deg",
    morphologies: Sequence[str] = MORPHOLOGIES,
    sigma: Any = "0.1 deg",
    max_sigma: Any = "1 deg",
    extension_ts: float = 4.0,
    index: float = 2.0,
    name_prefix: str = "src",
    max_radius: Any = None,
) -> DetectionResult:
    """Find sources one by one in the residuals of a fit and refit all of them each time.

    Parameters
    ----------
    dataset : `~xgamma.fit.MapDataset`
        Maps, PSF kernel and starting models (a `~xgamma.models.BackgroundModel`, and any
        sources already known). Its ``models`` are replaced by copies at the final fit.
    threshold : float
        A peak of the residual sqrt(TS) map above it becomes a candidate; a source whose TS falls
        below ``threshold**2`` after the refit is dropped. Default is 5 (sigma).
    max_sources : int
        Most new sources. Default is 10.
    min_distance : int, str or `~astropy.units.Quantity`
        Peaks closer than this to a higher one are ignored (`find_peaks`). Default is "0.1 deg".
    morphologies : sequence of {"point", "gaussian"}
        Shapes tried for a new source. Default: both.
    sigma : str or `~astropy.units.Quantity`
        Starting width of a Gaussian. Default is "0.1 deg".
    max_sigma : str or `~astropy.units.Quantity`
        Largest Gaussian width allowed in the fits. Default is "1 deg".
    extension_ts : float
        The Gaussian is kept when its TS exceeds the point source's by this much. Default is 4.
    index : float
        Power-law index of a new source's spectrum: fixed for an image (one energy bin), the
        starting value for a cube. Default is 2.
    name_prefix : str
        New sources are named ``{name_prefix}{k}`` (k = 1, 2, ...). Default is "src".
    max_radius : str or `~astropy.units.Quantity`, optional
        Truncation radius of the TS-map kernel (`ts_kernel`). Default: the PSF kernel's size.

    Returns
    -------
    result : DetectionResult
    """
    from astropy.table import Table

    from xgamma.estimators.peaks import find_peaks
    from xgamma.estimators.ts_map import ts_map
    from xgamma.fit.fitter import fit
    from xgamma.models import BackgroundModel
    from xgamma.units import parse_angle

    unknown = set(morphologies) - set(MORPHOLOGIES)
    if unknown or not morphologies:
        raise EstimatorError(f"morphologies: {sorted(unknown) or 'none'}; choose from {list(MORPHOLOGIES)}")
    if not (np.isfinite(threshold) and threshold > 0):
        raise EstimatorError(f"threshold must be a positive number (sigma), got {threshold!r}")
    if int(max_sources) != max_sources or max_sources < 0:
        raise EstimatorError(f"max_sources must be an integer >= 0, got {max_sources!r}")
    if not any(isinstance(m, BackgroundModel) for m in dataset.models):
        raise EstimatorError("detect_sources: the dataset needs a BackgroundModel among its models")
    sigma_deg = parse_angle(sigma, name="sigma").to_value("deg")
    max_sigma_deg = parse_angle(max_sigma, name="max_sigma").to_value("deg")
    geometry = dataset.geometry
    edges = geometry.energy_edges.to_value("TeV")
    image = edges.size == 2
    taken = {m.name for m in dataset.models}
    models = [m.copy() for m in dataset.models]
    history: list[dict[str, Any]] = []
    statistic = _statistic(dataset, models)
    stopped = f"max_sources={max_sources} new sources found"
    for iteration in range(1, int(max_sources) + 1):
        dataset.models = models
        residual = ts_map(dataset, max_radius=max_radius, selection_optional=())
        peaks = find_peaks(residual["sqrt_ts"], threshold, min_distance=min_distance)
        if len(peaks) == 0:
            stopped = f"no residual peak above sqrt(TS) = {threshold}"
            break
        peak = peaks[0]
        position = geometry.pixel_to_skycoord(float(peak["x"]), float(peak["y"]))
        flux = float(residual["flux"].values[0, int(peak["y"]), int(peak["x"])])
        name = _free_name(name_prefix, taken)
        row: dict[str, Any] = {"iteration": iteration, "name": name, "lon": float(peak["lon"]),
                               "lat": float(peak["lat"]), "peak_sqrt_ts": float(peak["value"])}
        trials = {}
        for kind in morphologies:
            candidate = _new_source(kind, name, position, geometry.frame, flux, sigma_deg=sigma_deg, index=index,
                                    index_frozen=image, band=(edges[0], edges[-1]), max_sigma_deg=max_sigma_deg)
            trials[kind] = _trial(dataset, models, candidate, statistic)
            row[f"ts_{kind}"] = trials[kind][0]
        kind = "point" if "point" in trials else "gaussian"
        if "gaussian" in trials and "point" in trials and trials["gaussian"][0] - trials["point"][0] >= extension_ts:
            kind = "gaussian"
        row["morphology"] = kind
        new = trials[kind][1]
        for p in new.parameters:  # thaw what the trial held (the index stays fixed for images)
            p.frozen = p.name in ("emin", "emax") or (p.name == "index" and image)
        refit = [m.copy() for m in models] + [new]
        refit_statistic = _statistic(dataset, refit)
        # TS of the new source: the statistic without it (the previous fit of all the others) minus
        # with it, all refitted (`xgamma.fit.FitResult.ts`'s definition).
        new_ts = statistic - refit_statistic
        row.update(ts=new_ts, statistic=refit_statistic)
        if new_ts < threshold**2:
            row["action"] = "dropped"
            history.append(row)
            stopped = f"the new source {name} has TS = {new_ts:.3g} < {threshold ** 2:g} after the refit"
            break
        row["action"] = "added"
        history.append(row)
        models, statistic = refit, refit_statistic
        taken.add(name)
    dataset.models = models
    result = fit(dataset) if any(not p.frozen for m in models for p in m.parameters) else None
    residual = ts_map(dataset, max_radius=max_radius, selection_optional=())
    table = sources_table(models, result, energy_range=(edges[0], edges[-1]),
                          added={r["name"]: r["iteration"] for r in history if r["action"] == "added"})
    columns = ["iteration", "name", "lon", "lat", "peak_sqrt_ts", "ts_point", "ts_gaussian", "morphology", "ts",
               "statistic", "action"]
    history_table = Table(rows=[[r.get(c, np.nan) for c in columns] for r in history], names=columns) if history \
        else Table(names=columns, dtype=[int, str, float, float, float, float, float, str, float, float, str])
    return DetectionResult(models=models, sources=table, history=history_table, fit_result=result, ts_map=residual,
                           stopped=stopped, settings=dict(threshold=threshold, max_sources=int(max_sources),
                                                          extension_ts=extension_ts,
                                                          morphologies=list(morphologies)),
                           dataset_name=dataset.name)


def _free_name(prefix: str, taken: set[str]) -> str:
    k = 1
    while f"{prefix}{k}" in taken:
        k += 1
    return f"{prefix}{k}"


def sources_table(models: list, result: FitResult | None = None, *, energy_range: tuple[float, float] | None = None,
                  added: dict[str, int] | None = None) -> Table:
    """Sky models as a catalogue table: position (and errors), Gaussian width, flux, index and TS.

    Parameters
    ----------
    models : list
        Models; only sky models become rows.
    result : `~xgamma.fit.FitResult`, optional
        The fit giving errors and TS (``result.ts``).
    energy_range : (float, float), optional
        Band (TeV) of the ``flux`` column. Default: each spectrum's own ``emin``/``emax`` if it
        has them, else 1-10 TeV.
    added : dict, optional
        ``{name: iteration}`` of the sources found by `detect_sources`.

    Returns
    -------
    table : `astropy.table.Table`
        Columns ``name``, ``morphology``, ``frame``, ``lon``, ``lat``, ``lon_err``, ``lat_err``
        (deg, the model's frame), ``ra``, ``dec`` (ICRS, deg), ``sigma``, ``sigma_err`` (deg, NaN
        for points), ``flux``, ``flux_err`` (cm-2 s-1 in ``energy_min``-``energy_max``, TeV),
        ``index``, ``index_err``, ``ts``, ``sqrt_ts`` and ``iteration`` (0: given, not found).
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    from xgamma.models import SkyModel

    errors = result.errors if result is not None else {}
    ts = result.ts if result is not None else {}
    rows = []
    for model in [m for m in models if isinstance(m, SkyModel)]:
        spatial, spectral = model.spatial, model.spectral
        frame = getattr(spatial, "frame", "icrs")
        lon, lat = spatial.position_in(frame) if hasattr(spatial, "position_in") else (np.nan, np.nan)
        icrs = SkyCoord(lon, lat, unit="deg", frame=frame).icrs
        names = [p.name for p in model.parameters]
        if energy_range is not None:
            band = energy_range
        elif "emin" in names and "emax" in names:
            band = (model.parameter("emin").value, model.parameter("emax").value)
        else:
            band = (1.0, 10.0)
        flux = float(spectral.integral(band[0] * u.TeV, band[1] * u.TeV).to_value("cm-2 s-1"))
        amplitude = next((p for p in spectral.parameters if p.name in ("amplitude", "norm")), None)
        relative = (errors.get(f"{model.name}.{amplitude.name}", 0.0) / amplitude.value
                    if amplitude is not None and amplitude.value else np.nan)

        def value(name: str) -> float:
            return model.parameter(name).value if name in names else np.nan

        def error(name: str) -> float:
            return float(errors.get(f"{model.name}.{name}", np.nan)) if name in names else np.nan

        source_ts = float(ts.get(model.name, np.nan))
        rows.append([model.name, spatial.tag, frame, lon, lat, error("lon_0"), error("lat_0"), icrs.ra.deg,
                     icrs.dec.deg, value("sigma"), error("sigma"), flux, abs(flux * relative), band[0], band[1],
                     value("index"), error("index"), source_ts, np.sqrt(max(source_ts, 0.0)),
                     (added or {}).get(model.name, 0)])
    names = ["name", "morphology", "frame", "lon", "lat", "lon_err", "lat_err", "ra", "dec", "sigma", "sigma_err",
             "flux", "flux_err", "energy_min", "energy_max", "index", "index_err", "ts", "sqrt_ts", "iteration"]
    dtypes = [str, str, str] + [float] * 16 + [int]
    table = Table(rows=rows, names=names, dtype=dtypes) if rows else Table(names=names, dtype=dtypes)
    for name in ("lon", "lat", "lon_err", "lat_err", "ra", "dec", "sigma", "sigma_err"):
        table[name].unit = "deg"
    for name in ("flux", "flux_err"):
        table[name].unit = "cm-2 s-1"
    for name in ("energy_min", "energy_max"):
        table[name].unit = "TeV"
    return table
