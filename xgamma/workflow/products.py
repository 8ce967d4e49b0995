"""Files of ``xgamma run``: each stage's products written atomically into the output folder.

* maps          -> ``maps.fits`` (stacked cube), ``images.fits`` (squashed images)
* fit           -> ``fit.json``, ``models.yaml``, ``residuals.fits``
* significance  -> ``significance.fits``, ``significance.json``
* plots         -> ``plots/*.png``
* every run     -> ``summary.json``, ``config.yaml`` (the configuration as run: variables and
  paths resolved) and, written last, the manifest ``products.json`` (`xgamma.workflow.staging`)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xgamma.workflow.analysis import Analysis

__all__ = ["write_json", "write_maps_products", "write_fit_products", "write_significance_products",
           "write_plots", "write_summary", "write_config", "PRODUCT_NAMES"]

#: Every file or folder name ``xgamma run`` writes (a rerun replaces all of them, see `StagedOutput`).
PRODUCT_NAMES = ("maps.fits", "images.fits", "fit.json", "models.yaml", "residuals.fits", "significance.fits",
                 "significance.json", "plots", "summary.json", "config.yaml")


def write_json(path: Path, payload: dict[str, Any], *, default: Callable[[Any], Any] = float) -> Path:
    """Write ``payload`` as indented JSON, atomically; ``default`` converts other objects (numpy scalars)."""
    from xgamma.io.fits_maps import atomic_path

    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=default))
    return path


def provenance(analysis: Analysis, *sections: str) -> dict[str, Any]:
    """FITS provenance cards of a product: the runs and map options, and the named sections' keys."""
    config = analysis.config
    maps = config.get("maps", {})
    cards: dict[str, Any] = {
        "OBS_IDS": ([int(o.obs_id) for o in analysis.observations], "observation ids"),
        "N_OBS": (len(analysis.observations), "number of observations"),
    }
    if "offset_max" in maps:
        cards["OFFMAX"] = (maps["offset_max"].to_value("deg"), "[deg] maps.offset_max")
    cards["SAFE_E"] = (str(maps.get("safe_energy") or "none"), "maps.safe_energy")
    cards["SQ_INDEX"] = (float((maps.get("squash", {}).get("spectrum") or {}).get("index", 2.0)),
                         "index of the spectrum weighting exposure (images)")
    if "significance" in sections:
        ring = config.get("ring", {})
        cards["BKGMETH"] = (str(ring.get("method", "ring")), "ring.method: background estimator")
        for key, card in (("r_in", "RING_RIN"), ("width", "RING_WID"), ("offset_max", "RING_OFF")):
            if key in ring:
                cards[card] = (ring[key].to_value("deg"), f"[deg] ring.{key}")
        radius = config.get("significance", {}).get("correlation_radius")
        cards["CORRRAD"] = (radius.to_value("deg") if radius is not None else 0.1,
                            "[deg] top-hat radius of EXCESS, SIGNIFICANCE")
        cards["EXCLREG"] = ("; ".join(config.get("exclusion", {}).get("regions", [])) or "none",
                            "exclusion.regions")
    if "fit" in sections and analysis.fit_result is not None:
        cards["FIT_ON"] = (str(config.get("fit", {}).get("on", "images")), "fit.on: images or cube")
        cards["FIT_OK"] = (bool(analysis.fit_result.success), "the fit converged")
    return cards


def write_maps_products(analysis: Analysis, output: Path) -> dict[str, Path]:
    """``maps.fits`` and ``images.fits``."""
    from xgamma.io.fits_maps import write_maps

    header = provenance(analysis)
    return {"maps": write_maps(analysis.maps, output / "maps.fits", overwrite=True, header=header),
            "images": write_maps(analysis.images, output / "images.fits", overwrite=True, header=header)}


def write_fit_products(analysis: Analysis, output: Path) -> dict[str, Path]:
    """``fit.json`` (`FitResult.to_dict`), ``models.yaml`` (the fitted models), ``residuals.fits``."""
    from xgamma.io.fits_maps import atomic_path, write_maps
    from xgamma.models.io import write_models

    write_json(output / "fit.json", analysis.fit_result.to_dict())
    with atomic_path(output / "models.yaml", overwrite=True) as tmp:
        write_models(analysis.models, tmp, dataset_name=getattr(analysis.dataset, "name", "stacked"))
    return {"models": output / "models.yaml", "fit": output / "fit.json",
            "residuals": write_maps(analysis.residuals, output / "residuals.fits", overwrite=True,
                                    header=provenance(analysis, "fit"))}


def write_significance_products(analysis: Analysis, output: Path) -> dict[str, Path]:
    """``significance.fits`` (counts, off, alpha, background, excess, significance, exclusion) and
    ``significance.json`` (`significance_summary`)."""
    from xgamma.io.fits_maps import write_maps

    header = provenance(analysis, "significance")
    radius = header["CORRRAD"][0]
    descriptions = {
        "counts": "counts per pixel (not correlated)",
        "off": "off counts per pixel: ring sums (not correlated)",
        "alpha": "on / off acceptance ratio per pixel",
        "background": "background counts per pixel, alpha x off (not correlated)",
        "excess": f"excess counts correlated: summed over a top-hat of radius CORRRAD = {radius:g} deg",
        "significance": f"Li & Ma (1983) eq. 17 significance of the counts and background correlated within "
                        f"CORRRAD = {radius:g} deg",
        "exclusion": "exclusion mask: 1 = pixel used for the background estimate, 0 = excluded",
    }
    maps = analysis.significance.copy()
    for name, text in descriptions.items():
        if name in maps:
            maps[name] = maps[name].assign_attrs(description=text)
    return {"significance": write_maps(maps, output / "significance.fits", overwrite=True, header=header),
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
    context = {}
    if analysis.significance is not None:
        header = provenance(analysis, "significance")
        context["correlation"] = f"r = {header['CORRRAD'][0]:g} deg"
        if "RING_RIN" in header and "RING_WID" in header:
            r_in, width = header["RING_RIN"][0], header["RING_WID"][0]
            context["background"] = f"{header['BKGMETH'][0]} {r_in:g}-{r_in + width:g} deg"
        else:
            context["background"] = header["BKGMETH"][0]
    return {f"plot {path.stem}": path
            for path in save_analysis_plots(products, output / "plots", context=context)}


def write_summary(analysis: Analysis, output: Path) -> Path:
    """``summary.json``: `Analysis.summary` (observations, totals, fit values, significance)."""
    return write_json(output / "summary.json", analysis.summary, default=str)


def write_config(analysis: Analysis, output: Path) -> Path:
    """``config.yaml``: the validated configuration, environment variables and paths resolved."""
    from xgamma.io.fits_maps import atomic_path
    from xgamma.workflow.config import dump_config

    with atomic_path(output / "config.yaml", overwrite=True) as tmp:
        tmp.write_text(dump_config(analysis.config))
    return output / "config.yaml"
