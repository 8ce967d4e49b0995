"""Estimators on sky maps: correlation, significance, TS, flux and upper-limit maps, peaks, distributions."""

from __future__ import annotations

from xgamma.estimators.correlate import correlate, correlation_kernel
from xgamma.estimators.detect import DetectionResult, detect_sources, sources_table
from xgamma.estimators.distribution import (
    SignificanceDistribution,
    significance_distribution,
    significance_summary,
)
from xgamma.estimators.counts_statistics import (
    cash_errors,
    cash_sensitivity,
    cash_upper_limit,
    on_off_errors,
    on_off_sensitivity,
    on_off_upper_limit,
    wstat,
)
from xgamma.estimators.flux_maps import flux_maps, survey_flux_maps
from xgamma.estimators.flux_points import assign_observation_times, flux_points, light_curve, reference_fluxes
from xgamma.estimators.model_maps import npred_map
from xgamma.estimators.norm_fit import NormFit, NormFits, fit_norm
from xgamma.estimators.peaks import find_peaks, peak_mask, peaks_dataset
from xgamma.estimators.sed_io import flux_points_table, read_flux_points, write_flux_points
from xgamma.estimators.significance import (
    SignificanceEstimator,
    cash_significance,
    excess_error,
    li_ma_significance,
    significance_maps,
)
from xgamma.estimators.ts_kernel import ts_kernel
from xgamma.estimators.ts_map import TSMapEstimator, ts_map

__all__ = [
    "DetectionResult",
    "NormFit",
    "NormFits",
    "SignificanceDistribution",
    "SignificanceEstimator",
    "TSMapEstimator",
    "assign_observation_times",
    "cash_errors",
    "cash_sensitivity",
    "cash_significance",
    "cash_upper_limit",
    "correlate",
    "correlation_kernel",
    "detect_sources",
    "excess_error",
    "find_peaks",
    "fit_norm",
    "flux_maps",
    "flux_points",
    "flux_points_table",
    "li_ma_significance",
    "light_curve",
    "npred_map",
    "on_off_errors",
    "on_off_sensitivity",
    "on_off_upper_limit",
    "peak_mask",
    "peaks_dataset",
    "read_flux_points",
    "reference_fluxes",
    "significance_distribution",
    "significance_maps",
    "significance_summary",
    "sources_table",
    "survey_flux_maps",
    "ts_kernel",
    "ts_map",
    "write_flux_points",
    "wstat",
]
