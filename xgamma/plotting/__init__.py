"""Plots astronomers expect, on WCS axes: sky images with colour bars, residuals, fitted positions.

Every function draws on `astropy.visualization.wcsaxes.WCSAxes` (matplotlib axes whose
projection is the map's WCS), labels the axes with the map's frame (galactic or ICRS) and gives
each image a colour bar labelled with the map's name and units. Plotting computes lazy maps
(it needs the values); only the image being drawn is computed.

Modules: ``axes`` (WCS axes, frame labels, grids), ``image`` (`plot_map`), ``maps`` (one plot per
analysis product), ``position`` (fitted positions and error ellipses), ``distribution``
(significance histograms), ``files`` (`save_analysis_plots`, the PNG set of ``xgamma run``),
``sed`` (flux points, fitted spectrum with its butterfly, light curves) and ``sources`` (TS / flux /
upper-limit maps with detected sources marked).
matplotlib is imported inside the functions so that ``import xgamma`` stays light.
"""

from __future__ import annotations

from xgamma.plotting.distribution import plot_significance_distribution
from xgamma.plotting.files import PLOT_FILES, save_analysis_plots
from xgamma.plotting.image import plot_map
from xgamma.plotting.maps import plot_background, plot_counts, plot_excess, plot_residuals, plot_significance
from xgamma.plotting.position import error_ellipse, plot_source_position
from xgamma.plotting.sed import model_band, plot_flux_points, plot_light_curve, plot_sed, plot_spectrum
from xgamma.plotting.sources import plot_estimator_map, plot_sources

__all__ = [
    "plot_map",
    "plot_counts",
    "plot_background",
    "plot_excess",
    "plot_significance",
    "plot_residuals",
    "plot_source_position",
    "plot_significance_distribution",
    "error_ellipse",
    "save_analysis_plots",
    "PLOT_FILES",
    "model_band",
    "plot_flux_points",
    "plot_spectrum",
    "plot_sed",
    "plot_light_curve",
    "plot_estimator_map",
    "plot_sources",
]
