"""The ``detect`` stage of ``xgamma run``: iterative source detection (`xgamma.estimators.detect_sources`).

It starts from the fit stage's dataset and fitted models when the configuration has a fit, else
from the squashed images with the PSF kernel of the ``psf`` section and the background model of
``background_model`` (default: a free norm). Products: ``sources.ecsv`` and ``sources.fits`` (the
catalogue), ``models.yaml`` (every model of the final fit: it replaces the fit stage's),
``detection.json`` (settings, history, why the search stopped, the final fit) and ``ts_map.fits``
(the residual TS map after the last fit); with ``plots: true`` also ``plots/detection.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from xgamma.exceptions import ConfigError

if TYPE_CHECKING:
    from xgamma.workflow.analysis import Analysis

__all__ = ["run_detection", "write_detection", "check_detection", "wanted"]

#: ``detect`` keys and the `detect_sources` argument each one sets.
_ARGUMENTS = ("threshold", "max_sources", "min_distance", "morphologies", "sigma", "max_sigma", "extension_ts",
              "index", "max_radius")


def check_detection(analysis: Analysis) -> None:
    """The section's values make sense together (types are checked by the schema)."""
    section = analysis.config.get("detect", {})
    if section.get("sigma") is not None and section.get("max_sigma") is not None \
            and section["sigma"] > section["max_sigma"]:
        raise ConfigError(f"detect.sigma ({section['sigma']}) must not exceed detect.max_sigma ({section['max_sigma']})")
    if "models" not in analysis.config and "fit" not in analysis.config and analysis.models is None:
        from xgamma.workflow import inputs

        inputs.build_models(analysis.config)  # a bad background_model fails here, before the maps


def _dataset(analysis: Analysis) -> Any:
    """The fit stage's dataset, or the images with the PSF kernel and a background model."""
    if analysis.dataset is not None:
        return analysis.dataset
    from xgamma.fit.dataset import MapDataset
    from xgamma.fit.psf_kernel import psf_kernel_for_geometry
    from xgamma.models import BackgroundModel
    from xgamma.workflow import inputs

    config = analysis.config
    psf = config.get("psf", {})
    kernel = psf_kernel_for_geometry(
        analysis.observations, analysis.geometry, psf.get("position", analysis.geometry.center),
        spectrum=inputs.psf_spectrum(config), image=True, max_radius=psf.get("max_radius"),
        containment=psf.get("containment", 0.999))
    models = [m for m in inputs.build_models(config) if isinstance(m, BackgroundModel)] or [BackgroundModel()]
    analysis.psf_kernel = kernel
    return MapDataset.from_maps(analysis.images, psf=kernel, models=models)


def run_detection(analysis: Analysis) -> None:
    """Detect sources; stores `Analysis.detection` and the models found in `Analysis.models`."""
    from xgamma.estimators.detect import detect_sources

    section = analysis.config.get("detect", {})
    options = {key: section[key] for key in _ARGUMENTS if key in section}
    result = detect_sources(_dataset(analysis), **options)
    analysis.detection = result
    analysis.models = result.models
    analysis.summary["detection"] = {
        "n_sources": len(result.sources), "stopped": result.stopped,
        "sources": {row["name"]: {"morphology": row["morphology"], "lon": float(row["lon"]),
                                  "lat": float(row["lat"]), "ts": float(row["ts"])} for row in result.sources},
        "fit_success": None if result.fit_result is None else bool(result.fit_result.success),
    }


def write_detection(analysis: Analysis, output: Path) -> dict[str, Path]:
    """``sources.ecsv``, ``sources.fits``, ``models.yaml``, ``detection.json``, ``ts_map.fits`` (and the plot)."""
    from xgamma.io.fits_maps import write_maps
    from xgamma.workflow.products import provenance, write_json

    result = analysis.detection
    paths = result.write(output, overwrite=True)
    history = [{name: (row[name].item() if hasattr(row[name], "item") else row[name]) for name in row.colnames}
               for row in result.history]
    payload = {"settings": result.settings, "stopped": result.stopped, "history": history,
               "fit": None if result.fit_result is None else result.fit_result.to_dict()}
    paths["detection"] = write_json(output / "detection.json", payload)
    maps = result.ts_map[["ts", "sqrt_ts", "flux", "flux_err", "norm", "niter"]]
    header = {**provenance(analysis), "DET_THR": (float(result.settings["threshold"]), "detect.threshold (sqrt TS)"),
              "N_SRC": (len(result.sources), "sources in the final fit")}
    paths["ts_map"] = write_maps(maps, output / "ts_map.fits", overwrite=True, header=header)
    if analysis.config.get("plots"):
        paths["plot detection"] = _plot(result, output / "plots" / "detection.png")
    return paths


def _plot(result: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from xgamma.plotting.files import save_figure
    from xgamma.plotting.sources import plot_estimator_map

    ax = plot_estimator_map(result.ts_map, "sqrt_ts", sources=result.sources,
                            title=f"residual sqrt(TS) after detection ({len(result.sources)} sources)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return save_figure(ax.figure, path)
    finally:
        plt.close(ax.figure)


def wanted(analysis: Analysis) -> bool:
    """The stage runs when the configuration has a ``detect`` section."""
    return "detect" in analysis.config
