"""Models: parameters, spectral and spatial models, sky and background models, YAML I/O."""

from __future__ import annotations

from xgamma.models.background_model import BackgroundModel
from xgamma.models.io import models_from_dict, models_to_dict, read_models, write_models
from xgamma.models.parameter import Parameter, ParameterSpec
from xgamma.models.registry import get_spatial_model_class, get_spectral_model_class
from xgamma.models.sky_model import SkyModel
from xgamma.models.spatial import Disk, Gaussian, PixelGrid, Point, Shell, SpatialModel, Template
from xgamma.models.spectral import (
    ExpCutoffPowerLaw,
    LogParabola,
    PowerLaw,
    PowerLaw2,
    PowerLawNorm,
    SpectralModel,
)

__all__ = [
    "Parameter", "ParameterSpec",
    "SpectralModel", "PowerLaw", "PowerLaw2", "ExpCutoffPowerLaw", "LogParabola", "PowerLawNorm",
    "SpatialModel", "PixelGrid", "Point", "Gaussian", "Disk", "Shell", "Template",
    "SkyModel", "BackgroundModel",
    "read_models", "write_models", "models_from_dict", "models_to_dict",
    "get_spectral_model_class", "get_spatial_model_class",
]
