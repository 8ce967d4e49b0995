"""`run_analysis`: the reference analysis (maps -> fit -> ring background -> significance) as one call."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xgamma.workflow.config import Config, is_streamed, validate_config

if TYPE_CHECKING:
    import xarray as xr

    from xgamma.geometry import SkyGeometry
    from xgamma.workflow.stages import Stage

__all__ = ["Analysis", "run_analysis"]

log = logging.getLogger("xgamma")


@dataclass
class Analysis:
    """Inputs and products of one analysis; `run_analysis` fills the products stage by stage.

    Products are computed (numpy-backed) xarray objects, except `observation_maps`, which
    builds the lazy per-observation cube on request. A product stays None when its stage did
    not run.

    Attributes
    ----------
    config : `Config`
        The validated configuration; its sections are the options of the stages.
    observations : list of `~xgamma.io.datastore.Observation`
        The runs analysed.
    geometry : `~xgamma.geometry.SkyGeometry`
        Map geometry (with the energy axis of the cube).
    models : list, optional
        Sky models and background model of the fit (given, or built from ``models`` and
        ``background_model``); after the fit they hold the best-fit values.
    exclusion : `xarray.DataArray`, optional
        Exclusion mask (True = usable for background; given, or made from ``exclusion.regions``).
        After the significance stage: the mask the background estimate used (grown around
        significant pixels when ``exclusion.threshold`` is set).
    progress : bool
        Show progress bars while computing.
    requested : frozenset of str
        Products later stages asked the earlier ones for (`Stage.needs`).
    maps : `xarray.Dataset`
        Stacked cube: ``counts``, ``exposure`` (m2 s), ``background`` (and ``exposure_true``
        with a true-energy axis).
    images : `xarray.Dataset`
        The cube squashed over energy (length-1 energy dim), with each pixel's valid energy
        range (``safe_energy_min``, ``safe_energy_max``).
    observation_images : `xarray.Dataset`
        Per-observation squashed ``counts`` and ``background`` (``obs_id`` dim, with pointings),
        made with the cube when the significance stage runs.
    psf_kernel : dict of `~xgamma.fit.PSFKernel`
        Mean PSF kernels by source name (at each source's position, or at ``psf.position``).
    dataset : `~xgamma.fit.MapDataset`
        The fitted dataset.
    fit_result : `~xgamma.fit.FitResult`
        Best-fit values, errors, covariance, statistic, success flag.
    residuals : `xarray.Dataset`
        ``npred``, ``residual``, ``residual_significance`` of the fit.
    significance : `xarray.Dataset`
        Images of ``counts``, ``off``, ``alpha``, ``background``, ``excess``, ``significance``,
        ``exclusion`` (bool: True = used for the background).
    distribution : `~xgamma.estimators.SignificanceDistribution`
        Significance distribution of the pixels outside the exclusion.
    detection : `~xgamma.estimators.DetectionResult`
        Sources found by the ``detect`` stage (models, catalogue, history, residual TS map).
    summary : dict
        JSON-ready figures of every stage (``summary.json`` of ``xgamma run``).
    products : dict of Path
        Files written, by product name (when `run_analysis` got an ``output`` folder).
    stages : tuple of str
        Names of the stages this analysis runs (checked before any of them computes).
    """

    config: Config
    observations: list
    geometry: SkyGeometry
    models: list | None = None
    exclusion: xr.DataArray | None = None
    progress: bool = False
    requested: frozenset[str] = frozenset()
    maps: xr.Dataset | None = None
    images: xr.Dataset | None = None
    observation_images: xr.Dataset | None = None
    psf_kernel: Any = None
    dataset: Any = None
    fit_result: Any = None
    residuals: xr.Dataset | None = None
    significance: xr.Dataset | None = None
    distribution: Any = None
    detection: Any = None
    summary: dict[str, Any] = field(default_factory=dict)
    products: dict[str, Path] = field(default_factory=dict)
    stages: tuple[str, ...] = ()

    def observation_maps(self) -> xr.Dataset:
        """The lazy per-observation cube (``obs_id`` dim) with the options of the ``maps`` section."""
        from xgamma.workflow.stages import observation_maps

        return observation_maps(self)

    def compute(self, *collections: Any) -> tuple:
        """`dask.compute` on the current scheduler, with a progress bar when `progress` is set."""
        from xgamma.workflow.progress import compute

        return compute(*collections, progress=self.progress)

    def __repr__(self) -> str:
        made = [name for name in ("maps", "images", "observation_images", "fit_result", "residuals",
                                  "significance", "distribution", "detection") if getattr(self, name) is not None]
        return (f"Analysis({len(self.observations)} observations, geometry shape {self.geometry.shape}, "
                f"products: {', '.join(made) or 'none'})")


def run_analysis(
    config: Mapping[str, Any],
    *,
    observations: Sequence[Any] | None = None,
    geometry: SkyGeometry | None = None,
    models: Sequence[Any] | None = None,
    exclusion: xr.DataArray | None = None,
    output: str | os.PathLike | None = None,
    stages: Sequence[Stage] | None = None,
    progress: bool = False,
    overwrite: bool = False,
    dry_run: bool = False,
) -> Analysis:
    """Run the analysis a configuration asks for: maps, fit, ring background and significance.

    The stages and their options follow the configuration sections (``docs/config.md``): the
    maps always; the PSF kernel and the fit with ``models`` or ``fit``; the background estimate,
    correlated Li & Ma significance and off-pixel distribution with ``ring``, ``significance`` or
    ``exclusion`` (iterating the exclusion mask when ``exclusion.threshold`` is set).

    Parameters
    ----------
    config : mapping
        A configuration as read from YAML (strings with units such as ``"0.02 deg"``; it is
        validated here) or a validated `Config` (`load_config`). Quantities and SkyCoords may
        stand for the strings and position mappings.
    observations : sequence of `~xgamma.io.datastore.Observation`, optional
        The runs to analyse, instead of the ``data`` section (which may then be left out).
    geometry : `~xgamma.geometry.SkyGeometry`, optional
        The map geometry, instead of the ``geometry`` section (which may then be left out).
    models : sequence of models, optional
        Sky models and background model to fit, instead of ``models`` / ``background_model``.
    exclusion : `xarray.DataArray`, optional
        Exclusion mask image (True = usable), instead of ``exclusion.regions``.
    output : path-like, optional
        Write every stage's products into this folder (created if needed), as ``xgamma run``
        does, with ``summary.json``, ``config.yaml`` and the manifest ``products.json``. They
        are staged and appear together when every stage has succeeded, replacing an earlier
        run's (`xgamma.workflow.staging`): a failed run leaves the folder as it was.
    stages : sequence of `~xgamma.workflow.Stage`, optional
        The stages to consider, in order. Default: `~xgamma.workflow.REFERENCE_STAGES`.
    progress : bool
        Show progress bars. Default is False.
    overwrite : bool
        With a streamed ``output.format`` (zarr, fits-tiles): replace complete products or an
        unfinished run of another configuration in ``output`` (`xgamma.workflow.mosaic`); an
        unfinished run of the same configuration is always resumed. Default is False.
    dry_run : bool
        Only check the inputs of every stage (`Stage.check`: configuration, files, models,
        regions) and return the `Analysis` without computing or writing anything. Default is False.

    Returns
    -------
    analysis : `Analysis`
        The inputs and the computed products.

    Raises
    ------
    ConfigError
        Naming the configuration key at fault.

    Examples
    --------
    >>> import yaml, xgamma.workflow                                    # doctest: +SKIP
    >>> config = yaml.safe_load(open("examples/cta-gc-full.yaml"))      # doctest: +SKIP
    >>> analysis = xgamma.workflow.run_analysis(config)                 # doctest: +SKIP
    >>> analysis.fit_result.values, analysis.distribution.std           # doctest: +SKIP
    """
    from xgamma.workflow.progress import warm_up_workers

    warm_up_workers(config)  # a cluster's fresh workers import xgamma while the graph is built here
    from xgamma.workflow import inputs
    from xgamma.workflow.stages import MAPS, REFERENCE_STAGES

    if not isinstance(config, Config):
        given = {"data": observations is not None, "geometry": geometry is not None}
        config = validate_config(config, required=[name for name in ("data", "geometry", "maps")
                                                   if not given.get(name)])
    analysis = Analysis(
        config=config,
        observations=list(observations) if observations is not None else inputs.select_observations(config),
        geometry=geometry if geometry is not None else inputs.build_geometry(config),
        models=list(models) if models is not None else None,
        exclusion=exclusion,
        progress=progress,
    )
    from xgamma.workflow.mosaic import check_streamed, prefetch_loads, run_mosaic

    streamed = is_streamed(config)
    if streamed:
        check_streamed(config)
    selected = [stage for stage in (REFERENCE_STAGES if stages is None else stages) if stage.wanted(analysis)]
    analysis.requested = frozenset().union(*(stage.needs for stage in selected))
    # Every stage's inputs are checked before anything is written. A streamed run on a cluster
    # starts reading its runs once the maps' inputs are checked (`prefetch_loads`), so the workers
    # do not wait for the other checks; the loads are dropped if one of them fails.
    started = None
    try:
        for stage in selected:
            if stage.check is not None:
                stage.check(analysis)
            if stage is MAPS and streamed and not dry_run:
                started = prefetch_loads(analysis, output)
        analysis.stages = tuple(stage.name for stage in selected)
        if dry_run:
            return analysis
        if streamed:  # products written chunk by chunk, resumable (its own staging)
            analysis.products.update(run_mosaic(analysis, output, overwrite=overwrite, started=started))
            return analysis
    finally:
        if started:
            started.clear()
    if output is None:
        _run_stages(analysis, selected, None)
        return analysis
    from xgamma.workflow import products
    from xgamma.workflow.staging import StagedOutput

    # Products appear in `output` together once every stage has succeeded (manifest last).
    with StagedOutput(output, product_names=products.PRODUCT_NAMES) as staging:
        _run_stages(analysis, selected, staging.path)
        analysis.products["summary"] = products.write_summary(analysis, staging.path)
        analysis.products["config"] = products.write_config(analysis, staging.path)
    analysis.products = {name: staging.final(path) for name, path in analysis.products.items()}
    return analysis


def _run_stages(analysis: Analysis, selected: Sequence[Stage], folder: Path | None) -> None:
    for stage in selected:
        log.info("stage %s", stage.name)
        if stage.run is not None:
            stage.run(analysis)
        if folder is not None and stage.write is not None:
            analysis.products.update(stage.write(analysis, folder))
