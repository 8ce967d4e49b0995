"""xgamma's own components, registered through the public hooks like any third-party plugin.

Entries use import references (``"xgamma.models.spectral:PowerLaw"``), so that building the
registry and ``xgamma plugins`` import nothing heavy (astropy, xarray, dask): a class is imported
when first requested. The names and aliases written here must equal each class's ``tag`` and
``gammapy_tags``; ``tests/plugin/test_builtins.py`` imports every built-in and checks that.
"""

from __future__ import annotations

from collections.abc import Iterator

from xgamma.plugin.spec import hookimpl
from xgamma.plugin.types import (
    BackgroundEstimatorEntry,
    IRFReaderEntry,
    SpatialModelEntry,
    SpectralModelEntry,
)

__all__ = [
    "xgamma_background_estimators",
    "xgamma_irf_readers",
    "xgamma_spatial_models",
    "xgamma_spectral_models",
]

_SPECTRAL = "xgamma.models.spectral"
_SPATIAL = "xgamma.models.spatial"

# (name, class, aliases = Gammapy tags)
_SPECTRAL_MODELS = [
    ("powerlaw", "PowerLaw", ("PowerLawSpectralModel", "PowerLaw", "pl")),
    ("powerlaw2", "PowerLaw2", ("PowerLaw2SpectralModel", "PowerLaw2", "pl-2")),
    ("ecpl", "ExpCutoffPowerLaw", ("ExpCutoffPowerLawSpectralModel", "ExpCutoffPowerLaw")),
    ("logparabola", "LogParabola", ("LogParabolaSpectralModel", "LogParabola", "lp")),
    ("powerlaw-norm", "PowerLawNorm", ("PowerLawNormSpectralModel", "PowerLawNorm", "pl-norm")),
]
_SPATIAL_MODELS = [
    ("point", "Point", ("PointSpatialModel",)),
    ("gaussian", "Gaussian", ("GaussianSpatialModel", "gauss")),
    ("disk", "Disk", ("DiskSpatialModel",)),
    ("shell", "Shell", ("ShellSpatialModel",)),
    ("template", "Template", ("TemplateSpatialModel",)),
]
_BACKGROUND_ESTIMATORS = [
    ("ring", "xgamma.background.estimator:RingBackground"),
    ("adaptive_ring", "xgamma.background.estimator:AdaptiveRingBackground"),
]
# GADF HDU class -> reader(path, hdu) (see xgamma.irf.readers).
_IRF_READERS = [
    ("aeff_2d", "xgamma.irf.aeff:EffectiveArea2D.read"),
    ("bkg_2d", "xgamma.irf.background:Background2D.read"),
    ("bkg_3d", "xgamma.irf.background:Background3D.read"),
    ("edisp_2d", "xgamma.irf.edisp:EnergyDispersion2D.read"),
    ("psf_3gauss", "xgamma.irf.psf:PSF3Gauss.read"),
    ("psf_king", "xgamma.irf.psf:PSFKing.read"),
    ("psf_table", "xgamma.irf.psf:PSFTable.read"),
]


@hookimpl
def xgamma_spectral_models() -> Iterator[SpectralModelEntry]:
    """Built-in spectral models (see :mod:`xgamma.models.spectral`)."""
    for name, cls, aliases in _SPECTRAL_MODELS:
        yield SpectralModelEntry(name, f"{_SPECTRAL}:{cls}", aliases)


@hookimpl
def xgamma_spatial_models() -> Iterator[SpatialModelEntry]:
    """Built-in spatial models (see :mod:`xgamma.models.spatial`)."""
    for name, cls, aliases in _SPATIAL_MODELS:
        yield SpatialModelEntry(name, f"{_SPATIAL}:{cls}", aliases)


@hookimpl
def xgamma_background_estimators() -> Iterator[BackgroundEstimatorEntry]:
    """Built-in background estimators (see :mod:`xgamma.background`)."""
    for name, ref in _BACKGROUND_ESTIMATORS:
        yield BackgroundEstimatorEntry(name, ref)


@hookimpl
def xgamma_irf_readers() -> Iterator[IRFReaderEntry]:
    """Built-in GADF IRF readers (see :mod:`xgamma.irf.readers`)."""
    for hdu_class, ref in _IRF_READERS:
        yield IRFReaderEntry(hdu_class, ref)
