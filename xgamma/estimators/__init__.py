"""Estimators on sky maps: top-hat correlation, Li & Ma / Cash significance and excess, distributions."""

from __future__ import annotations

from xgamma.estimators.correlate import correlate, correlation_kernel
from xgamma.estimators.distribution import (
    SignificanceDistribution,
    significance_distribution,
    significance_summary,
)
from xgamma.estimators.significance import (
    SignificanceEstimator,
    cash_significance,
    excess_error,
    li_ma_significance,
    significance_maps,
)

__all__ = [
    "SignificanceDistribution",
    "SignificanceEstimator",
    "cash_significance",
    "correlate",
    "correlation_kernel",
    "excess_error",
    "li_ma_significance",
    "significance_distribution",
    "significance_maps",
    "significance_summary",
]
