"""Histogram of a significance map (all pixels, off pixels) with its fitted normal curve."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from xgamma.estimators.distribution import SignificanceDistribution, significance_distribution

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_significance_distribution"]


def plot_significance_distribution(
    distribution: SignificanceDistribution | xr.DataArray,
    *,
    exclusion: xr.DataArray | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Plot the significance histograms (all pixels, off pixels; log y) and the fitted normal curve.

    Parameters
    ----------
    distribution : `SignificanceDistribution` or `xarray.DataArray`
        A distribution, or a significance map (then `significance_distribution` is run).
    exclusion : `xarray.DataArray`, optional
        Exclusion mask, used when ``distribution`` is a map.
    ax : `matplotlib.axes.Axes`, optional
        Axes to draw on. Default: a new figure.

    Returns
    -------
    figure : `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    if not isinstance(distribution, SignificanceDistribution):
        distribution = significance_distribution(distribution, exclusion=exclusion)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 5))
    else:
        fig = ax.figure
    d = distribution
    ax.stairs(d.counts_all, d.edges, color="tab:blue", alpha=0.4, fill=True, label="all pixels")
    ax.stairs(d.counts_off, d.edges, color="tab:red", alpha=0.6, fill=True, label="off pixels")
    centres = 0.5 * (d.edges[1:] + d.edges[:-1])
    widths = np.diff(d.edges)
    curve = d.n_pixels * widths * norm.pdf(centres, d.mean, d.std)
    ax.plot(centres, curve, color="k", lw=1.5, label=f"normal fit: mean {d.mean:.3f}, width {d.std:.3f}")
    ax.set_yscale("log")
    ax.set_ylim(0.5, 3 * max(float(d.counts_all.max()), 1.0))
    ax.set_xlabel("significance (sigma)")
    ax.set_ylabel("pixels")
    ax.legend()
    return fig
