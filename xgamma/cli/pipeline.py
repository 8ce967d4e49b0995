"""The stages of ``xgamma run``: each maps config sections one to one onto the Python API.

Stages run in order and each writes its products atomically into the output folder:

* ``maps``          -> ``maps.fits`` (stacked cube) and ``images.fits`` (squashed images)
* ``fit``           -> ``fit.json``, ``models.yaml``, ``residuals.fits``   (when ``models`` is given)
* ``significance``  -> ``significance.fits``, ``significance.json``        (when ``ring`` is given)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["AnalysisState", "run_analysis", "build_geometry", "select_observations", "STAGES"]

log = logging.getLogger("xgamma")


@dataclass
class AnalysisState:
    """What the stages pass on to each other."""

    config: dict
    output: Path
    observations: list = field(default_factory=list)
    geometry: Any = None
    maps: Any = None  # xr.Dataset, stacked cube (lazy until written)
    images: Any = None  # xr.Dataset, squashed images
    observation_images: Any = None  # xr.Dataset with an obs_id dim (for the ring background)
    dataset: Any = None  # xgamma.fit.MapDataset of the fit stage
    fit_result: Any = None  # xgamma.fit.FitResult
    residuals: Any = None  # xr.Dataset: npred, residual, residual_significance
    significance: Any = None  # xr.Dataset of significance.fits
    distribution: Any = None  # SignificanceDistribution of the off pixels
    products: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    progress: bool = False


def build_geometry(config: dict):
    """`SkyGeometry` from the ``geometry`` section."""
    from xgamma.geometry import SkyGeometry, energy_edges

    section = config["geometry"]
    energy = section["energy"]
    center = section["center"]
    frame = center.frame.name
    return SkyGeometry.create(
        center,
        width=section["width"],
        binsz=section["binsz"],
        frame=frame,
        projection=section.get("projection", "CAR"),
        energy_edges=energy_edges(energy["min"], energy["max"], energy["nbins"]),
    )


def select_observations(config: dict) -> list:
    """Observations of the ``data`` section (data store + selection)."""
    from xgamma.io.datastore import DataStore

    section = config["data"]
    store = DataStore(section["datastore"])
    cone = section.get("cone")
    store = store.select(
        obs_ids=section.get("obs_ids"),
        cone=(cone["center"], cone["radius"]) if cone else None,
        object_name=section.get("object"),
    )
    return store.observations()


def _compute(state: AnalysisState, *collections: Any) -> tuple:
    from xgamma.workflow.progress import compute

    return compute(*collections, progress=state.progress)


def stage_maps(state: AnalysisState) -> None:
    """Stacked cube and squashed images (``maps`` section)."""
    from xgamma.io.fits_maps import write_maps
    from xgamma.makers import make_maps, make_observation_maps, squash_energy
    from xgamma.maps import with_units

    config = state.config
    state.geometry = build_geometry(config)
    state.observations = select_observations(config)
    section = config["maps"]
    spectrum = section.get("squash", {}).get("spectrum")
    options = dict(offset_max=section["offset_max"], safe_energy=section.get("safe_energy"),
                   chunks=section.get("chunks"))
    if "significance" in _stage_names(config):
        # The ring background needs per-observation images: compute them and the stacked cube
        # from the same block tasks, so each observation is read and binned once.
        per_observation = make_observation_maps(state.observations, state.geometry, **options)
        cube = per_observation.sum("obs_id")
        cube = cube.assign({name: with_units(cube[name], per_observation[name].attrs["units"]) for name in cube})
        cube.attrs = {"obs_ids": [int(o.obs_id) for o in state.observations],
                      "offset_max_deg": per_observation.attrs["offset_max_deg"]}
        obs_images = squash_energy(per_observation[["counts", "background"]], spectrum=spectrum)
        cube, state.observation_images = _compute(state, cube, obs_images)
    else:
        (cube,) = _compute(state, make_maps(state.observations, state.geometry, **options))
    state.maps = cube
    # The images derive from the computed cube without re-reading data.
    state.images = squash_energy(cube, spectrum=spectrum)
    state.products["maps"] = write_maps(state.maps, state.output / "maps.fits", overwrite=True)
    state.products["images"] = write_maps(state.images, state.output / "images.fits", overwrite=True)
    state.summary["maps"] = {
        "obs_ids": [int(o.obs_id) for o in state.observations],
        "total_counts": float(state.maps.counts.sum()),
        "total_background": float(state.maps.background.sum()),
    }


STAGES: dict[str, Callable[[AnalysisState], None]] = {"maps": stage_maps}


def _stage_names(config: dict) -> list[str]:
    names = ["maps"]
    if "models" in config or "fit" in config:
        names.append("fit")
    if "ring" in config or "significance" in config or "exclusion" in config:
        names.append("significance")
    if config.get("plots"):
        names.append("plots")
    return names


def _register_optional_stages() -> None:
    """Stages defined in their own module (imported on first run to keep the CLI start fast)."""
    if "fit" not in STAGES:
        from xgamma.cli.stages import stage_fit, stage_plots, stage_significance

        STAGES.update(fit=stage_fit, significance=stage_significance, plots=stage_plots)


def run_analysis(config: dict, output: str | os.PathLike, *, progress: bool = False) -> AnalysisState:
    """Run the configured stages and write their products into ``output``.

    Parameters
    ----------
    config : dict
        A validated configuration (`xgamma.workflow.config.load_config`).
    output : path-like
        Output folder (created if needed).
    progress : bool
        Show dask progress bars. Default is False.

    Returns
    -------
    state : `AnalysisState`
        Maps, images, products written and a summary.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    state = AnalysisState(config=config, output=output, progress=progress)
    _register_optional_stages()
    for name in _stage_names(config):
        log.info("stage %s", name)
        STAGES[name](state)
    summary_path = output / "summary.json"
    summary_path.write_text(json.dumps(state.summary, indent=2, default=str))
    state.products["summary"] = summary_path
    return state
