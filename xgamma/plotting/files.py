"""`save_analysis_plots`: the PNG set of an analysis (what ``xgamma run`` writes with ``plots: true``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from xgamma.plotting.distribution import plot_significance_distribution
from xgamma.plotting.maps import plot_background, plot_counts, plot_excess, plot_residuals, plot_significance
from xgamma.plotting.position import position_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PLOT_FILES", "save_analysis_plots", "save_figure"]

#: PNG file written by `save_analysis_plots` for each product (when its inputs exist).
PLOT_FILES = {
    "counts": "counts.png",
    "background": "background.png",
    "excess": "excess.png",
    "significance": "significance.png",
    "residuals": "residuals.png",
    "distribution": "distribution.png",
    "source_position": "source_position.png",
}


def save_figure(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)  # atomic: a PNG that exists is complete
    return path


def _band(da: xr.DataArray | None) -> str | None:
    """``"1-10 TeV"``: the energy band of an image, from its ``energy_min`` / ``energy_max`` coordinates."""
    if da is None or "energy_min" not in da.coords or "energy_max" not in da.coords:
        return None
    emin, emax = np.min(da.coords["energy_min"].values), np.max(da.coords["energy_max"].values)
    return f"{float(emin):.3g}-{float(emax):.3g} TeV"


def _title(name: str, *parts: str | None) -> str:
    details = [part for part in parts if part]
    return f"{name} ({', '.join(details)})" if details else name


def save_analysis_plots(products: Mapping[str, Any], out_dir: str | os.PathLike, *,
                        context: Mapping[str, str] | None = None) -> list[Path]:
    """Write the standard analysis plots as PNG files into ``out_dir``.

    Parameters
    ----------
    products : mapping
        Any of these keys (others are ignored):

        * ``counts``, ``background``, ``excess``, ``significance`` : images (`xarray.DataArray`);
          ``background_model`` is used when ``background`` is absent;
        * ``exclusion`` : exclusion mask (drawn on the significance map and used for the
          distribution's "off" pixels);
        * ``residuals`` : Dataset with ``residual`` and ``residual_significance``
          (`xgamma.fit.MapDataset.residual_maps`), or the two maps under ``residual`` and
          ``residual_significance``;
        * ``distribution`` : a `~xgamma.estimators.SignificanceDistribution` (default: computed
          from ``significance`` and ``exclusion``);
        * ``fit_result`` : a `~xgamma.fit.FitResult` with a fitted position, drawn on a cutout of
          ``counts`` (or ``excess`` / ``significance``) around it; ``fit_model`` picks the model.

    out_dir : path-like
        Folder for the PNG files (created if needed).
    context : mapping, optional
        Words for the titles: ``correlation`` (e.g. ``"r = 0.1 deg"``, on the excess and
        significance maps) and ``background`` (e.g. ``"ring 0.5-0.8 deg"``). The energy band is
        read from the images.

    Returns
    -------
    paths : list of Path
        Files written, among `PLOT_FILES` (only those whose inputs exist).
    """
    import matplotlib.pyplot as plt

    from xgamma.estimators.distribution import significance_distribution

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    exclusion = products.get("exclusion")

    def path(key: str) -> Path:
        return out / PLOT_FILES[key]

    context = dict(context or {})
    band = _band(next((products.get(k) for k in ("counts", "significance", "excess") if products.get(k) is not None),
                      None))
    correlation, method = context.get("correlation"), context.get("background")

    if products.get("counts") is not None:
        ax = plot_counts(products["counts"], smooth="0.04 deg", title=_title("Counts", band, "smoothed 0.04 deg"))
        written.append(save_figure(ax.figure, path("counts")))
    background = products.get("background")
    if background is None:
        background = products.get("background_model")
    if background is not None:
        written.append(save_figure(plot_background(background, title=_title("Background", band)).figure,
                                   path("background")))
    if products.get("excess") is not None:
        ax = plot_excess(products["excess"], title=_title("Excess", band, correlation, method))
        written.append(save_figure(ax.figure, path("excess")))
    if products.get("significance") is not None:
        ax = plot_significance(products["significance"], exclusion=exclusion,
                               title=_title("Significance", band, correlation, method))
        written.append(save_figure(ax.figure, path("significance")))
    residuals = products.get("residuals")
    if residuals is None and products.get("residual") is not None:
        residuals = xr.Dataset({"residual": products["residual"],
                                "residual_significance": products["residual_significance"]})
    if residuals is not None:
        written.append(save_figure(plot_residuals(residuals), path("residuals")))
    distribution = products.get("distribution")
    if distribution is None and products.get("significance") is not None:
        distribution = significance_distribution(products["significance"], exclusion=exclusion)
    if distribution is not None:
        fig, ax = plt.subplots(figsize=(7, 5))
        plot_significance_distribution(distribution, ax=ax)
        # Log axis: from half a pixel to a little above the highest bin.
        ax.set_ylim(0.5, 3.0 * max(float(np.max(distribution.counts_all, initial=1)), 1.0))
        ax.set_title("Significance distribution")
        written.append(save_figure(fig, path("distribution")))
    result = products.get("fit_result")
    image = next((products[k] for k in ("counts", "excess", "significance") if products.get(k) is not None), None)
    if result is not None and image is not None:
        written.append(save_figure(position_figure(image, result, products.get("fit_model")), path("source_position")))
    return written
