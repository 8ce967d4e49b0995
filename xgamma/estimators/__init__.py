"""Estimators on sky maps: correlation, Li & Ma / Cash significance, TS maps, distributions."""

from __future__ import annotations

from xgamma.estimators.correlate import correlate, correlation_kernel
from xgamma.estimators.distribution import (
    SignificanceDistribution,
    significance_distribution,
    significance_summary,
)
from xgamma.estimators.model_maps import npred_map
from xgamma.estimators.norm_fit import NormFit, NormFits, fit_norm
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
    "NormFit",
    "NormFits",
    "SignificanceDistribution",
    "SignificanceEstimator",
    "TSMapEstimator",
    "cash_significance",
    "correlate",
    "correlation_kernel",
    "excess_error",
    "fit_norm",
    "li_ma_significance",
    "npred_map",
    "significance_distribution",
    "significance_maps",
    "significance_summary",
    "ts_kernel",
    "ts_map",
]
