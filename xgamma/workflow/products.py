"""Files of ``xgamma run``: each stage's products written atomically into the output folder.

* maps          -> ``maps.fits`` (stacked cube), ``images.fits`` (squashed images)
* fit           -> ``fit.json``, ``models.yaml``, ``residuals.fits``
* significance  -> ``significance.fits``, ``significance.json``
* plots         -> ``plots/*.png``
* every run     -> ``summary.json``
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xgamma.workflow.analysis import Analysis

__all__ = ["write_json", "write_maps_products", "write_fit_products", "write_significance_products",
           "write_plots", "write_summary"]


def write_json(path: Path, payload: dict[str, Any], *, default: Callable[[Any], Any] = float) -> Path:
    """Write ``payload`` as indented JSON, atomically; ``default`` converts other objects (numpy scalars)."""
    from xgamma.io.fits_maps import atomic_path

    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=default))
    return path


def write_maps_products(analysis: Analysis, output: Path) -> dict[str, Path]:
    """``maps.fits`` and ``images.fits``."""
    from xgamma.io.fits_maps import write_maps

    return {"maps": write_maps(analysis.maps, output / "maps.fits", overwrite=True),
            "images": write_maps(analysis.images, output / "images.fits", overwrite=True)}


def write_fit_products(analysis: Analysis, output: Path) -> dict[str, Path]:
    """``fit.json`` (`FitResult.to_dict`), ``models.yaml`` (the fitted models), ``residuals.fits``."""
    from xgamma.io.fits_maps import atomic_path, write_maps
    from xgamma.models.io import write_models

    write_json(output / "fit.json", analysis.fit_result.to_dict())
    with atomic_path(output / "models.yaml", overwrite=True) as tmp:
        write_models(analysis.models, tmp)
    return {"models": output / "models.yaml", "fit": output / "fit.json",
            "residuals": write_maps(analysis.residuals, output / "residuals.fits", overwrite=True)}


def write_significance_products(analysis: Analysis, output: Path) -> dict[str, Path]:
    """``significance.fits`` (counts, off, alpha, background, excess, significance, exclusion) and
    ``significance.json`` (`significance_summary`)."""
    from xgamma.io.fits_maps import write_maps

    return {"significance": write_maps(analysis.significance, output / "significance.fits", overwrite=True),
            "significance_json": write_json(output / "significance.json", analysis.summary["significance"])}


def write_plots(analysis: Analysis, output: Path) -> dict[str, Path]:
    """PNG plots of every product made so far into ``output/plots``."""
    from xgamma.plotting import save_analysis_plots

    products: dict[str, Any] = {}
    if analysis.images is not None:
        products.update(counts=analysis.images["counts"], background_model=analysis.images["background"])
    if analysis.significance is not None:
        products.update(excess=analysis.significance["excess"], significance=analysis.significance["significance"],
                        exclusion=analysis.significance["exclusion"], distribution=analysis.distribution)
    if analysis.residuals is not None:
        from xgamma.fit.dataset import residual_images

        products.update(residuals=residual_images(analysis.residuals))
    if analysis.fit_result is not None:
        products.update(fit_result=analysis.fit_result)
    return {f"plot {path.stem}": path for path in save_analysis_plots(products, output / "plots")}


def write_summary(analysis: Analysis, output: Path) -> Path:
    """``summary.json``: `Analysis.summary` (observations, totals, fit values, significance)."""
    return write_json(output / "summary.json", analysis.summary, default=str)
