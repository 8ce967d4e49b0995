"""Fitting: PSF and migration kernels, the map dataset, the Cash statistic and the iminuit fit."""

from __future__ import annotations

from xgamma.fit.dataset import MapDataset, residual_images
from xgamma.fit.fitter import fit, minimize, source_ts, stat_profile
from xgamma.fit.npred import DatasetArrays
from xgamma.fit.psf_kernel import PSFKernel, PSFProfile, make_psf_kernel, mean_psf, psf_kernel_for_geometry
from xgamma.fit.result import FitResult
from xgamma.fit.source_irfs import source_kernels, source_position
from xgamma.fit.statistic import Likelihood, cash, cash_sum

__all__ = [
    "MapDataset", "residual_images", "source_kernels", "source_position", "fit",
    "minimize", "source_ts", "stat_profile", "FitResult", "DatasetArrays",
    "PSFKernel", "PSFProfile", "make_psf_kernel", "mean_psf", "psf_kernel_for_geometry",
    "Likelihood", "cash", "cash_sum",
]
